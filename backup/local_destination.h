// LocalDestination: snapshots in a directory of this machine (or one
// mounted here). Small files, deletes and syncs are plain file system
// calls; transfers and listings use rsync like every other kind, so a
// snapshot's --link-dest hard links work the same everywhere.
#pragma once

#include "backup/destination_base.h"

namespace ledgerkeep {

class LocalDestination final : public RsyncReachedDestination {
 public:
  LocalDestination(BackupDestination where, DestinationContext context)
      : RsyncReachedDestination(std::move(where), std::move(context)) {}

  Result<std::string> ReadSmallFile(const std::string& sub) override;
  Status WriteSmallFile(const std::string& sub, const std::string& content) override;
  Status DeleteSnapshot(const std::string& id) override;
  Status MakeSnapshotDir(const std::string& id) override;
  // A target directory ("sub/") is created private first: rsync --mkpath
  // would create it with the umask.
  Result<RsyncResult> Ship(const std::vector<std::string>& sources, const std::string& sub,
                           const TransferOptions& options) override;
  Status SyncSnapshot(const std::string& id) override;
  std::unique_ptr<SnapshotFlusher> StartFlusher(const std::string& id, std::vector<SnapshotFlusher::File> files,
                                                const std::string& python) override;
  std::string LocalPath(const std::string& sub) const override { return where_.path + "/" + sub; }

 protected:
  // link(2), or renameat2(RENAME_NOREPLACE) where there are no hard links.
  Status PublishStaged(const std::string& file, const std::string& checksum,
                       const std::string& staging_sub) override;
};

}  // namespace ledgerkeep
