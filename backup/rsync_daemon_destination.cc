#include "backup/rsync_daemon_destination.h"

#include "backup/backup_engine.h"
#include "common/file_util.h"

namespace ledgerkeep {

Status RsyncDaemonDestination::DeleteSnapshot(const std::string& id) {
  if (!IsSnapshotId(id)) return Status::InvalidArgument("bad snapshot id " + id);
  // No shell on a daemon: sync an empty directory over it with --delete.
  LK_RETURN_IF_ERROR(CreateDirectories(context_.work_dir + "/empty", 0700));
  TransferOptions t;
  t.extra_args = {"-r", "--delete", "--include=/" + id + "/***", "--exclude=*"};
  return Ship({context_.work_dir + "/empty/"}, "snapshots/", t).status();
}

Status RsyncDaemonDestination::MakeSnapshotDir(const std::string& id) {
  LK_RETURN_IF_ERROR(CreateDirectories(context_.work_dir + "/empty", 0700));
  TransferOptions t;
  t.extra_args = {"--mkpath", "--exclude=*", kPrivateChmod};
  return Ship({context_.work_dir + "/empty/"}, "snapshots/" + id + "/data/", t).status();
}

std::unique_ptr<SnapshotFlusher> RsyncDaemonDestination::StartFlusher(const std::string&,
                                                                      std::vector<SnapshotFlusher::File> files,
                                                                      const std::string&) {
  if (files.empty()) return SnapshotFlusher::None("no new files");
  return SnapshotFlusher::None("an rsync daemon runs no commands");
}

}  // namespace ledgerkeep
