#include "backup/rsync_daemon_destination.h"

#include <filesystem>

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

Status RsyncDaemonDestination::ShipNewFileWithChecksum(const std::string& file, const std::string& checksum,
                                                       const std::string&, const TransferOptions& options) {
  TransferOptions t = options;
  t.extra_args.insert(t.extra_args.end(),
                      {"--mkpath", std::string("--partial-dir=") + kPartialDirName, "--ignore-existing"});
  RsyncRunner copier(context_.runner, OptionsFor(t));
  LK_RETURN_IF_ERROR(copier.Copy({file, checksum}, Remote("") + "/").status());
  // Another run may have written the names while we shipped: the checksum
  // there must be ours.
  const std::string name = std::filesystem::path(checksum).filename().string();
  auto theirs = ReadSmallFile(name);
  std::error_code ec;
  std::filesystem::remove(context_.work_dir + "/fetch/" + name, ec);  // ReadSmallFile's copy
  LK_RETURN_IF_ERROR(theirs.status());
  LK_ASSIGN_OR_RETURN(auto ours, ReadFileToString(checksum));
  if (*theirs != ours) return Status::AlreadyExists(name);
  return Status::OK();
}

}  // namespace ledgerkeep
