// EventLog: the broker's durable, replayable event log (DESIGN.md §2, §3).
//
// Entries are Envelope{body: Event} buffers keyed by their 8-byte big-endian
// sequence number in one column family; seq is global, dense and starts at 1.
// Appending is two-phase so the broker can group-commit: Stage() assigns the
// next seq and adds the entry to the caller's batch; after the batch is
// written with sync=true the caller calls Commit() (entries become readable
// and may be published) or, if the write failed, Abort() (the seqs are
// reused). Retention drops the oldest entries by count and age; it never
// drops the newest entry.
// Thread-safety: one owner thread (the broker's).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/codec.h"
#include "common/kv_store.h"

namespace ledgerkeep {

struct EventLogOptions {
  // Keep at most this many entries. Default: 1,000,000.
  uint64_t retain_count = 1'000'000;
  // Drop entries older than this. Default: 30 days.
  int64_t retain_age_ms = 30LL * 24 * 3600 * 1000;
};

struct StagedEvent {
  uint64_t seq = 0;
  std::string topic;  // "evt.<kind>.<node>"
  std::string bytes;  // the Envelope as stored and published
};

struct EventPageData {
  std::vector<std::string> events;  // envelopes, ascending seq
  uint64_t next_seq = 0;            // where the next page starts
  uint64_t head_seq = 0;            // newest committed seq
  uint64_t first_seq = 0;           // oldest retained seq (0 if empty)
};

class EventLog {
 public:
  EventLog(KvStore* store, int cf, EventLogOptions options, const Clock* clock,
           std::string sender);

  // Reads the first and last seq from the store. Call once before use.
  Status Load();

  // Adds an event to `batch` with the next seq (see class comment).
  const StagedEvent& Stage(KvStore::Batch& batch, const std::string& kind,
                           const std::string& node, wire::EventBodyUnion body);
  // The entries staged since the last Commit/Abort, in seq order.
  const std::vector<StagedEvent>& staged() const { return staged_; }
  void Commit();
  void Abort();

  // Up to `max_events` committed entries with seq >= from_seq whose
  // "<kind>.<node>" starts with `prefix`, and at most `max_bytes` in total.
  Result<EventPageData> Read(uint64_t from_seq, uint32_t max_events, const std::string& prefix,
                             size_t max_bytes) const;
  // The newest of them instead, scanning backwards from `upto_seq` (above
  // the head: from the head): up to `max_events` committed entries with
  // seq <= upto_seq that match `prefix`, at most `max_bytes` in total,
  // examining at most `max_scanned` entries. Events in ascending seq;
  // next_seq is the highest seq not yet examined, where the next page
  // continues (as its upto_seq), or 0 when no older entry is left.
  Result<EventPageData> ReadNewest(uint64_t upto_seq, uint32_t max_events, const std::string& prefix,
                                   size_t max_bytes, uint64_t max_scanned) const;

  // Stages deletion of entries beyond the retention limits.
  Status StageRetention(KvStore::Batch& batch);

  uint64_t head_seq() const { return committed_head_; }
  uint64_t first_seq() const { return first_seq_; }

  static std::string Topic(const std::string& kind, const std::string& node) {
    return "evt." + kind + "." + node;
  }

 private:
  // Whether the stored entry `value` (seq `seq`) matches `prefix`.
  static Result<bool> Matches(uint64_t seq, std::string_view value, const std::string& prefix);

  KvStore* store_;
  int cf_;
  EventLogOptions options_;
  const Clock* clock_;
  std::string sender_;
  uint64_t committed_head_ = 0;
  uint64_t first_seq_ = 0;  // 0 = empty
  uint64_t pending_first_ = 0;
  std::vector<StagedEvent> staged_;
};

}  // namespace ledgerkeep
