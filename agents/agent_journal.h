// AgentJournal: what an agent must not forget across a crash (DESIGN.md §2).
//
//  - every command it accepted (cmd_id -> accepted | done + result), so a
//    redelivered command is never executed twice, and a command interrupted
//    by a crash is reported as interrupted after restart;
//  - its outbox: every report (ack, progress, result, note) with its seq,
//    kept until the broker acknowledges it, so no report is lost while the
//    broker is away.
// Accept/Complete write the command state and its report in one atomic
// batch. RocksDB writes use sync=false: they survive SIGKILL of the agent
// (not power loss, which the broker's own redelivery covers).
// Thread-safety: one owner thread (the agent's).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ledgerkeep {

struct OutboxEntry {
  uint64_t seq = 0;
  std::string envelope;  // Envelope{Report}
};

struct JournaledCommand {
  bool done = false;
  std::string result;  // packed CommandResult flatbuffer when done
};

class AgentJournal {
 public:
  virtual ~AgentJournal() = default;

  // RocksDB-backed journal under `dir`.
  static Result<std::unique_ptr<AgentJournal>> OpenDurable(const std::string& dir);
  // Memory-only journal (benchmarks with many agents in one process).
  static std::unique_ptr<AgentJournal> InMemory();

  virtual Result<std::optional<JournaledCommand>> GetCommand(uint64_t cmd_id) = 0;
  virtual Status Accept(uint64_t cmd_id, const OutboxEntry& ack) = 0;
  virtual Status Complete(uint64_t cmd_id, const std::string& result, const OutboxEntry& report) = 0;
  virtual Status Append(const OutboxEntry& report) = 0;
  // Drops outbox entries with seq <= upto.
  virtual Status AckUpTo(uint64_t upto) = 0;
  // Outbox entries with seq > after, ascending.
  virtual Result<std::vector<OutboxEntry>> Unacked(uint64_t after) = 0;
  // Commands accepted but never completed (interrupted by a crash).
  virtual Result<std::vector<uint64_t>> Interrupted() = 0;
  // Highest report seq ever produced (0 if none).
  virtual uint64_t last_seq() const = 0;
};

}  // namespace ledgerkeep
