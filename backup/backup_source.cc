#include "backup/backup_source.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "backup/ledger_probe.h"
#include "ledger/control_client.h"
#include "ledger/ledger_store.h"

namespace ledgerkeep {

BackupSource::~BackupSource() {
  if (lock_fd >= 0) ::close(lock_fd);  // releases the fcntl lock
  if (!checkpoint_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(checkpoint_dir, ec);
  }
}

Result<std::unique_ptr<BackupSource>> UsePreparedCheckpoint(const PreparedCheckpoint& checkpoint) {
  std::error_code ec;
  if (checkpoint.dir.empty() || !std::filesystem::is_directory(checkpoint.dir, ec)) {
    return Status::NotFound("checkpoint " + checkpoint.dir + " does not exist");
  }
  auto src = std::make_unique<BackupSource>();
  src->dir = checkpoint.dir;
  src->kind = "checkpoint";
  src->consistent = true;
  src->genesis = checkpoint.genesis;
  src->last_reachable = checkpoint.last_reachable;
  src->last = checkpoint.last;
  return src;
}

Result<std::unique_ptr<BackupSource>> TakeBackupSource(const std::string& ledger_db,
                                                       const std::string& ledger_control, const std::string& id) {
  auto src = std::make_unique<BackupSource>();
  if (ledger_db.empty()) {
    return Status::FailedPrecondition(
        "this agent has no [ledger] db in its node config; nothing to back up");
  }
  if (std::error_code ec; !std::filesystem::exists(ledger_db, ec)) {
    return Status::NotFound("ledger DB " + ledger_db + " does not exist");
  }
  // Checkpoints of runs that were killed hold hard links to old SST files
  // forever: remove them (runs are one at a time per node).
  {
    std::error_code ec;
    const auto parent = std::filesystem::path(ledger_db).parent_path();
    for (std::filesystem::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename().string().rfind(".ledgerkeep-checkpoint-", 0) == 0) {
        std::error_code rm;
        std::filesystem::remove_all(it->path(), rm);
        spdlog::info("removed the checkpoint of an interrupted run: {}", it->path().string());
      }
    }
  }
  // 1. A checkpoint from the running ledgerd.
  if (!ledger_control.empty()) {
    ledger::ControlClientOptions co;
    co.timeout = std::chrono::milliseconds(1000);
    ledger::LedgerControlClient client(ledger_control, co);
    const std::string dir =
        std::filesystem::path(ledger_db).parent_path().string() + "/.ledgerkeep-checkpoint-" + id;
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    // Ask quickly whether ledgerd is up (it removes its socket when it
    // stops); only then wait for a checkpoint, which flushes memtables.
    auto up = LedgerdListening(ledger_control)
                  ? client.GetStatus()
                  : Result<ledger::LedgerStatus>(Status::Unavailable("ledgerd is not running"));
    auto cp = up.ok() ? client.Checkpoint(dir) : Result<ledger::CheckpointInfo>(up.status());
    if (cp.ok()) {
      src->dir = dir;
      src->checkpoint_dir = dir;
      src->kind = "checkpoint";
      src->consistent = true;
      src->genesis = cp->genesis;
      src->last_reachable = cp->last_reachable;
      src->last = cp->last;
      return src;
    }
    spdlog::info("no checkpoint from ledgerd ({}); checking whether it is stopped", cp.status().ToString());
  }
  // 2. ledgerd stopped: the DB is quiescent; hold its lock while copying.
  int fd = TryLockLedgerDb(ledger_db);  // an OFD lock: the checksum pass reading LOCK keeps it
  auto store = ledger::LedgerStore::OpenReadOnly(ledger_db);
  if (!store.ok()) {
    if (fd >= 0) ::close(fd);
    return store.status().WithContext("cannot read ledger DB " + ledger_db);
  }
  auto ids = (*store)->GetBlockIds();
  store->reset();
  src->dir = ledger_db;
  src->genesis = ids.genesis;
  src->last_reachable = ids.last_reachable;
  src->last = ids.last;
  if (fd >= 0) {
    src->lock_fd = fd;
    src->kind = "stopped";
    src->consistent = true;
  } else {
    // 3. Running but cannot checkpoint: a live copy, not restorable as is.
    src->kind = "live";
    src->consistent = false;
  }
  return src;
}

}  // namespace ledgerkeep
