// Broker::Impl: what operators and subscribers ask over ctl (nodes,
// commands, workflows, events); the dispatch and its role checks are
// HandleCtl in broker.cc (broker_impl.h).
#include "broker/broker_impl.h"
#include "wire/backup_wire.h"

namespace ledgerkeep {

using broker_internal::kCfMeta;
using broker_internal::kBrokerName;
using broker_internal::kNextCmdIdKey;
using broker_internal::Str;

namespace {

// Events a backward FetchEvents examines per request (a filter that matches
// little must not hold the broker's loop over a whole large log).
constexpr uint64_t kMaxBackwardScan = 100'000;

std::string CommandTopic(const wire::TargetT& t, const std::vector<std::string>& targets) {
  if (!t.node_id.empty() && targets.size() == 1) return "cmd.node." + targets[0];
  if (!t.all && t.role != wire::Role::Unknown) return "cmd.role." + RoleName(t.role);
  return "cmd.all";
}

}  // namespace

void Broker::Impl::HandleListNodes(const std::string& rid, const wire::Envelope& e) {
  wire::NodeListT list;
  list.now_ms = Now();
  std::map<std::string, uint32_t> pending;
  for (CommandEntry* c : tracker->Unfinished())
    for (const auto& [node, t] : c->targets)
      if (t.state != wire::TargetState::Done) ++pending[node];
  for (NodeEntry* n : registry->All()) {
    auto info = std::make_unique<wire::NodeInfoT>();
    info->node_id = n->node_id;
    info->role = n->role;
    info->state = n->state;
    info->last_heartbeat_ms = n->last_seen_ms;
    info->version = n->version;
    info->connected_since_ms = n->connected_since_ms;
    info->pending_commands = pending[n->node_id];
    info->clone = n->clone;
    if (!n->backup_target.destination.empty()) {
      info->backup_target = std::make_unique<wire::BackupTargetT>(::ledgerkeep::ToWire(n->backup_target));
    }
    info->backup_places = PlacesToWire(n->backup_places);
    list.nodes.push_back(std::move(info));
  }
  wire::BodyUnion b;
  b.Set(std::move(list));
  Reply(rid, e.msg_id(), std::move(b));
}

std::vector<uint8_t> Broker::Impl::TargetBits(const std::vector<std::string>& ids) {
  std::vector<uint8_t> bits;
  for (const auto& id : ids) {
    const NodeEntry* n = registry->Find(id);
    if (n == nullptr || n->index == 0) continue;  // ResolveTargets only returns registered nodes
    if (bits.size() <= n->index / 8) bits.resize(n->index / 8 + 1, 0);
    bits[n->index / 8] |= static_cast<uint8_t>(1u << (n->index % 8));
  }
  return bits;
}

Result<std::vector<std::string>> Broker::Impl::ResolveTargets(const wire::TargetT& t) {
  if (!t.node_id.empty()) {
    if (registry->Find(t.node_id) == nullptr) {
      return Status::NotFound("no agent node '" + t.node_id +
                              "' in the allowlist (see `ledgerkeep nodes`)");
    }
    return std::vector<std::string>{t.node_id};
  }
  auto ids = registry->IdsWithRole(t.all ? wire::Role::Unknown : t.role);
  if (ids.empty()) {
    return Status::NotFound("no agent nodes with role " + RoleName(t.role) + " in the allowlist");
  }
  return ids;
}

namespace {

// What an agent may ask for its own node: the runbook's API on the node.
bool AgentMayIssue(const wire::IssueCommand& ic) {
  switch (ic.body_type()) {
    case wire::CommandBody::ScheduleBackup:
    case wire::CommandBody::UnscheduleBackup:
    case wire::CommandBody::RunBackupNow:
    case wire::CommandBody::NodeManagement:
    case wire::CommandBody::GetHealth:
    case wire::CommandBody::GetBlockIds:
    case wire::CommandBody::GetBackupStatus:
    case wire::CommandBody::ListSnapshots:
      return true;
    case wire::CommandBody::Wedge:
      return ic.body_as_Wedge()->action() == wire::WedgeAction::Status;
    default:
      return false;
  }
}

// requested_by as it goes into the issuer: printable ASCII, at most 120 bytes.
std::string CleanRequester(const flatbuffers::String* s) {
  std::string out;
  if (s == nullptr) return out;
  for (char c : s->string_view()) {
    if (out.size() >= 120) break;
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  return out;
}

}  // namespace

void Broker::Impl::HandleAgentIssue(const std::string& rid, const std::string& node, const wire::Envelope& e) {
  const auto* ic = e.body_as_IssueCommand();
  const auto* t = ic->target();
  const bool to_self = t != nullptr && t->node_id() != nullptr && t->node_id()->string_view() == node;
  if (!to_self || !AgentMayIssue(*ic)) {
    spdlog::warn("refused {} from agent '{}': an agent may only issue the runbook's node commands to itself",
                 CommandKindName(ic->body_type()), node);
    return ReplyError(rid, e.msg_id(),
                      Status::PermissionDenied("an agent key may only issue schedule, run-now, node "
                                               "stop/start and status commands to its own node"));
  }
  const std::string by = CleanRequester(ic->requested_by());
  HandleIssue(rid, by.empty() ? node : node + " (" + by + ")", e);
}

void Broker::Impl::HandleIssue(const std::string& rid, const std::string& issuer, const wire::Envelope& e) {
  const auto* ic = e.body_as_IssueCommand();
  if (ic->body_type() == wire::CommandBody::NONE) {
    return ReplyError(rid, e.msg_id(), Status::InvalidArgument("IssueCommand has no command body"));
  }
  wire::IssueCommandT req;
  ic->UnPackTo(&req);
  wire::TargetT target = req.target ? *req.target : wire::TargetT{};
  if (target.node_id.empty() && target.role == wire::Role::Unknown) target.all = true;
  auto targets = ResolveTargets(target);
  if (!targets.ok()) return ReplyError(rid, e.msg_id(), targets.status());
  const std::string idem_key = req.idempotency_key.empty() ? "" : "idempotency:" + req.idempotency_key;
  if (!idem_key.empty()) {
    auto known = store->Get(kCfMeta, idem_key);
    if (!known.ok()) return ReplyError(rid, e.msg_id(), known.status());
    if (known->has_value() && (*known)->size() == 8) {
      if (CommandEntry* existing = tracker->Find(DecodeU64BE(**known))) {
        existing->watchers.insert(WatcherKey(reply_sock_, rid));
        PushStatus(*existing, WatcherKey(reply_sock_, rid), e.msg_id());
        return;
      }
    }
  }
  if (Status unique = destinations->CheckUnique(req.body, *targets); !unique.ok()) {
    spdlog::warn("refused {} from {}: {}", CommandKindName(req.body.type), issuer, unique.message());
    return ReplyError(rid, e.msg_id(), unique);
  }
  if (Status restore = destinations->PrepareRestore(req.body, *targets); !restore.ok()) {
    spdlog::warn("refused {} from {}: {}", CommandKindName(req.body.type), issuer, restore.message());
    return ReplyError(rid, e.msg_id(), restore);
  }

  const int64_t now = Now();
  const uint64_t cmd_id = next_cmd_id++;
  batch.Put(kCfMeta, kNextCmdIdKey, EncodeU64BE(next_cmd_id));
  if (!idem_key.empty()) batch.Put(kCfMeta, idem_key, EncodeU64BE(cmd_id));
  wire::CommandT cmd;
  cmd.cmd_id = cmd_id;
  cmd.issued_at_ms = now;
  cmd.deadline_ms = now + (req.timeout_ms > 0 ? req.timeout_ms : opt.default_timeout_ms);
  if (targets->size() <= kMaxListedTargets) {
    cmd.targets = *targets;
  } else {
    cmd.target_bits = TargetBits(*targets);
  }
  cmd.issuer = issuer;
  cmd.body = req.body;
  const wire::CommandBody kind = cmd.body.type;
  const std::string topic = CommandTopic(target, *targets);
  EnvelopeHeader h;
  h.sender = kBrokerName;
  h.msg_id = next_msg_id++;
  h.sent_at_ms = now;
  wire::BodyUnion body;
  body.Set(std::move(cmd));
  std::string envelope = BuildEnvelope(h, std::move(body));
  CommandEntry& c =
      tracker->Add(batch, cmd_id, kind, envelope, topic, now,
                   now + (req.timeout_ms > 0 ? req.timeout_ms : opt.default_timeout_ms), issuer, *targets);
  wire::CommandIssuedT issued;
  issued.cmd_id = cmd_id;
  issued.kind = CommandKindName(kind);
  issued.targets = *targets;
  issued.issuer = issuer;
  issued.deadline_ms = c.deadline_ms;
  StageEvent("command", kBrokerName, std::move(issued));
  spdlog::info("command {} ({}) from {} to {} target(s) on {}", cmd_id, CommandKindName(kind), issuer,
               targets->size(), topic);
  // Published only after the group commit (Queue order == send order).
  Queue(Sock::kPub, {topic, envelope});
  for (const auto& node : *targets) tracker->MarkSent(c, node, now);
  c.watchers.insert(WatcherKey(reply_sock_, rid));
  PushStatus(c, WatcherKey(reply_sock_, rid), e.msg_id());
}

void Broker::Impl::PushStatus(CommandEntry& c, const std::string& watcher, uint64_t reply_to) {
  wire::BodyUnion b;
  b.Set(CommandTracker::StatusOf(c));
  reply_sock_ = static_cast<Sock>(watcher[0]);
  Reply(watcher.substr(1), reply_to, std::move(b));
}

wire::WorkflowStatusT Broker::Impl::ToWire(const WorkflowRecord& r) {
  wire::WorkflowStatusT w;
  w.run_id = r.run_id;
  w.kind = r.kind;
  w.state = r.status;
  w.step = r.step;
  w.finished = r.finished();
  w.error = r.error;
  // The report quotes agents' text, which need not be UTF-8 (dump() would throw).
  w.report_json = r.report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  w.started_at_ms = r.started_at_ms;
  w.finished_at_ms = r.finished_at_ms;
  return w;
}

void Broker::Impl::HandleStartWorkflow(const std::string& rid, const wire::Envelope& e) {
  const auto* sw = e.body_as_StartWorkflow();
  auto r = workflows->Start(Str(sw->kind()), Str(sw->params_json()));
  if (!r.ok()) return ReplyError(rid, e.msg_id(), r.status());
  wire::BodyUnion b;
  b.Set(ToWire(*r));
  Reply(rid, e.msg_id(), std::move(b));
}

void Broker::Impl::HandleGetWorkflow(const std::string& rid, const wire::Envelope& e) {
  const uint64_t id = e.body_as_GetWorkflowStatus()->run_id();
  auto r = workflows->Get(id);
  if (!r && id == 0) r = workflows->Latest();
  if (!r) return ReplyError(rid, e.msg_id(), Status::NotFound("no workflow " + std::to_string(id)));
  wire::BodyUnion b;
  b.Set(ToWire(*r));
  Reply(rid, e.msg_id(), std::move(b));
}

void Broker::Impl::HandleAppendEvent(const std::string& rid, const wire::Envelope& e) {
  wire::AppendEventT a;
  e.body_as_AppendEvent()->UnPackTo(&a);
  events->Stage(batch, a.kind, a.node, std::move(a.body));
  wire::BodyUnion b;
  b.Set(wire::HeartbeatAckT{});  // a plain "done" once it is durable
  Reply(rid, e.msg_id(), std::move(b));
}

void Broker::Impl::HandleGetStatus(const std::string& rid, const wire::Envelope& e, const std::string& agent) {
  CommandEntry* c = tracker->Find(e.body_as_GetCommandStatus()->cmd_id());
  if (c != nullptr && !agent.empty() && !(c->targets.size() == 1 && c->targets.count(agent) == 1)) {
    return ReplyError(rid, e.msg_id(),
                      Status::PermissionDenied("an agent key may only follow commands addressed to its own node"));
  }
  if (c == nullptr) {
    return ReplyError(rid, e.msg_id(),
                      Status::NotFound("command " + std::to_string(e.body_as_GetCommandStatus()->cmd_id()) +
                                       " is not known to the broker (finished long ago?)"));
  }
  c->watchers.insert(WatcherKey(reply_sock_, rid));
  PushStatus(*c, WatcherKey(reply_sock_, rid), e.msg_id());
}

void Broker::Impl::HandleFetch(const std::string& rid, const wire::Envelope& e) {
  const auto* f = e.body_as_FetchEvents();
  uint32_t max = f->max_events() == 0 ? 1000 : std::min<uint32_t>(f->max_events(), 10000);
  auto page = f->backward() ? events->ReadNewest(f->from_seq(), max, Str(f->kind_prefix()),
                                                 opt.max_event_page_bytes, kMaxBackwardScan)
                            : events->Read(f->from_seq(), max, Str(f->kind_prefix()), opt.max_event_page_bytes);
  if (!page.ok()) return ReplyError(rid, e.msg_id(), page.status());
  flatbuffers::FlatBufferBuilder fbb(64 * 1024);
  std::vector<flatbuffers::Offset<wire::EventBlob>> blobs;
  blobs.reserve(page->events.size());
  for (const auto& ev : page->events) {
    fbb.ForceVectorAlignment(ev.size(), 1, 8);
    auto data = fbb.CreateVector(reinterpret_cast<const uint8_t*>(ev.data()), ev.size());
    blobs.push_back(wire::CreateEventBlob(fbb, data));
  }
  auto vec = fbb.CreateVector(blobs);
  auto p = wire::CreateEventPage(fbb, vec, page->next_seq, page->head_seq, page->first_seq);
  EnvelopeHeader h;
  h.sender = kBrokerName;
  h.msg_id = next_msg_id++;
  h.reply_to = e.msg_id();
  h.sent_at_ms = Now();
  FinishEnvelope(fbb, h, wire::Body::EventPage, p.Union());
  // On the socket the request came in on: the broker's own HTTP side fetches over inproc.
  Queue(reply_sock_, {rid, std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize())});
}

}  // namespace ledgerkeep
