// SnapshotRestore: restore a replica snapshot from its backup destination
// into a directory, and verify the backup server's copy (DESIGN.md §8).
//
// RestoreSnapshot: pick the snapshot (an id, or "latest" = the newest
// complete one; a snapshot without DONE is refused naming why) -> fetch
// `snapshots/<id>/` with real rsync into `<db>.restore-tmp/` (progress via
// on_progress) -> VerifySnapshotDir on the copy -> publish: the verified
// data/ is renamed to `<db>` (an earlier DB there is moved aside first and
// deleted after). A snapshot that fails verification is never published and
// the earlier DB is left as it was.
// Crash behaviour: an interrupted restore leaves `<db>.restore-tmp` (removed
// by the next restore) and either the old or the new DB at `<db>`, plus at
// most `<db>.restore-old`, which the next restore deletes.
//
// VerifyBackup: verifies one, the latest or every complete snapshot at the
// destination. Local destinations are verified in place; on SSH
// destinations `ledgerkeep-db <dir> verifySnapshot` runs on the backup host
// when it is installed there, else (and for rsync daemons) each snapshot is
// fetched into a temporary directory and verified there. The result's
// `method` says which happened.
// Thread-safety: free functions; concurrent calls need distinct work dirs.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "agents/backup_engine.h"
#include "agents/snapshot_verifier.h"

namespace ledgerkeep {

struct SnapshotAccess {
  BackupDestination destination;
  std::vector<std::string> ssh_options;  // the local node's [backup] ssh_options
  std::string work_dir;                  // scratch space (ssh control socket, fetched copies)
  // rsync tuning. Defaults: 60 s I/O timeout, 4 attempts, backoff from 1 s.
  int io_timeout_s = 60;
  int max_attempts = 4;
  int64_t backoff_base_ms = 1000;
  std::function<void(const wire::ProgressT&)> on_progress;
  std::function<bool()> cancelled;
};

// The snapshot id `requested` ("" / "latest" = newest complete) names at the
// destination. NotFound if there is none; FailedPrecondition for a snapshot
// without DONE.
Result<std::string> ResolveSnapshot(ProcessRunner* runner, const SnapshotAccess& access,
                                    const std::string& requested);

struct RestoreRequest {
  std::string source_node;  // for the report
  std::string snapshot_id;  // "" / "latest" = newest complete
  std::string db_dir;       // where the restored DB is published
  SnapshotVerifyOptions verify;
};

// Fetches, verifies and publishes. On a verification failure returns
// Corruption naming every problem, with `*result` filled (verification
// included) when result is not null.
Status RestoreSnapshot(ProcessRunner* runner, const SnapshotAccess& access, const RestoreRequest& request,
                       wire::RestoreResultT* result);

// Verifies `snapshot_id` ("" / "latest") or, with `all`, every complete
// snapshot. A failed check is in the result (ok = false per snapshot); the
// Status is an error only when the destination cannot be read.
Result<wire::BackupVerifyResultT> VerifyBackup(ProcessRunner* runner, const SnapshotAccess& access,
                                               const std::string& snapshot_id, bool all);

}  // namespace ledgerkeep
