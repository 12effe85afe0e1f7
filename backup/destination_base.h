// RsyncReachedDestination: what the local, SSH and rsync-daemon
// destinations share (internal to backup/): the parsed destination, the
// context, one rsync runner on connection 0, and the rsync-only way of
// doing each operation that a kind may replace with a cheaper one.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "backup/destination.h"

namespace ledgerkeep {

// A ledger backup is as sensitive as the ledger: everything written at a
// destination is readable by its owner only.
inline constexpr int kPrivateDirMode = 0700;
inline constexpr int kPrivateFileMode = 0600;
inline constexpr const char* kPrivateChmod = "--chmod=D0700,F0600";
// rsync's --partial-dir for files shipped whole (client archives).
inline constexpr const char* kPartialDirName = ".ledgerkeep-partial";

class RsyncReachedDestination : public Destination {
 public:
  RsyncReachedDestination(BackupDestination where, DestinationContext context);

  const BackupDestination& where() const override { return where_; }
  // The owner marker through ReadSmallFile / WriteSmallFile.
  Result<ClaimResult> Claim(const std::string& owner, const std::string& create_snapshot) override;
  // rsync --list-only of snapshots/.
  Result<SnapshotListing> ListSnapshots() override;
  // Through a copy in the work dir.
  Result<std::string> ReadSmallFile(const std::string& sub) override;
  // Staged in the work dir, then rsync'ed.
  Status WriteSmallFile(const std::string& sub, const std::string& content) override;
  Result<RsyncResult> Ship(const std::vector<std::string>& sources, const std::string& sub,
                           const TransferOptions& options) override;
  Result<RsyncResult> Fetch(const std::string& sub, const std::string& local_dir,
                            const TransferOptions& options) override;
  // SyncSnapshot, then MANIFEST.json, then DONE.
  Status Publish(const std::string& id, const std::string& manifest, const std::string& digest) override;
  void WarmUp(int) override {}
  std::string LocalPath(const std::string&) const override { return ""; }
  Result<ProcessResult> RunOnHost(const std::vector<std::string>& argv, int64_t timeout_ms,
                                  std::string* whole_stdout) override;
  // rsync --list-only of `sub`.
  Result<std::vector<RemoteEntry>> ListDir(const std::string& sub) override;
  // Ships both files into `staging_sub`, then PublishStaged(). The rsync
  // daemon replaces the whole of it.
  Status ShipNewFileWithChecksum(const std::string& file, const std::string& checksum,
                                 const std::string& staging_sub, const TransferOptions& options) override;

 protected:
  // rsync options for `connection` with `options` applied.
  RsyncOptions OptionsFor(const TransferOptions& options) const;
  // Gives the staged `file` and then `checksum` (base names, in
  // `staging_sub`) their final names without replacing anything, removes
  // the staged copies and `staging_sub` (and its parent) when empty.
  // AlreadyExists(name) when a final name is taken.
  virtual Status PublishStaged(const std::string& file, const std::string& checksum,
                               const std::string& staging_sub);

  // The destination's rsync path of `sub`.
  std::string Remote(const std::string& sub) const { return where_.RsyncPath(sub); }

  BackupDestination where_;
  DestinationContext context_;
  RsyncRunner rsync_;  // connection 0
};

// Status for a failed write on the destination host, from what it said.
Status RemoteWriteFailure(const std::string& what, const std::string& output);

// Snapshot ids from "<id>[/<file>]" entries: an id is complete when its
// entry "<id>/DONE" is a file.
class ListingBuilder {
 public:
  void Add(const std::string& relative_path, bool is_file);
  SnapshotListing Build() const;

 private:
  std::map<std::string, bool> seen_;
};

}  // namespace ledgerkeep
