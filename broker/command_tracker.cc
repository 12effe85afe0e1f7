#include "broker/command_tracker.h"

#include <spdlog/spdlog.h>

namespace ledgerkeep {
namespace {

std::string TargetKey(uint64_t cmd_id, const std::string& node) {
  return EncodeU64BE(cmd_id) + node;
}

std::string PackTarget(const wire::TargetStatusT& t) {
  flatbuffers::FlatBufferBuilder fbb(128);
  fbb.Finish(wire::TargetStatus::Pack(fbb, &t));
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

Result<wire::TargetStatusT> UnpackTarget(std::string_view bytes) {
  auto buf = std::make_unique<uint64_t[]>((bytes.size() + 7) / 8 + 1);
  std::memcpy(buf.get(), bytes.data(), bytes.size());
  const auto* p = reinterpret_cast<const uint8_t*>(buf.get());
  flatbuffers::Verifier v(p, bytes.size());
  if (!v.VerifyBuffer<wire::TargetStatus>(nullptr)) {
    return Status::Corruption("stored command target state failed verification");
  }
  wire::TargetStatusT t;
  flatbuffers::GetRoot<wire::TargetStatus>(p)->UnPackTo(&t);
  return t;
}

}  // namespace

CommandTracker::CommandTracker(KvStore* store, int envelopes_cf, int targets_cf,
                               TrackerOptions options)
    : store_(store), envelopes_cf_(envelopes_cf), targets_cf_(targets_cf), options_(options) {}

Result<uint64_t> CommandTracker::Load() {
  uint64_t next_id = 1;
  Status inner;
  Status s = store_->Scan(envelopes_cf_, "", "", [&](std::string_view key, std::string_view value) {
    uint64_t id = DecodeU64BE(key);
    next_id = std::max(next_id, id + 1);
    auto env = DecodeEnvelope(value);
    if (!env.ok() || (*env)->body_as_Command() == nullptr) {
      spdlog::error("stored command {} is unreadable ({}); dropping it", id, env.status().ToString());
      return true;
    }
    const auto* cmd = (*env)->body_as_Command();
    CommandEntry c;
    c.cmd_id = id;
    c.kind = cmd->body_type();
    c.envelope = std::string(value);
    c.issued_at_ms = cmd->issued_at_ms();
    c.deadline_ms = cmd->deadline_ms();
    c.issuer = cmd->issuer() ? cmd->issuer()->str() : "";
    commands_.emplace(id, std::move(c));
    return true;
  });
  LK_RETURN_IF_ERROR(s);
  s = store_->Scan(targets_cf_, "", "", [&](std::string_view key, std::string_view value) {
    if (key.size() <= 8) return true;
    uint64_t id = DecodeU64BE(key);
    auto it = commands_.find(id);
    if (it == commands_.end()) return true;
    auto t = UnpackTarget(value);
    if (!t.ok()) {
      inner = t.status();
      return false;
    }
    std::string node(key.substr(8));
    it->second.targets[node] = std::move(*t);
    return true;
  });
  LK_RETURN_IF_ERROR(s);
  LK_RETURN_IF_ERROR(inner);
  for (auto& [id, c] : commands_) {
    UpdateFinished(c);
    c.dirty = false;
  }
  Trim();
  return next_id;
}

CommandEntry& CommandTracker::Add(KvStore::Batch& batch, uint64_t cmd_id, wire::CommandBody kind,
                                  std::string envelope, std::string topic, int64_t issued_at_ms,
                                  int64_t deadline_ms, std::string issuer,
                                  const std::vector<std::string>& targets) {
  CommandEntry c;
  c.cmd_id = cmd_id;
  c.kind = kind;
  c.envelope = std::move(envelope);
  c.topic = std::move(topic);
  c.issued_at_ms = issued_at_ms;
  c.deadline_ms = deadline_ms;
  c.issuer = std::move(issuer);
  batch.Put(envelopes_cf_, EncodeU64BE(cmd_id), c.envelope);
  for (const auto& node : targets) {
    wire::TargetStatusT t;
    t.node_id = node;
    t.state = wire::TargetState::Pending;
    StageTarget(batch, c, t);
    c.targets.emplace(node, std::move(t));
  }
  return commands_.emplace(cmd_id, std::move(c)).first->second;
}

CommandEntry* CommandTracker::Find(uint64_t cmd_id) {
  auto it = commands_.find(cmd_id);
  return it == commands_.end() ? nullptr : &it->second;
}

std::vector<CommandEntry*> CommandTracker::Unfinished() {
  std::vector<CommandEntry*> out;
  for (auto& [id, c] : commands_)
    if (!c.finished) out.push_back(&c);
  return out;
}

std::vector<CommandEntry*> CommandTracker::PendingFor(const std::string& node) {
  std::vector<CommandEntry*> out;
  for (auto& [id, c] : commands_) {
    if (c.finished) continue;
    auto it = c.targets.find(node);
    if (it != c.targets.end() && (it->second.state == wire::TargetState::Pending ||
                                  it->second.state == wire::TargetState::Delivered)) {
      out.push_back(&c);
    }
  }
  return out;
}

void CommandTracker::StageTarget(KvStore::Batch& batch, const CommandEntry& c,
                                 const wire::TargetStatusT& t) {
  batch.Put(targets_cf_, TargetKey(c.cmd_id, t.node_id), PackTarget(t));
}

void CommandTracker::MarkSent(CommandEntry& c, const std::string& node, int64_t now_ms) {
  c.last_sent_ms[node] = now_ms;
  auto it = c.targets.find(node);
  if (it != c.targets.end() && it->second.state == wire::TargetState::Pending) {
    it->second.state = wire::TargetState::Delivered;  // memory only: resend logic is the same
  }
}

bool CommandTracker::OnAck(KvStore::Batch& batch, CommandEntry& c, const std::string& node,
                           bool accepted, const std::string& reason, int64_t now_ms) {
  auto it = c.targets.find(node);
  if (it == c.targets.end()) return false;
  auto& t = it->second;
  if (t.state == wire::TargetState::Acked || t.state == wire::TargetState::Done) return false;
  if (!accepted) {
    return Complete(batch, c, node, wire::ResultStatus::Rejected,
                    static_cast<uint16_t>(StatusCode::kFailedPrecondition),
                    reason.empty() ? "rejected by the agent" : reason, now_ms);
  }
  t.state = wire::TargetState::Acked;
  t.acked_at_ms = now_ms;
  StageTarget(batch, c, t);
  c.dirty = true;
  return true;
}

bool CommandTracker::OnProgress(CommandEntry& c, const std::string& node, const wire::ProgressT& p) {
  auto it = c.targets.find(node);
  if (it == c.targets.end() || it->second.state == wire::TargetState::Done) return false;
  it->second.last_progress = std::make_unique<wire::ProgressT>(p);
  c.dirty = true;
  return true;
}

bool CommandTracker::OnResult(KvStore::Batch& batch, CommandEntry& c, const std::string& node,
                              const wire::CommandResultT& r, int64_t now_ms) {
  auto it = c.targets.find(node);
  if (it == c.targets.end() || it->second.state == wire::TargetState::Done) return false;
  auto& t = it->second;
  if (t.acked_at_ms == 0) t.acked_at_ms = now_ms;
  t.state = wire::TargetState::Done;
  t.done_at_ms = now_ms;
  t.result = std::make_unique<wire::CommandResultT>(r);
  StageTarget(batch, c, t);
  c.dirty = true;
  return true;
}

bool CommandTracker::Complete(KvStore::Batch& batch, CommandEntry& c, const std::string& node,
                              wire::ResultStatus status, uint16_t code, const std::string& message,
                              int64_t now_ms) {
  wire::CommandResultT r;
  r.cmd_id = c.cmd_id;
  r.status = status;
  r.error_code = code;
  r.message = message;
  r.finished_at_ms = now_ms;
  return OnResult(batch, c, node, r, now_ms);
}

bool CommandTracker::UpdateFinished(CommandEntry& c) {
  if (c.finished) return false;
  for (const auto& [node, t] : c.targets)
    if (t.state != wire::TargetState::Done) return false;
  c.finished = true;
  c.dirty = true;
  return true;
}

void CommandTracker::Trim() {
  size_t finished = 0;
  for (const auto& [id, c] : commands_) finished += c.finished ? 1 : 0;
  for (auto it = commands_.begin(); it != commands_.end() && finished > options_.keep_finished;) {
    if (it->second.finished && it->second.watchers.empty()) {
      it = commands_.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
}

wire::CommandStatusT CommandTracker::StatusOf(const CommandEntry& c) {
  wire::CommandStatusT s;
  s.cmd_id = c.cmd_id;
  s.kind = std::string(CommandKindName(c.kind));
  s.issued_at_ms = c.issued_at_ms;
  s.deadline_ms = c.deadline_ms;
  s.finished = c.finished;
  for (const auto& [node, t] : c.targets) {
    auto copy = std::make_unique<wire::TargetStatusT>();
    copy->node_id = t.node_id;
    copy->state = t.state;
    copy->acked_at_ms = t.acked_at_ms;
    copy->done_at_ms = t.done_at_ms;
    if (t.result) copy->result = std::make_unique<wire::CommandResultT>(*t.result);
    if (t.last_progress) copy->last_progress = std::make_unique<wire::ProgressT>(*t.last_progress);
    s.targets.push_back(std::move(copy));
  }
  return s;
}

}  // namespace ledgerkeep
