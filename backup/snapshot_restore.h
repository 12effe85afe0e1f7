// SnapshotRestore: restore a replica snapshot from its backup destination
// into a directory, and verify the backup server's copy (DESIGN.md §8).
//
// RestoreSnapshot: pick the snapshot (FindSnapshot: an id, or "latest" = the
// newest complete one over every place of the node's snapshots; a snapshot
// without DONE is refused naming why) -> fetch
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

#include "backup/backup_engine.h"
#include "backup/snapshot_verifier.h"

namespace ledgerkeep {

struct SnapshotAccess {
  BackupDestination destination;
  std::vector<std::string> ssh_options;  // the local node's [backup] ssh_options
  std::string work_dir;                  // scratch space (ssh control socket, fetched copies)
  // rsync tuning. Defaults: 60 s I/O timeout, 4 attempts, backoff from 1 s.
  int io_timeout_s = 60;
  int max_attempts = 4;
  int64_t backoff_base_ms = 1000;
  std::function<void(const TransferProgress&)> on_progress;
  std::function<bool()> cancelled;
  // The newest snapshot recorded as completed at this place
  // (backup/snapshot_places.h), "" = unknown. Lets FindSnapshot skip places
  // that hold nothing newer than a snapshot found elsewhere.
  std::string newest_recorded;
};

// The one function that says which snapshot an id or "latest" names, over
// every place of a node's snapshots (backup/snapshot_places.h): `backup
// list`, `backup verify`, restores and the maintenance run all use it.
// "" / "latest" is the newest complete snapshot over all places. Places are
// listed newest record first; a place whose recorded newest snapshot is not
// newer than one already found is not listed at all. A place that cannot be
// listed fails the lookup (Unavailable, naming it) unless its record shows
// it holds nothing newer than what was found. An id is looked up at every
// place. NotFound if there is no such snapshot; FailedPrecondition for a
// snapshot without DONE.
struct LocatedSnapshot {
  size_t place = 0;  // index into the places given
  std::string snapshot_id;
};
Result<LocatedSnapshot> FindSnapshot(ProcessRunner* runner, const std::vector<SnapshotAccess>& places,
                                     const std::string& requested);

// FindSnapshot over one place: the snapshot id `requested` names there.
Result<std::string> ResolveSnapshot(ProcessRunner* runner, const SnapshotAccess& access,
                                    const std::string& requested);

// Every snapshot (complete or not) at every place, each with its
// destination, oldest first. Places that cannot be listed are named in
// `unreachable` ("<place>: <why>"); the others are still listed.
struct PlacesListing {
  std::vector<SnapshotInfo> snapshots;
  std::vector<std::string> unreachable;
};
PlacesListing ListPlaces(ProcessRunner* runner, const std::vector<SnapshotAccess>& places);

struct RestoreRequest {
  std::string source_node;  // for the report
  std::string snapshot_id;  // "" / "latest" = newest complete
  std::string db_dir;       // where the restored DB is published
  SnapshotVerifyOptions verify;
};

// Fetches, verifies and publishes. On a verification failure returns
// Corruption naming every problem, with `*result` filled (verification
// included) when result is not null.
Status RestoreSnapshot(ProcessRunner* runner, const std::vector<SnapshotAccess>& places,
                       const RestoreRequest& request, RestoreResult* result);
inline Status RestoreSnapshot(ProcessRunner* runner, const SnapshotAccess& access, const RestoreRequest& request,
                              RestoreResult* result) {
  return RestoreSnapshot(runner, std::vector<SnapshotAccess>{access}, request, result);
}

// Verifies `snapshot_id` ("" / "latest") or, with `all`, every complete
// snapshot. A failed check is in the result (ok = false per snapshot); the
// Status is an error only when the destination cannot be read.
// Over several places: `all` verifies every complete snapshot of every
// place; otherwise the one FindSnapshot names.
Result<BackupVerifyResult> VerifyBackup(ProcessRunner* runner, const std::vector<SnapshotAccess>& places,
                                               const std::string& snapshot_id, bool all);
inline Result<BackupVerifyResult> VerifyBackup(ProcessRunner* runner, const SnapshotAccess& access,
                                                      const std::string& snapshot_id, bool all) {
  return VerifyBackup(runner, std::vector<SnapshotAccess>{access}, snapshot_id, all);
}

}  // namespace ledgerkeep
