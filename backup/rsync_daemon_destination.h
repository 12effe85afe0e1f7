// RsyncDaemonDestination: snapshots in a module of an rsync daemon
// (rsync://[user@]host[:port]/module/dir). The daemon runs no commands:
// everything is an rsync session (small files are staged or fetched through
// the work dir, a snapshot is deleted by syncing an empty directory over it),
// nothing can be flushed or synced on the host (its own writeback is all
// there is) and RunOnHost is FailedPrecondition.
#pragma once

#include "backup/destination_base.h"

namespace ledgerkeep {

class RsyncDaemonDestination final : public RsyncReachedDestination {
 public:
  RsyncDaemonDestination(BackupDestination where, DestinationContext context)
      : RsyncReachedDestination(std::move(where), std::move(context)) {}

  Status DeleteSnapshot(const std::string& id) override;
  Status MakeSnapshotDir(const std::string& id) override;
  Status SyncSnapshot(const std::string&) override { return Status::OK(); }
  // rsync --ignore-existing into the final names, then the checksum read
  // back must be ours (a daemon runs no commands to publish with).
  Status ShipNewFileWithChecksum(const std::string& file, const std::string& checksum,
                                 const std::string& staging_sub, const TransferOptions& options) override;
  std::unique_ptr<SnapshotFlusher> StartFlusher(const std::string& id, std::vector<SnapshotFlusher::File> files,
                                                const std::string& python) override;
};

}  // namespace ledgerkeep
