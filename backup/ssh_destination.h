// SshDestination: snapshots in a directory of a host reached over SSH with
// key authentication and checked host keys ([user@]host:/dir). Small files,
// the claim with the listing, deletes, syncs and publishing are one shell
// command each over the run's shared connection (connection 0); transfers
// are rsync over ssh, parallel streams on connections of their own. Every
// value reaches the remote shell as one quoted argument (issue 13:
// BackupDestination::SshArgv, RemoteCommandArgv).
#pragma once

#include <string>

#include "backup/destination_base.h"

namespace ledgerkeep {

class SshDestination final : public RsyncReachedDestination {
 public:
  SshDestination(BackupDestination where, DestinationContext context)
      : RsyncReachedDestination(std::move(where), std::move(context)) {}

  // One round trip: claims a new destination (a hard link: of two nodes
  // racing only the first wins), returns the marker and the listing and,
  // when the marker is `owner`'s, creates snapshots/<create_snapshot>/data.
  Result<ClaimResult> Claim(const std::string& owner, const std::string& create_snapshot) override;
  Result<SnapshotListing> ListSnapshots() override;
  Result<std::string> ReadSmallFile(const std::string& sub) override;
  // One command when the content fits a command line, else through rsync.
  Status WriteSmallFile(const std::string& sub, const std::string& content) override;
  Status DeleteSnapshot(const std::string& id) override;
  Status MakeSnapshotDir(const std::string& id) override;
  Result<ProcessResult> RunOnHost(const std::vector<std::string>& argv, int64_t timeout_ms,
                                  std::string* whole_stdout) override;
  Status SyncSnapshot(const std::string& id) override;
  // Sync, MANIFEST.json and DONE in one command when the manifest fits a
  // command line.
  Status Publish(const std::string& id, const std::string& manifest, const std::string& digest) override;
  std::unique_ptr<SnapshotFlusher> StartFlusher(const std::string& id, std::vector<SnapshotFlusher::File> files,
                                                const std::string& python) override;
  void WarmUp(int connection) override;

 protected:
  // One command: ln (or mv -n where there are no hard links), file first.
  Status PublishStaged(const std::string& file, const std::string& checksum,
                       const std::string& staging_sub) override;

 private:
  std::string HostPath(const std::string& sub) const { return where_.path + "/" + sub; }

  std::string made_by_claim_;  // the snapshot directory Claim() created
};

}  // namespace ledgerkeep
