#include "broker/broker.h"

#include <pthread.h>
#include <zmq.h>

#include <ctime>
#include <random>

#include "broker/broker_impl.h"
#include "broker/maintenance_workflow.h"
#include "broker/wedge_workflows.h"

namespace ledgerkeep {

using broker_internal::kCfMeta;
using broker_internal::kCfNodes;
using broker_internal::kCfCommands;
using broker_internal::kCfTargets;
using broker_internal::kCfEvents;
using broker_internal::kCfWorkflows;
using broker_internal::kBrokerName;
using broker_internal::kNextCmdIdKey;
using broker_internal::Str;

namespace {

const std::vector<std::string> kBrokerCfs = {"meta", "nodes", "commands", "targets", "events", "workflows"};
// The broker's own workflows reach it here, in its context, as operator "broker".
constexpr const char* kInternalEndpoint = "inproc://ledgerkeep-internal";
constexpr const char* kInternalEventsEndpoint = "inproc://ledgerkeep-events";

// Messages drained per loop turn before the group commit.
constexpr int kMaxMessagesPerTurn = 4096;
// How often the timers (liveness, redelivery, deadlines) run.
constexpr int64_t kTickMs = 20;
// Status pushes to watchers at most this often while a command runs.
constexpr int64_t kPushIntervalMs = 200;
constexpr int64_t kRetentionIntervalMs = 10'000;
// How often the allowlist files are compared with what the broker uses.
constexpr int64_t kAllowlistPollMs = 1'000;
// Ctl connections remembered per key (ctl_fds_).
constexpr size_t kMaxCtlFdsPerKey = 16;

}  // namespace

namespace broker_internal {

std::string RandomHex64() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace broker_internal

// ------------------------------------------------------------ set-up
Status Broker::Impl::Open() {
  LK_ASSIGN_OR_RETURN(store, KvStore::Open(opt.data_dir + "/state", kBrokerCfs));
  registry = std::make_unique<NodeRegistry>(opt.config, store.get(), kCfNodes);
  LK_RETURN_IF_ERROR(registry->Load(Now()));
  destinations = std::make_unique<DestinationRules>(registry.get());
  tracker = std::make_unique<CommandTracker>(store.get(), kCfCommands, kCfTargets, opt.tracker);
  LK_ASSIGN_OR_RETURN(next_cmd_id, tracker->Load());
  LK_ASSIGN_OR_RETURN(auto stored_next, store->Get(kCfMeta, kNextCmdIdKey));
  if (stored_next && stored_next->size() == 8) {
    next_cmd_id = std::max(next_cmd_id, DecodeU64BE(*stored_next));
  }
  events = std::make_unique<EventLog>(store.get(), kCfEvents, opt.events, opt.clock, kBrokerName);
  LK_RETURN_IF_ERROR(events->Load());
  workflows = std::make_unique<WorkflowManager>(store.get(), kCfWorkflows, &ctx, kInternalEndpoint,
                                                opt.config, opt.clock);
  RegisterWedgeWorkflows(*workflows);
  RegisterMaintenanceWorkflow(*workflows);
  allowlist_watch = std::make_unique<AllowlistWatcher>(opt.config.path);
  return workflows->Load();
}

void Broker::Impl::Run(zmq::socket_t& pipe, std::promise<Status>& ready) {
  zmq::socket_t zap(ctx, zmq::socket_type::rep);
  zmq::socket_t ctl(ctx, zmq::socket_type::router);
  zmq::socket_t pub(ctx, zmq::socket_type::pub);
  zmq::socket_t xpub(ctx, zmq::socket_type::xpub);
  zmq::socket_t internal(ctx, zmq::socket_type::router);
  try {
    internal.set(zmq::sockopt::linger, 0);
    internal.set(zmq::sockopt::router_mandatory, 1);
    internal.bind(kInternalEndpoint);
    zap.set(zmq::sockopt::linger, 0);
    zap.bind("inproc://zeromq.zap.01");
    for (auto* s : {&ctl, &pub, &xpub}) ApplyCommonOptions(*s, static_cast<int64_t>(kMaxMessageBytes));
    ctl.set(zmq::sockopt::router_mandatory, 1);
    ctl.set(zmq::sockopt::sndhwm, 100000);
    ctl.set(zmq::sockopt::rcvhwm, 100000);
    pub.set(zmq::sockopt::sndhwm, opt.pub_hwm);
    xpub.set(zmq::sockopt::sndhwm, opt.xpub_hwm);
    if (opt.curve) {
      ConfigureCurveServer(ctl, opt.key, kZapDomainCtl);
      ConfigureCurveServer(pub, opt.key, kZapDomainCmd);
      ConfigureCurveServer(xpub, opt.key, kZapDomainEvents);
    }
    ctl.bind(opt.config.BindEndpoint(opt.config.ctl_port));
    pub.bind(opt.config.BindEndpoint(opt.config.cmd_port));
    xpub.bind(opt.config.BindEndpoint(opt.config.events_port));
    xpub.bind(kInternalEventsEndpoint);  // the broker's own HTTP side follows the log here
  } catch (const zmq::error_t& e) {
    ready.set_value(Status::Unavailable(
        std::string("cannot bind broker endpoints on ") + opt.config.bind_host + " ports " +
        std::to_string(opt.config.cmd_port) + "/" + std::to_string(opt.config.ctl_port) + "/" +
        std::to_string(opt.config.events_port) + ": " + e.what() +
        " (is another broker running? change the ports in the cluster config)"));
    ready_sent = true;
    return;
  }
  spdlog::info(
      "broker {} serving: cmd {} ctl {} events {}; {} nodes in the allowlist, "
      "{} pending commands, event log at seq {}",
      instance, opt.config.BindEndpoint(opt.config.cmd_port), opt.config.BindEndpoint(opt.config.ctl_port),
      opt.config.BindEndpoint(opt.config.events_port), registry->All().size(), tracker->Unfinished().size(),
      events->head_seq());
  {
    wire::NoteT note;
    note.level = "info";
    note.text = "broker started (instance " + instance + ")";
    wire::EventBodyUnion body;
    body.Set(std::move(note));
    events->Stage(batch, "note", kBrokerName, std::move(body));
  }
  ready.set_value(Status::OK());
  ready_sent = true;  // Start() returns: `ready` is gone
  sockets_ = {&ctl, &pub, &xpub, &internal};
  workflows->ResumeUnfinished();

  std::vector<zmq::pollitem_t> items = {
      {pipe.handle(), 0, ZMQ_POLLIN, 0},     {zap.handle(), 0, ZMQ_POLLIN, 0},
      {ctl.handle(), 0, ZMQ_POLLIN, 0},      {xpub.handle(), 0, ZMQ_POLLIN, 0},
      {internal.handle(), 0, ZMQ_POLLIN, 0},
  };
  while (true) {
    int64_t wait = kTickMs;
    if (!events->staged().empty() || batch.Count() > 0 || !out.empty()) wait = 0;
    if (!ack_due_.empty()) wait = std::clamp<int64_t>(ack_due_.begin()->first - Now(), 0, wait);
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(wait));
    if (items[0].revents & ZMQ_POLLIN) break;
    if (items[1].revents & ZMQ_POLLIN) Guarded("a ZAP request", [&] { HandleZap(zap); });
    if (items[3].revents & ZMQ_POLLIN) {
      while (RecvMultipartNoWait(xpub)) {
      }  // subscriptions: libzmq tracks them; nothing to do
    }
    if (items[2].revents & ZMQ_POLLIN) {
      for (int i = 0; i < kMaxMessagesPerTurn; ++i) {
        auto frames = RecvMultipartNoWait(ctl);
        if (!frames) break;
        HandleCtlGuarded(*frames, Sock::kCtl);
      }
    }
    if (items[4].revents & ZMQ_POLLIN) {
      while (auto frames = RecvMultipartNoWait(internal)) HandleCtlGuarded(*frames, Sock::kInternal);
    }
    const int64_t now = Now();
    if (now - last_tick >= kTickMs) {
      last_tick = now;
      Guarded("the timers", [&] { Tick(now); });
    }
    Status s;
    try {
      s = CommitAndFlush();
    } catch (...) {  // half a commit cannot be told from a whole one: restart from the saved state
      s = Status::Internal("internal error while saving and sending: " + CurrentExceptionText());
    }
    if (!s.ok()) {
      spdlog::critical("{}; stopping the broker so that it restarts from its saved state", s.ToString());
      exit_status = s;
      break;
    }
  }
  // Workflows keep their saved state and resume on the next start.
  workflows->StopAll();
  sockets_ = {};
}

// One ctl message; an exception becomes an ErrorReply to its sender.
void Broker::Impl::HandleCtlGuarded(std::vector<zmq::message_t>& frames, Sock sock) {
  try {
    HandleCtl(frames, sock);
  } catch (...) {
    const std::string what = CurrentExceptionText();
    std::string kind = "a ctl message";
    uint64_t msg_id = 0;
    if (frames.size() == 2) {
      if (auto env = DecodeEnvelope(frames[1].data(), frames[1].size()); env.ok()) {
        kind = BodyName((*env)->body_type());
        msg_id = (*env)->msg_id();
      }
    }
    spdlog::error("internal error handling {}: {}; the broker keeps serving", kind, what);
    if (frames.empty()) return;
    reply_sock_ = sock;
    ReplyError(frames[0].to_string(), msg_id,
               Status::Internal("internal error in the broker handling " + kind + ": " + what +
                                "; the broker keeps serving"));
  }
}

// ------------------------------------------------------------ ZAP
void Broker::Impl::HandleZap(zmq::socket_t& zap) {
  while (auto frames = RecvMultipartNoWait(zap)) {
    auto& f = *frames;
    if (f.size() < 6) continue;  // not a ZAP request; REP needs a reply anyway
    std::string version = f[0].to_string();
    std::string request_id = f[1].to_string();
    std::string domain = f[2].to_string();
    std::string address = f[3].to_string();
    std::string mechanism = f[5].to_string();
    std::string key = f.size() > 6 ? f[6].to_string() : std::string();
    ZapDecision d = zap_policy.Decide(domain, mechanism, key);
    if (!d.allow) spdlog::warn("refused connection from {} to {}: {}", address, domain, d.reason);
    // The status text must outlive `reply` (a ?: of "OK" and a std::string
    // would be a temporary gone before the send: caught by ASan).
    const std::string status_text = d.allow ? std::string("OK") : d.reason;
    std::vector<std::string_view> reply = {"1.0",       request_id, d.allow ? "200" : "400",
                                           status_text, d.user_id,  ""};
    (void)version;
    SendFramesNoWait(zap, reply);
  }
}

void Broker::Impl::Reply(const std::string& rid, uint64_t reply_to, wire::BodyUnion body) {
  EnvelopeHeader h;
  h.sender = kBrokerName;
  h.msg_id = next_msg_id++;
  h.reply_to = reply_to;
  h.sent_at_ms = Now();
  Queue(reply_sock_, {rid, BuildEnvelope(h, std::move(body))});
}

void Broker::Impl::ReplyError(const std::string& rid, uint64_t reply_to, const Status& s) {
  wire::ErrorReplyT e;
  e.code = static_cast<uint16_t>(s.code());
  e.message = s.message();
  wire::BodyUnion b;
  b.Set(std::move(e));
  Reply(rid, reply_to, std::move(b));
}

void Broker::Impl::StageTransition(const NodeTransition& t) {
  spdlog::info("node {} {} -> {} ({})", t.node_id, NodeStateName(t.from), NodeStateName(t.to), t.reason);
  wire::NodeStateChangeT c;
  c.node_id = t.node_id;
  c.role = t.role;
  c.from = t.from;
  c.to = t.to;
  c.reason = t.reason;
  StageEvent("status", t.node_id, std::move(c));
}

void Broker::Impl::SendCommandTo(CommandEntry& c, NodeEntry& n) {
  if (n.routing_id.empty()) return;
  Queue(Sock::kCtl, {n.routing_id, c.envelope});
  tracker->MarkSent(c, n.node_id, Now());
}

void Broker::Impl::NoteFinished(CommandEntry& c) {
  if (!tracker->UpdateFinished(c)) return;
  wire::CommandFinishedT f;
  f.cmd_id = c.cmd_id;
  f.kind = CommandKindName(c.kind);
  for (const auto& [node, t] : c.targets) {
    if (t.result && t.result->status == wire::ResultStatus::Ok) {
      ++f.ok_count;
    } else {
      ++f.failed_count;
    }
  }
  spdlog::info("command {} ({}) finished: {} ok, {} failed", c.cmd_id, CommandKindName(c.kind), f.ok_count,
               f.failed_count);
  recent_finished_.push_back(&c);
  StageEvent("command", kBrokerName, std::move(f));
}

// ------------------------------------------------------------ ctl
void Broker::Impl::HandleCtl(std::vector<zmq::message_t>& frames, Sock sock) {
  reply_sock_ = sock;
  if (frames.size() != 2) {
    spdlog::warn("dropped a ctl message with {} frames (expected 1 payload frame)", frames.size() - 1);
    return;
  }
  const std::string rid = frames[0].to_string();
  const char* uid = zmq_msg_gets(frames[1].handle(), "User-Id");
  std::string user = uid ? uid : "";
  static const AllowEntry kInternalOperator{kBrokerName, wire::Role::Operator, ""};
  if (!opt.curve || sock == Sock::kInternal) {  // benchmark mode / inproc: trust the claimed sender
    auto peek = DecodeEnvelope(frames[1].data(), frames[1].size());
    if (peek.ok()) user = Str((*peek)->sender());
  }
  const AllowEntry* who = sock == Sock::kInternal ? &kInternalOperator : opt.config.FindNode(user);
  const int fd = sock == Sock::kCtl ? zmq_msg_get(frames[1].handle(), ZMQ_SRCFD) : -1;
  if (who == nullptr) {
    if (opt.curve && sock == Sock::kCtl && !user.empty()) {
      // A connection ZAP admitted whose key has left the allowlist since.
      spdlog::warn("dropped a ctl message on the key of '{}', which is no longer in the allowlist; closing "
                   "that connection",
                   user);
      if (fd >= 0) ShutdownAcceptedConnections(opt.config.ctl_port, std::set<int>{fd});
      return;
    }
    spdlog::warn("dropped a ctl message from an unauthenticated peer");
    return;
  }
  if (fd >= 0) {
    auto& fds = ctl_fds_[user];
    if (fds.insert(fd).second && fds.size() > kMaxCtlFdsPerKey) fds.erase(fds.begin());
  }
  auto env = DecodeEnvelope(frames[1].data(), frames[1].size());
  if (!env.ok()) {
    spdlog::warn("rejected a malformed message from '{}': {}", user, env.status().message());
    ReplyError(rid, 0, env.status().WithContext("message rejected"));
    return;
  }
  const wire::Envelope& e = **env;
  if (Str(e.sender()) != user) {
    spdlog::warn("rejected {} claiming to be from '{}' on the key of '{}'", BodyName(e.body_type()),
                 Str(e.sender()), user);
    ReplyError(rid, e.msg_id(),
               Status::PermissionDenied("message claims sender '" + Str(e.sender()) +
                                        "' but the connection's key belongs to '" + user + "'"));
    return;
  }
  const bool is_agent = who->role == wire::Role::Replica || who->role == wire::Role::Client;
  const bool is_operator = who->role == wire::Role::Operator;
  switch (e.body_type()) {
    case wire::Body::Hello:
    case wire::Body::Heartbeat:
    case wire::Body::Report:
      if (!is_agent) break;
      return HandleAgent(rid, user, e);
    case wire::Body::ListNodes:
      if (!is_operator) break;
      return HandleListNodes(rid, e);
    case wire::Body::IssueCommand:
      if (is_agent) return HandleAgentIssue(rid, user, e);
      if (!is_operator) break;
      return HandleIssue(rid, user, e);
    case wire::Body::GetCommandStatus:
      if (is_agent) return HandleGetStatus(rid, e, user);
      if (!is_operator) break;
      return HandleGetStatus(rid, e);
    case wire::Body::FetchEvents:
      if (!is_operator && who->role != wire::Role::Subscriber) break;
      return HandleFetch(rid, e);
    case wire::Body::StartWorkflow:
      if (!is_operator) break;
      return HandleStartWorkflow(rid, e);
    case wire::Body::GetWorkflowStatus:
      if (!is_operator) break;
      return HandleGetWorkflow(rid, e);
    case wire::Body::AppendEvent:
      if (sock != Sock::kInternal) break;
      return HandleAppendEvent(rid, e);
    case wire::Body::AbortWorkflow: {
      if (!is_operator) break;
      auto r = workflows->Abort(e.body_as_AbortWorkflow()->run_id());
      if (!r.ok()) return ReplyError(rid, e.msg_id(), r.status());
      wire::BodyUnion b;
      b.Set(ToWire(*r));
      return Reply(rid, e.msg_id(), std::move(b));
    }
    default:
      ReplyError(rid, e.msg_id(),
                 Status::InvalidArgument("unexpected " + std::string(BodyName(e.body_type())) + " on ctl"));
      return;
  }
  spdlog::warn("refused {} from '{}' ({}): not allowed for that role", BodyName(e.body_type()), user,
               RoleName(who->role));
  ReplyError(rid, e.msg_id(),
             Status::PermissionDenied(std::string(BodyName(e.body_type())) + " is not allowed for role " +
                                      RoleName(who->role) + " (commands need an operator key)"));
}

// ------------------------------------------------------------ timers
void Broker::Impl::Tick(int64_t now) {
  for (const auto& t : registry->Tick(now)) StageTransition(t);
  for (CommandEntry* c : tracker->Unfinished()) {
    for (auto& [node, t] : c->targets) {
      if (t.state == wire::TargetState::Done) continue;
      NodeEntry* n = registry->Find(node);
      const bool lost =
          n == nullptr || n->state == wire::NodeState::Lost || n->state == wire::NodeState::Unknown;
      if (t.state == wire::TargetState::Acked) {
        if (now > c->deadline_ms && lost) {
          tracker->Complete(batch, *c, node, wire::ResultStatus::Failed,
                            static_cast<uint16_t>(StatusCode::kUnavailable),
                            "node " + node + " was lost while running the command", now);
        }
        continue;
      }
      if (now > c->deadline_ms) {
        std::string state = n ? NodeStateName(n->state) : "unknown";
        tracker->Complete(
            batch, *c, node, wire::ResultStatus::Expired, static_cast<uint16_t>(StatusCode::kExpired),
            "deadline passed before " + node + " acknowledged the command (node " + state + ")", now);
        continue;
      }
      auto sent = c->last_sent_ms.find(node);
      const int64_t last = sent == c->last_sent_ms.end() ? 0 : sent->second;
      if (n != nullptr && n->welcomed && !n->routing_id.empty() &&
          now - last >= tracker->options().ack_timeout_ms) {
        spdlog::debug("redelivering command {} to {} over ctl", c->cmd_id, node);
        SendCommandTo(*c, *n);
      }
    }
    NoteFinished(*c);
  }
  for (CommandEntry* c : tracker->Unfinished()) MaybePush(*c, now);
  if (now - last_allowlist_poll_ >= kAllowlistPollMs) {
    last_allowlist_poll_ = now;
    ReloadAllowlist();
  }
  if (now - last_retention >= kRetentionIntervalMs) {
    last_retention = now;
    Status s = events->StageRetention(batch);
    if (!s.ok()) spdlog::error("event log retention: {}", s.ToString());
    trim_due_ = true;
  }
}

void Broker::Impl::ReloadAllowlist() {
  auto reloaded = allowlist_watch->Poll();
  if (!reloaded) return;
  wire::NoteT note;
  if (!reloaded->ok()) {
    spdlog::error("allowlist not reloaded, keeping the one in use: {}", reloaded->status().ToString());
    note.level = "error";
    note.text = "allowlist not reloaded, the broker keeps the one in use: " + reloaded->status().message();
    StageEvent("keys", kBrokerName, std::move(note));
    return;
  }
  const AllowlistChange change = DiffAllowlists(opt.config.allow, (*reloaded)->allow);
  if (change.empty()) return;
  opt.config.allow = std::move((*reloaded)->allow);
  registry->SyncWithAllowlist(batch);
  for (const auto& e : change.removed) CutOff(e);
  spdlog::info("allowlist reloaded: {}", change.Describe());
  note.level = "info";
  note.text = "allowlist reloaded: " + change.Describe();
  StageEvent("keys", kBrokerName, std::move(note));
}

void Broker::Impl::CutOff(const AllowEntry& removed) {
  if (!opt.curve) return;
  // The key's own ctl connections; a later message on one still open is
  // refused and closes it (HandleCtl).
  if (auto it = ctl_fds_.find(removed.node_id); it != ctl_fds_.end()) {
    ShutdownAcceptedConnections(opt.config.ctl_port, it->second);
    ctl_fds_.erase(it);
  }
  // PUB and XPUB tell no connection from another: every one on the port
  // the role uses is closed, and all but the removed key's come back at
  // once through ZAP (agents get missed commands again over ctl, event
  // followers fetch the events they missed by seq).
  const bool agent = removed.role == wire::Role::Replica || removed.role == wire::Role::Client;
  const int port = agent ? opt.config.cmd_port : opt.config.events_port;
  const int n = ShutdownAcceptedConnections(port, std::nullopt);
  spdlog::info("key of '{}' removed: closed {} connection(s) on port {}", removed.node_id, n, port);
}

void Broker::Impl::MaybePush(CommandEntry& c, int64_t now) {
  if (!c.dirty || c.watchers.empty()) return;
  if (!c.finished && now - c.last_push_ms < kPushIntervalMs) return;
  c.dirty = false;
  c.last_push_ms = now;
  for (const auto& w : c.watchers) PushStatus(c, w, 0);
  if (c.finished) c.watchers.clear();
}

// ------------------------------------------------------------ commit
Status Broker::Impl::CommitAndFlush() {
  // Node records change with every report; write each once per turn.
  for (const auto& id : dirty_nodes_) {
    if (NodeEntry* n = registry->Find(id)) registry->Persist(batch, *n);
  }
  dirty_nodes_.clear();
  // Finished commands push right away, not at the next tick.
  const int64_t now = Now();
  for (CommandEntry* c : recent_finished_) MaybePush(*c, now);
  recent_finished_.clear();
  if (batch.Count() > 0) {
    Status s = store->Write(batch, /*sync=*/true);
    batch.Clear();
    if (!s.ok()) {
      events->Abort();
      out.clear();
      return s.WithContext("cannot save broker state");
    }
  }
  const auto staged = events->staged();
  events->Commit();
  // The report acks now due (see ScheduleAck), after the commit above.
  reply_sock_ = Sock::kCtl;
  const int64_t ack_now = Now();
  while (!ack_due_.empty() && ack_due_.begin()->first <= ack_now) {
    const std::string node = std::move(ack_due_.begin()->second);
    ack_due_.erase(ack_due_.begin());
    ack_scheduled_.erase(node);
    NodeEntry* n = registry->Find(node);
    if (n == nullptr || n->routing_id.empty()) continue;
    last_ack_ms_[node] = ack_now;
    wire::ReportAckT a;
    a.upto_seq = n->last_report_seq;
    a.broker_instance = instance;
    wire::BodyUnion b;
    b.Set(std::move(a));
    Reply(n->routing_id, 0, std::move(b));
  }
  for (auto& o : out) {
    zmq::socket_t* s = sockets_[static_cast<size_t>(o.sock)];
    std::vector<std::string_view> views(o.frames.begin(), o.frames.end());
    if (!SendFramesNoWait(*s, views) && o.sock == Sock::kCtl) {
      spdlog::debug("ctl peer gone or slow; a reply was dropped");
    }
  }
  out.clear();
  for (const auto& ev : staged) {
    SendFramesNoWait(*sockets_[static_cast<size_t>(Sock::kXpub)], {ev.topic, ev.bytes});
  }
  if (trim_due_) {
    trim_due_ = false;
    tracker->Trim();  // only here: no CommandEntry* is held across this point
  }
  return Status::OK();
}

Result<std::unique_ptr<Broker>> Broker::Start(BrokerOptions options) {
  if (options.data_dir.empty()) return Status::InvalidArgument("the broker needs --data-dir");
  auto impl = std::make_unique<Impl>(std::move(options));
  LK_RETURN_IF_ERROR(impl->Open());
  impl->pipe_front = std::make_unique<zmq::socket_t>(impl->ctx, zmq::socket_type::pair);
  const std::string pipe_addr = "inproc://broker-pipe";
  impl->pipe_front->bind(pipe_addr);
  std::promise<Status> ready;
  auto ready_future = ready.get_future();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw, pipe_addr, &ready] {
    ::pthread_setname_np(::pthread_self(), "lk-broker");  // for top -H and perf
    zmq::socket_t back(raw->ctx, zmq::socket_type::pair);
    back.connect(pipe_addr);
    try {
      raw->Run(back, ready);
    } catch (...) {  // outside a turn (set-up, shutdown): the broker stops, saying why
      raw->exit_status = Status::Internal("the broker thread failed: " + CurrentExceptionText());
      spdlog::critical("{}", raw->exit_status.message());
      if (!raw->ready_sent) ready.set_value(raw->exit_status);  // Start() is still waiting
    }
    raw->exited = true;
  });
  Status s = ready_future.get();
  if (!s.ok()) {
    impl->thread.join();
    return s;
  }
  return std::unique_ptr<Broker>(new Broker(std::move(impl)));
}

Broker::Broker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Broker::~Broker() { Stop(); }

ClientOptions Broker::InternalClientOptions() const {
  ClientOptions o;
  o.config = impl_->opt.config;
  o.key.name = kBrokerName;
  o.curve = false;  // inproc
  o.context = &impl_->ctx;
  o.endpoint = kInternalEndpoint;
  o.events_endpoint = kInternalEventsEndpoint;
  return o;
}

void Broker::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  SendFramesNoWait(*impl_->pipe_front, {"$TERM"});
  if (impl_->thread.joinable()) impl_->thread.join();
}

bool Broker::Exited() const { return impl_->exited.load(); }

Status Broker::Wait() {
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->stopped = true;
  return impl_->exit_status;
}

}  // namespace ledgerkeep
