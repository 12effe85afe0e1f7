// LedgerNode: the running replica inside ledgerd. It owns a LedgerStore and
// one producer thread that adds blocks on the cluster clock, catches up by
// state transfer, and honours wedge stop points.
//
// Cluster clock: meta holds an epoch (base_block, base_time_ms); the target
// height at time t is base_block + floor((t - base_time_ms) * rate / 1000),
// capped at the wedge stop point. Replicas given the same genesis time and
// rate agree on the height without talking to each other. A replica more
// than `state_transfer_threshold` blocks behind fetches the gap by state
// transfer (top-down into st_chain, then linked bottom-up).
//
// Thread-safety: all public methods are thread-safe (the control server calls
// them from its own thread). Crash behaviour: see LedgerStore; a crash during
// state transfer resumes it on the next start.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "ledger/block.h"
#include "ledger/ledger_types.h"

namespace ledgerkeep::ledger {

struct LedgerNodeOptions {
  std::string db_path;
  // Serve queries only: no production, writes refused. Default: false.
  bool read_only = false;
  // Chain content, fixed when the DB is created (later runs use meta).
  ChainParams params;
  // Cluster genesis time; used when the DB is created. Default: now.
  std::optional<int64_t> genesis_time_ms;
  // Block production rate on the cluster clock; 0 = as fast as possible.
  // Default: 50.
  double blocks_per_sec = 50;
  // State transfer fetch rate; 0 = unlimited. Default: 1000.
  double st_blocks_per_sec = 1000;
  // A replica further behind its target than this catches up by state
  // transfer instead of producing. Default: 150 (one checkpoint window).
  uint64_t state_transfer_threshold = kCheckpointWindow;
  // Produced blocks count as slow path while set. Default: false.
  bool fault_slow_path = false;
  // Memtable size per column family. Default: 4 MiB.
  size_t write_buffer_size = 4 << 20;
  // Wall clock in ms since the Unix epoch. Default: std::chrono::system_clock.
  std::function<int64_t()> clock;
};

// True when `s` is behind the cluster (state transfer active, or more than
// `threshold` blocks below the clock's target) and still progressing: state
// transfer did work over the last few seconds (`st_work_per_sec`: block
// digests learned, blocks fetched and linked, per second) or blocks were
// produced. False for a replica that is current, wedged, or behind and
// stuck ("not producing").
bool IsCatchingUp(const LedgerStatus& s, double st_work_per_sec, uint64_t threshold);

class LedgerNode {
 public:
  // Opens (creating if needed, unless read-only) the DB. Does not start
  // producing: call Start().
  static Result<std::unique_ptr<LedgerNode>> Open(LedgerNodeOptions options);
  // Stops the producer and closes the DB (flushed).
  ~LedgerNode();
  LedgerNode(const LedgerNode&) = delete;
  LedgerNode& operator=(const LedgerNode&) = delete;

  // Starts the producer thread (a no-op when read-only).
  Status Start();
  // Stops the producer thread and flushes the DB; idempotent. Every block
  // reported before Stop() returns is in the DB.
  Status Stop();

  LedgerStatus GetStatus() const;
  // Errors: InvalidArgument (not a positive multiple of 150),
  // FailedPrecondition (read-only, or "already past stop point").
  Result<LedgerStatus> Wedge(uint64_t stop_point);
  // Clears the stop point; production resumes from it at the configured
  // rate (epoch := (stop_point, now)). A no-op when not wedged.
  Result<LedgerStatus> Unwedge();
  Result<LedgerStatus> SetFault(bool slow_path);
  // RocksDB checkpoint at absolute `path` (see LedgerStore::CreateCheckpoint).
  // InvalidArgument for a relative path; FailedPrecondition when read-only.
  Result<CheckpointInfo> Checkpoint(const std::string& path);
  Result<BlockInfo> GetBlock(uint64_t id, bool include_raw) const;
  Result<KeyLookup> GetKey(const std::string& key, uint64_t at_block) const;

 private:
  class Impl;
  explicit LedgerNode(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledgerkeep::ledger
