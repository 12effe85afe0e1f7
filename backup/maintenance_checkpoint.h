// A replica's checkpoints for the online maintenance window (issue 15).
//
// While the cluster is wedged, each replica takes a RocksDB checkpoint (hard
// links, milliseconds) of its ledger at the stop point; the ledger runs again
// at once and the checkpoint is shipped afterwards as the snapshot of the
// run's set. Until it is shipped it stays beside the DB:
//   <db parent>/.ledgerkeep-maintenance-<run>/       the checkpoint
//   <db parent>/.ledgerkeep-maintenance-<run>.json   what it holds (written last)
// The JSON: {"run", "stop_point", "genesis", "last_reachable", "last",
// "stop_digest", "taken_at_ms", "wedged_since_ms", "snapshot_id",
// "shipped"}. A checkpoint without its JSON is a torn take and is deleted.
// Shipping marks the JSON shipped and deletes the checkpoint; the JSON stays
// so a repeated ship answers at once, until the next run's take removes it.
// A checkpoint pins SST files compaction would delete: up to the size of the
// DB's SSTs while it waits, so a take (and the preflight's check) refuses
// when the DB's file system has less free space than that.
// Thread-safety: calls for one DB are serialised by the caller (the agent's
// maintenance lane and its backup lane touch different runs' files only
// through Find/MarkShipped, which tolerate each other).
#pragma once

#include <cstdint>
#include <string>

#include "backup/backup_source.h"
#include "common/clock.h"
#include "common/status.h"

namespace ledgerkeep {

struct MaintenanceCheckpointInfo {
  uint64_t run = 0;
  uint64_t stop_point = 0;
  PreparedCheckpoint checkpoint;  // dir and block ids
  std::string stop_digest;        // hex digest of the block at the stop point
  int64_t taken_at_ms = 0;
  int64_t wedged_since_ms = 0;    // when ledgerd reached the stop point (its clock)
  int64_t took_ms = 0;            // the checkpoint call itself
  std::string snapshot_id;        // the snapshot it ships as (named for taken_at_ms)
  bool shipped = false;           // complete at the destination; the checkpoint is deleted
};

struct CheckpointSpace {
  uint64_t db_bytes = 0;    // the ledger DB's SST files: what a checkpoint can pin
  uint64_t free_bytes = 0;  // available to this process on the DB's file system
  uint64_t held_bytes = 0;  // files only kept maintenance checkpoints still hold
};

class MaintenanceCheckpoints {
 public:
  // `ledger_db`: the ledger's RocksDB directory; `ledger_control`: ledgerd's
  // control socket.
  MaintenanceCheckpoints(std::string ledger_db, std::string ledger_control, const Clock* clock);

  Result<CheckpointSpace> Space() const;
  // NoSpace, saying how much is free and needed, when the free space is
  // below `min_free_bytes` (0 = the size of the DB's SST files).
  Status CheckSpace(uint64_t min_free_bytes) const;

  // Takes run `run`'s checkpoint: ledgerd must be wedged at `stop_point`
  // (FailedPrecondition otherwise), the space check must pass, and the
  // checkpoint must end at the stop point (else it is deleted and the take
  // fails). Taken already (a repeated request): returns the one there.
  // Removes the checkpoints of earlier runs once this one is taken.
  Result<MaintenanceCheckpointInfo> Take(uint64_t run, uint64_t stop_point, uint64_t min_free_bytes);
  // NotFound when this node has no checkpoint of `run`.
  Result<MaintenanceCheckpointInfo> Find(uint64_t run) const;
  // The snapshot is complete: deletes the checkpoint, records it shipped.
  Status MarkShipped(uint64_t run);
  // Deletes run `run`'s checkpoint and its record (a rollback).
  Status Release(uint64_t run);

  std::string DirOf(uint64_t run) const;

 private:
  std::string RecordOf(uint64_t run) const;
  Status WriteRecord(const MaintenanceCheckpointInfo& info) const;
  void RemoveOtherRuns(uint64_t keep) const;

  std::string ledger_db_;
  std::string ledger_control_;
  std::string parent_;
  const Clock* clock_;
};

}  // namespace ledgerkeep
