#include "backup/local_destination.h"

#include <filesystem>

#include "backup/backup_engine.h"
#include "common/file_util.h"

namespace ledgerkeep {

Result<std::string> LocalDestination::ReadSmallFile(const std::string& sub) {
  const std::string p = LocalPath(sub);
  std::error_code ec;  // exists() without it throws, e.g. on a path too long
  if (!std::filesystem::exists(p, ec)) return Status::NotFound(p + " does not exist");
  return ReadFileToString(p);
}

Status LocalDestination::WriteSmallFile(const std::string& sub, const std::string& content) {
  const std::string p = LocalPath(sub);
  LK_RETURN_IF_ERROR(CreateDirectories(std::filesystem::path(p).parent_path().string(), kPrivateDirMode));
  return WriteFileAtomically(p, content, kPrivateFileMode);
}

Status LocalDestination::DeleteSnapshot(const std::string& id) {
  if (!IsSnapshotId(id)) return Status::InvalidArgument("bad snapshot id " + id);
  std::error_code ec;
  std::filesystem::remove_all(LocalPath("snapshots/" + id), ec);
  if (ec) return Status::FromErrno(ec.value(), "delete snapshot " + id);
  return Status::OK();
}

Status LocalDestination::MakeSnapshotDir(const std::string& id) {
  return CreateDirectories(LocalPath("snapshots/" + id + "/data"), kPrivateDirMode);
}

Result<RsyncResult> LocalDestination::Ship(const std::vector<std::string>& sources, const std::string& sub,
                                           const TransferOptions& options) {
  if (!sub.empty() && sub.back() == '/') LK_RETURN_IF_ERROR(CreateDirectories(LocalPath(sub), kPrivateDirMode));
  return RsyncReachedDestination::Ship(sources, sub, options);
}

Status LocalDestination::SyncSnapshot(const std::string& id) { return SyncTree(LocalPath("snapshots/" + id + "/data")); }

std::unique_ptr<SnapshotFlusher> LocalDestination::StartFlusher(const std::string& id,
                                                                std::vector<SnapshotFlusher::File> files,
                                                                const std::string&) {
  return SnapshotFlusher::Local(LocalPath("snapshots/" + id + "/data"), std::move(files));
}

}  // namespace ledgerkeep
