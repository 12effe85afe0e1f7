// CommandTracker: reliable command delivery state (DESIGN.md §2).
//
// A command is stored (its Command envelope, and one TargetStatus per
// target) in the caller's batch *before* it is published. Each target moves
// Pending -> Delivered (sent) -> Acked -> Done (result stored). Targets that
// have not acked within ack_timeout are due for direct redelivery over ctl;
// Pending targets at the deadline become Done/Expired; Acked targets whose
// node is lost become Done/Failed. A command is finished when every target
// is Done.
// Persisted in two column families: envelopes (cmd_id -> Command envelope)
// and targets (cmd_id ‖ node_id -> TargetStatus flatbuffer), so a restarted
// broker re-sends every pending command.
// Thread-safety: one owner thread (the broker's).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/codec.h"
#include "common/kv_store.h"

namespace ledgerkeep {

struct CommandEntry {
  uint64_t cmd_id = 0;
  wire::CommandBody kind = wire::CommandBody::NONE;  // CommandKindName() for events and status
  std::string envelope;  // Envelope{Command}, as published
  std::string topic;     // PUB topic it was published on
  int64_t issued_at_ms = 0;
  int64_t deadline_ms = 0;
  std::string issuer;
  std::map<std::string, wire::TargetStatusT> targets;
  std::map<std::string, int64_t> last_sent_ms;  // not persisted
  std::set<std::string> watchers;               // operator routing ids (not persisted)
  bool finished = false;
  bool dirty = false;          // status changed since last push to watchers
  int64_t last_push_ms = 0;
};

struct TrackerOptions {
  // Redeliver over ctl when a target has not acked for this long. Default: 2000.
  int64_t ack_timeout_ms = 2000;
  // Finished commands kept in memory for status queries. Default: 512.
  size_t keep_finished = 512;
};

class CommandTracker {
 public:
  CommandTracker(KvStore* store, int envelopes_cf, int targets_cf, TrackerOptions options);

  // Loads every command and its targets; returns the next free cmd_id.
  Result<uint64_t> Load();

  // Creates and stages a new command. `envelope` is the Command envelope.
  CommandEntry& Add(KvStore::Batch& batch, uint64_t cmd_id, wire::CommandBody kind, std::string envelope,
                    std::string topic, int64_t issued_at_ms, int64_t deadline_ms, std::string issuer,
                    const std::vector<std::string>& targets);

  CommandEntry* Find(uint64_t cmd_id);
  // Commands that are not finished.
  std::vector<CommandEntry*> Unfinished();
  // Unfinished commands with `node` still Pending/Delivered (not acked).
  std::vector<CommandEntry*> PendingFor(const std::string& node);

  // Target transitions; each stages the changed TargetStatus and returns
  // true if it changed anything.
  bool OnAck(KvStore::Batch& batch, CommandEntry& c, const std::string& node, bool accepted,
             const std::string& reason, int64_t now_ms);
  bool OnProgress(CommandEntry& c, const std::string& node, const wire::ProgressT& p);
  bool OnResult(KvStore::Batch& batch, CommandEntry& c, const std::string& node,
                const wire::CommandResultT& r, int64_t now_ms);
  // Completes `node`'s target with a broker-made result (expired, lost).
  bool Complete(KvStore::Batch& batch, CommandEntry& c, const std::string& node,
                wire::ResultStatus status, uint16_t code, const std::string& message,
                int64_t now_ms);
  void MarkSent(CommandEntry& c, const std::string& node, int64_t now_ms);

  // Re-evaluates `finished`; returns true when it just became finished.
  bool UpdateFinished(CommandEntry& c);
  // Forgets the oldest finished commands beyond keep_finished (memory only).
  void Trim();

  const TrackerOptions& options() const { return options_; }

  static wire::CommandStatusT StatusOf(const CommandEntry& c);

 private:
  void StageTarget(KvStore::Batch& batch, const CommandEntry& c, const wire::TargetStatusT& t);

  KvStore* store_;
  int envelopes_cf_;
  int targets_cf_;
  TrackerOptions options_;
  std::map<uint64_t, CommandEntry> commands_;
};

}  // namespace ledgerkeep
