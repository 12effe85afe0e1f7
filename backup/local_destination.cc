#include "backup/local_destination.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "backup/backup_engine.h"
#include "common/file_util.h"

namespace ledgerkeep {
namespace {

// Publishes `from` as `to` unless `to` exists (AlreadyExists): a hard link,
// or where the filesystem has none, a rename that does not replace.
Status PublishLocalFile(const std::string& from, const std::string& to) {
  if (::link(from.c_str(), to.c_str()) == 0) {
    ::unlink(from.c_str());
    return Status::OK();
  }
  int err = errno;
  if (err == EPERM || err == EOPNOTSUPP || err == EMLINK || err == ENOSYS) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return Status::OK();
    err = errno;
  }
  if (err == EEXIST) return Status::AlreadyExists(to);
  return Status::FromErrno(err, "cannot publish " + to);
}

}  // namespace

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

Status LocalDestination::PublishStaged(const std::string& file, const std::string& checksum,
                                       const std::string& staging_sub) {
  const std::string from = LocalPath(staging_sub) + "/";
  const std::string to = where_.path + "/";
  Status s = PublishLocalFile(from + file, to + file);
  if (s.ok()) {
    s = PublishLocalFile(from + checksum, to + checksum);
    if (!s.ok()) ::unlink((to + file).c_str());  // ours: nothing could replace it
  }
  ::unlink((from + file).c_str());
  ::unlink((from + checksum).c_str());
  ::rmdir(from.c_str());
  ::rmdir(std::filesystem::path(LocalPath(staging_sub)).parent_path().c_str());  // if nobody else stages there
  if (s.code() == StatusCode::kAlreadyExists) {
    return Status::AlreadyExists(std::filesystem::path(s.message()).filename().string());
  }
  return s;
}

}  // namespace ledgerkeep
