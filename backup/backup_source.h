// The source of a backup run (DESIGN.md §6): a RocksDB checkpoint from the
// running ledgerd; or, when ledgerd is stopped, the DB itself under its own
// lock; otherwise a live copy marked consistent=false. Releasing it (the
// destructor) deletes the checkpoint or drops the lock.
// Crash behaviour: a checkpoint left by a killed run is deleted by the next
// TakeBackupSource (runs are one at a time per node).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace ledgerkeep {

struct BackupSource {
  std::string dir;
  std::string kind;  // "checkpoint" | "stopped" | "live"
  bool consistent = false;
  uint64_t genesis = 0, last_reachable = 0, last = 0;
  std::string checkpoint_dir;  // to delete afterwards
  int lock_fd = -1;            // the DB's LOCK while copying a stopped DB

  BackupSource() = default;
  BackupSource(const BackupSource&) = delete;
  BackupSource& operator=(const BackupSource&) = delete;
  ~BackupSource();
};

// A checkpoint taken earlier, and the blocks it holds (what ledgerd said
// when it took it).
struct PreparedCheckpoint {
  std::string dir;  // "" = none
  uint64_t genesis = 0, last_reachable = 0, last = 0;
};

// The source for a prepared checkpoint: consistent, never deleted by the
// release. NotFound when its directory is gone.
Result<std::unique_ptr<BackupSource>> UsePreparedCheckpoint(const PreparedCheckpoint& checkpoint);

// Takes the source for snapshot `id` of the ledger DB `ledger_db`, whose
// ledgerd listens on `ledger_control` ("" = none). FailedPrecondition
// without a DB configured, NotFound if it does not exist.
Result<std::unique_ptr<BackupSource>> TakeBackupSource(const std::string& ledger_db,
                                                       const std::string& ledger_control, const std::string& id);

}  // namespace ledgerkeep
