// BackupEngine: one backup run of a replica's ledger to its destination
// (DESIGN.md §6; the runbook's steps 1, 2 and 15).
//
// A run: claim the destination (.ledgerkeep-owner; on its own thread,
// alongside the local steps up to the checksums) -> take a consistent
// source (a RocksDB checkpoint from the running ledgerd; or, when ledgerd is
// stopped, the DB itself under its own lock; otherwise a live copy marked
// consistent=false) -> checksum it (carrying over checksums of files
// unchanged since the previous snapshot) -> rsync it whole-file into
// snapshots/<id>/data/ hard-linked to the previous snapshot (--link-dest),
// retrying and resuming broken transfers -> verify nothing differs -> write
// MANIFEST.json, then DONE -> apply retention.
// Crash behaviour: a run interrupted anywhere leaves at most a snapshot
// directory without DONE, which is never listed as complete and is deleted by
// the next run; earlier snapshots are never touched before DONE of the new
// one exists, and retention never deletes the newest complete snapshot.
// Thread-safety: one run at a time per engine (the caller serialises).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backup/backup_destination.h"
#include "backup/backup_manifest.h"
#include "backup/backup_source.h"
#include "backup/destination.h"
#include "backup/rsync.h"
#include "backup/transfer_progress.h"
#include "common/clock.h"
#include "common/process.h"

namespace ledgerkeep {

struct BackupRunOptions {
  BackupDestination destination;
  std::string cluster_id;
  std::string node_id;
  std::string ledger_db;       // the ledger's RocksDB directory
  std::string ledger_control;  // ledgerd's control socket
  // Retention after a successful run (retention.h). 0 = keep all / no age
  // limit. Defaults: 0, 0.
  uint32_t keep_last = 0;
  uint64_t max_age_s = 0;
  bool scheduled = false;
  // rsync tuning. Defaults: 60 s I/O timeout, 4 attempts, backoff from 1 s.
  int io_timeout_s = 60;
  int max_attempts = 4;
  int64_t backoff_base_ms = 1000;
  // Parallel rsync streams for a transfer with enough new data (at least
  // min_stream_bytes per stream and two new files); each stream is its own rsync and,
  // for SSH, its own connection, so sender, ssh and receiver of different
  // streams run on different cores. 1 = one rsync. Default: 2.
  int transfer_streams = 2;
  // Fewer bytes to send than this per stream: fewer streams. Default: 64 MiB.
  uint64_t min_stream_bytes = 64ull << 20;
  // Flush each new file to disk on the destination as soon as rsync has
  // written it, and drop it from the destination's page cache
  // (snapshot_flusher.h): local and SSH destinations (SSH: needs python3 on
  // the backup host). The snapshot is synced before DONE either way.
  // Default: true.
  bool flush_as_written = true;
  // At most this many bytes per second over the whole transfer (rsync
  // --bwlimit); a limited transfer runs as one stream. Default: 0 (none).
  uint64_t bwlimit_bytes_per_s = 0;
  // Checksums, rsync and ssh at nice 19 in the idle I/O class, so a backup
  // beside a running ledger takes what the ledger leaves. Default: false
  // (the node's [backup] background).
  bool background = false;
  // Ship this RocksDB checkpoint, taken earlier (a maintenance window's,
  // issue 15), instead of taking a source; the engine never deletes it.
  // Empty dir = take a source (backup_source.h).
  PreparedCheckpoint prepared;
  // The snapshot's id; "" = one from the clock. Running again with the same
  // id resumes an interrupted snapshot: its files at the destination are kept
  // and only what is missing is sent. When that snapshot is complete already,
  // the run sends nothing and answers with what its manifest says.
  std::string snapshot_id;
  // The snapshot set it belongs to (manifest "set"); 0 = none.
  uint64_t set_run = 0;
  uint64_t set_block = 0;
  // Extra ssh arguments for SSH destinations (e.g. -o UserKnownHostsFile=...).
  std::vector<std::string> ssh_options;
  std::function<void(const TransferProgress&)> on_progress;
  std::function<bool()> cancelled;
};

class BackupEngine {
 public:
  // `work_dir`: the agent's scratch space (manifest cache, staging).
  // `destinations` opens a run's destination (default: MakeDestination;
  // tests pass one that injects faults).
  BackupEngine(ProcessRunner* runner, const Clock* clock, std::string work_dir,
               DestinationFactory destinations = {});

  // Runs one backup. The result says ok or why not (never throws away an
  // earlier snapshot on failure).
  BackupResult Run(const BackupRunOptions& options);

  // Complete and incomplete snapshots at the destination, oldest first.
  Result<std::vector<SnapshotInfo>> List(const BackupRunOptions& options);

  // Checks the ownership marker; creates it if the destination is new.
  // FailedPrecondition naming the owner if another node owns it.
  Status Claim(const BackupRunOptions& options);

 private:
  struct Impl;
  Result<std::unique_ptr<Destination>> Open(const BackupRunOptions& options) const;

  ProcessRunner* runner_;
  const Clock* clock_;
  std::string work_dir_;
  DestinationFactory destinations_;
};

// The snapshots at `dest`, complete ones with what their manifests say
// (`cached`: a manifest known already, e.g. the one this node published
// last), oldest first.
Result<std::vector<SnapshotInfo>> ListSnapshotInfos(Destination& dest,
                                                           const std::optional<SnapshotManifest>& cached);

// "20261125T093012.123Z" for a Unix time in ms: sorts chronologically.
std::string SnapshotIdFor(int64_t ms);
bool IsSnapshotId(const std::string& name);

}  // namespace ledgerkeep
