// The layout of one node's backups in an object store (issue 18), and which
// objects retention may delete. Pure functions: no I/O, no S3 client; the S3
// destination lists, reads and deletes, this decides.
//
// Under the node's key prefix P (the destination's path, e.g. "ledger/r1"):
//   P/.ledgerkeep-owner                      the owner marker
//   P/shared/<stem>_<xxh128>_<size>.sst      every SST file, stored once by
//                                            content (RocksDB BackupEngine's
//                                            shared-checksum layout) and
//                                            referenced from each manifest
//   P/snapshots/<id>/data/<path>             the snapshot's other files
//   P/snapshots/<id>/MANIFEST.json           written after every data object
//   P/snapshots/<id>/DONE                    written last (SHA-256 of MANIFEST)
// A snapshot without DONE is incomplete. SST files are immutable in RocksDB,
// so name + size + checksum names one content: an incremental snapshot
// uploads only the SSTs no earlier snapshot stored.
//
// Retention (PlanObjectRetention) deletes a shared object only when no
// remaining snapshot references it, never touches the newest snapshot with
// DONE, never an object written since the current run started (a run in
// progress), never a key it does not recognise, and cleans up what crashed
// runs left (snapshots without DONE, shared objects nothing references).
// Thread-safety: pure functions and immutable values.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "backup/backup_manifest.h"
#include "common/status.h"

namespace ledgerkeep {

class ObjectLayout {
 public:
  // `prefix`: the node's key prefix, without leading or trailing '/'
  // (ValidateObjectPrefix); "" puts the layout at the bucket's top.
  explicit ObjectLayout(std::string prefix);

  const std::string& prefix() const { return prefix_; }
  std::string OwnerKey() const;
  std::string SharedPrefix() const;                          // "P/shared/"
  std::string SnapshotsPrefix() const;                       // "P/snapshots/"
  std::string SnapshotPrefix(const std::string& id) const;   // "P/snapshots/<id>/"
  std::string ManifestKey(const std::string& id) const;
  std::string DoneKey(const std::string& id) const;
  // Where file `f` of snapshot `id` is stored: the shared key for an SST at
  // the top of data/ with its checksum, the snapshot's data/ key otherwise.
  std::string DataKey(const std::string& id, const ManifestFile& f) const;

  // Whether `f` is stored shared (a top-level *.sst with an xxh128).
  static bool IsShared(const ManifestFile& f);

 private:
  std::string Key(const std::string& rest) const;
  std::string prefix_;
};

// OK, or InvalidArgument saying what is wrong with a key prefix: empty
// segments ("a//b", leading or trailing '/'), "." or "..", control
// characters, more than 512 bytes.
Status ValidateObjectPrefix(const std::string& prefix);

// One object of a listing under P.
struct StoredObject {
  std::string key;
  uint64_t size = 0;
  int64_t last_modified_ms = 0;
};

struct ObjectRetentionInput {
  // Every object under P (a complete listing; keys outside P are ignored).
  std::vector<StoredObject> objects;
  // The manifest of every snapshot that has DONE, by id. A snapshot with
  // DONE missing here (its manifest unreadable) stops the shared cleanup:
  // what it references is unknown, so no shared object is deleted.
  std::map<std::string, SnapshotManifest> manifests;
  // Snapshots (with DONE) to delete, e.g. SnapshotsToDelete's choice. The
  // newest snapshot with DONE is never deleted, even if named.
  std::vector<std::string> delete_snapshots;
  // When the current run started (Unix ms): objects modified at or after it
  // belong to the run in progress and are never deleted; 0 = no run.
  int64_t run_started_ms = 0;
};

struct ObjectDeletionPlan {
  // In the order to delete them: for each snapshot its DONE first (so a
  // snapshot half deleted reads as incomplete, never as complete with
  // missing files), then the rest of it; then the shared objects.
  std::vector<std::string> keys;
  std::vector<std::string> snapshots_deleted;   // the ids from delete_snapshots
  std::vector<std::string> crashed_snapshots;   // without DONE, older than the run
  uint64_t shared_deleted = 0;
  uint64_t bytes_freed = 0;
  // Why something that looked deletable was kept (for the log).
  std::vector<std::string> notes;
};

ObjectDeletionPlan PlanObjectRetention(const ObjectLayout& layout, const ObjectRetentionInput& input);

}  // namespace ledgerkeep
