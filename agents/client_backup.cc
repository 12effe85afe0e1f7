#include "agents/client_backup.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "backup/backup_destination.h"
#include "backup/client_archive.h"
#include "backup/destination.h"
#include "wire/backup_wire.h"
#include "backup/rsync.h"
#include "backup/transfer_progress.h"
#include "common/clock.h"
#include "common/file_util.h"

namespace ledgerkeep {

namespace {

namespace fs = std::filesystem;

constexpr char kChecksumSuffix[] = ".sha256";
// Where a node's run stages its two files before the destination publishes
// them: <dest>/.ledgerkeep-incoming/<node>/ (one node runs one backup at a
// time).
constexpr char kIncomingDir[] = ".ledgerkeep-incoming";

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Removes what an interrupted earlier run left in the work dir: only our
// own file names, directly in it.
void RemoveStaleStaging(const std::string& work_dir) {
  std::error_code ec;
  for (fs::directory_iterator it(work_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (EndsWith(name, ".tar.gz") || EndsWith(name, ".tar.gz.tmp") || EndsWith(name, ".tar.gz.sha256") ||
        EndsWith(name, ".tar.gz.sha256.tmp")) {
      std::error_code rm;
      fs::remove(it->path(), rm);
    }
  }
}

// Deletes the staged files when the run ends, however it ends.
class StagedFiles {
 public:
  explicit StagedFiles(std::vector<std::string> paths) : paths_(std::move(paths)) {}
  ~StagedFiles() {
    for (const auto& p : paths_) {
      ::unlink(p.c_str());
      ::unlink((p + ".tmp").c_str());
    }
  }
  StagedFiles(const StagedFiles&) = delete;
  StagedFiles& operator=(const StagedFiles&) = delete;

 private:
  std::vector<std::string> paths_;
};

}  // namespace

ClientBackupHandler::ClientBackupHandler(std::string node_id, std::vector<std::string> paths,
                                         std::string work_dir, DestinationSource configured_destination,
                                         ProcessRunner* runner, ClientBackupTuning tuning)
    : node_id_(std::move(node_id)),
      paths_(std::move(paths)),
      work_dir_(std::move(work_dir)),
      configured_destination_(std::move(configured_destination)),
      runner_(runner),
      tuning_(std::move(tuning)) {}

namespace {

// One run of the command (the handler itself stays stateless).
class ClientBackupRun {
 public:
  ClientBackupRun(const CommandContext& ctx, const ClientBackupTuning& tuning, ProcessRunner* runner)
      : ctx_(ctx), tuning_(tuning), runner_(runner), started_ms_(MonotonicMs()) {}

  // Only checks that `file_name` is free at `dest` (writes nothing there).
  Status CheckNameFree(const std::string& file_name, const BackupDestination& dest, const std::string& work_dir) {
    LK_RETURN_IF_ERROR(Open(file_name, dest, work_dir));
    return RefuseExisting();
  }

  Result<wire::ClientBackupResultT> Run(const std::string& file_name, const std::vector<std::string>& paths,
                                        const BackupDestination& dest, const std::string& work_dir,
                                        const std::string& node_id) {
    LK_RETURN_IF_ERROR(CheckSshFiles(dest));
    LK_RETURN_IF_ERROR(Open(file_name, dest, work_dir));
    LK_RETURN_IF_ERROR(RefuseExisting());

    LK_RETURN_IF_ERROR(CreateDirectories(work_dir, 0700));
    RemoveStaleStaging(work_dir);
    const std::string local = work_dir + "/" + file_name;
    const std::string local_sum = local + kChecksumSuffix;
    StagedFiles staged({local, local_sum});

    ArchiveOptions ao;
    ao.compression_level = tuning_.compression_level;
    ao.progress_interval_ms = tuning_.progress_interval_ms;
    ao.cancelled = [this] { return ctx_.cancelled(); };
    const int64_t archive_started = MonotonicMs();
    ao.on_progress = [&](const ArchiveProgress& p) {
      wire::ProgressT w;
      w.phase = "archive";
      w.bytes_done = p.bytes_done;
      w.bytes_total = p.bytes_total;
      w.files_done = p.files_done;
      w.files_total = p.files_total;
      const double secs = static_cast<double>(std::max<int64_t>(MonotonicMs() - archive_started, 1)) / 1000.0;
      w.rate_bps = static_cast<double>(p.bytes_done) / secs;
      w.eta_s = p.final ? 0.0
                : w.rate_bps > 0
                    ? static_cast<double>(p.bytes_total - std::min(p.bytes_done, p.bytes_total)) / w.rate_bps
                    : -1.0;
      w.percent = p.final || p.bytes_total == 0
                      ? (p.final ? 100.0 : 0.0)
                      : 100.0 * static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total);
      ctx_.ReportProgress(std::move(w));
    };
    LK_ASSIGN_OR_RETURN(ArchiveStats stats, WriteTarGz(paths, local, ao));
    if (!stats.changed.empty()) {
      std::string list;
      for (size_t i = 0; i < stats.changed.size() && i < 5; ++i) list += (i ? ", " : "") + stats.changed[i];
      ctx_.Note("warn", "client backup " + file_name + ": " + std::to_string(stats.changed.size()) +
                            " file(s) changed while being archived (" + list +
                            "); stop the client components for a consistent backup");
    }
    // sha256sum format, so `sha256sum -c NAME.tar.gz.sha256` works next to it.
    LK_RETURN_IF_ERROR(WriteFileAtomically(local_sum, stats.sha256 + "  " + file_name + "\n", 0600));

    // Someone may have taken the name while we archived.
    LK_RETURN_IF_ERROR(RefuseExisting());
    // Never over an existing archive, even one that appears while we ship
    // (Destination::ShipNewFileWithChecksum says how each kind does it).
    TransferOptions t;
    t.on_progress = [this](const RsyncProgress& p) { ctx_.ReportProgress(ToTransferProgress(p, "transfer")); };
    Status shipped = dest_->ShipNewFileWithChecksum(local, local_sum, std::string(kIncomingDir) + "/" + node_id, t);
    if (shipped.code() == StatusCode::kAlreadyExists) return NameTaken(shipped.message());
    if (!shipped.ok()) return shipped.WithContext("client backup " + file_name);

    LK_RETURN_IF_ERROR(CheckArrived(stats.archive_bytes));

    wire::ClientBackupResultT r;
    r.archive = where_.RsyncPath(file_name);
    r.sha256 = stats.sha256;
    r.bytes = stats.archive_bytes;
    r.entries = stats.entries;
    r.source_bytes = stats.source_bytes;
    r.duration_ms = MonotonicMs() - started_ms_;
    return r;
  }

 private:
  Status Open(const std::string& file_name, const BackupDestination& where, const std::string& work_dir) {
    file_name_ = file_name;
    where_ = where;
    DestinationContext c = DestinationContextOf(tuning_, runner_, work_dir);
    c.cancelled = [this] { return ctx_.cancelled(); };
    LK_ASSIGN_OR_RETURN(dest_, MakeDestination(where, c));
    return Status::OK();
  }

  // The destination's entries of our name.
  Result<std::vector<RemoteEntry>> Ours() {
    auto listing = dest_->ListDir("");
    if (!listing.ok()) return listing.status().WithContext("cannot list the backup destination " + where_.Display());
    std::vector<RemoteEntry> ours;
    for (auto& e : *listing) {
      if (e.name == file_name_ || e.name == file_name_ + kChecksumSuffix) ours.push_back(std::move(e));
    }
    return ours;
  }

  Status RefuseExisting() {
    LK_ASSIGN_OR_RETURN(auto ours, Ours());
    if (ours.empty()) return Status::OK();
    return NameTaken(ours.front().name);
  }

  Status NameTaken(const std::string& which) const {
    return Status::AlreadyExists("an archive named " + file_name_ + " already exists at " + where_.Display() +
                                 " (" + where_.RsyncPath(which) +
                                 "); client backups are never overwritten: pick another --name");
  }

  Status CheckArrived(uint64_t bytes) {
    LK_ASSIGN_OR_RETURN(auto ours, Ours());
    bool archive = false;
    bool sum = false;
    for (const auto& e : ours) {
      if (e.name == file_name_ && e.type == RemoteEntry::Type::kFile && e.size == bytes) archive = true;
      if (e.name == file_name_ + kChecksumSuffix && e.type == RemoteEntry::Type::kFile) sum = true;
    }
    if (archive && sum) return Status::OK();
    return Status::IOError("rsync reported success, but " + where_.RsyncPath(file_name_) +
                           (archive ? "" : " (" + std::to_string(bytes) + " bytes)") +
                           (sum ? "" : " and its .sha256") +
                           " is not at the destination; check the destination filesystem");
  }

  const CommandContext& ctx_;
  const ClientBackupTuning& tuning_;
  ProcessRunner* runner_;
  const int64_t started_ms_;
  BackupDestination where_;
  std::unique_ptr<Destination> dest_;
  std::string file_name_;
};

}  // namespace

bool ClientBackupHandler::InsideConfiguredPaths(const std::string& path) const {
  std::error_code ec;
  const fs::path p = fs::weakly_canonical(path, ec);
  if (ec) return false;
  for (const auto& allowed : paths_) {
    const fs::path a = fs::weakly_canonical(allowed, ec);
    if (ec) continue;
    auto pi = p.begin();
    bool inside = true;
    for (auto ai = a.begin(); ai != a.end(); ++ai, ++pi) {
      if (ai->empty()) continue;
      if (pi == p.end() || *pi != *ai) {
        inside = false;
        break;
      }
    }
    if (inside) return true;
  }
  return false;
}

CommandOutcome ClientBackupHandler::Execute(const CommandContext& ctx) {
  const wire::ClientBackup* cmd = ctx.command().body_as_ClientBackup();
  if (cmd == nullptr) return Fail(Status::InvalidArgument("not a ClientBackup command"));

  auto file_name = NewClientArchiveFileName(cmd->archive_name() ? cmd->archive_name()->str() : "");
  if (!file_name.ok()) return Fail(file_name.status());

  if (paths_.empty()) {
    return Fail(Status::FailedPrecondition("client node " + node_id_ +
                                           " has no paths to back up: set `[client] paths = "
                                           "[\"/config/...\", \"/mnt/data/db\"]` in its node config "
                                           "(and restart its agent)"));
  }
  std::vector<std::string> paths;
  if (cmd->paths() != nullptr && cmd->paths()->size() > 0) {
    for (const auto* p : *cmd->paths()) paths.push_back(p->str());
  } else {
    paths = paths_;
  }
  for (const auto& p : paths) {
    if (p.empty() || p.front() != '/') {
      return Fail(Status::InvalidArgument("path '" + p.substr(0, 200) + "' to back up is not absolute"));
    }
    // Issue 13: `--path` narrows what is archived, it never widens it. The
    // node config's [client] paths say what may leave this node (an
    // operator key must not read /etc/shadow off a client).
    if (!InsideConfiguredPaths(p)) {
      return Fail(Status::PermissionDenied("path '" + p.substr(0, 200) + "' is not inside the [client] paths of " +
                                           node_id_ + "'s node config; only those (or paths inside them) are "
                                           "archived"));
    }
  }

  const std::string configure_hint = "run `ledgerkeep backup configure --node " + node_id_ +
                                     " --destination <dir | user@host:/dir | rsync://host/module/dir>`, "
                                     "or give a destination with the command";
  BackupTarget target;
  if (cmd->target() != nullptr && cmd->target()->destination() != nullptr &&
      !cmd->target()->destination()->str().empty()) {
    target = FromWire(cmd->target());
  } else {
    Result<BackupTarget> configured = configured_destination_
                                                 ? configured_destination_()
                                                 : Result<BackupTarget>(Status::NotFound("none"));
    if (!configured.ok() && configured.status().code() != StatusCode::kNotFound) {
      return Fail(configured.status().WithContext("cannot read the configured backup destination"));
    }
    if (!configured.ok() || configured->destination.empty()) {
      return Fail(Status::FailedPrecondition("no backup destination configured for client node " + node_id_ +
                                             ": " + configure_hint));
    }
    target = std::move(configured).value();
  }
  auto dest = ParseDestination(target, node_id_);
  if (!dest.ok()) return Fail(dest.status());

  ClientBackupRun run(ctx, tuning_, runner_);
  if (cmd->check_only()) {
    Status free = run.CheckNameFree(*file_name, *dest, work_dir_);
    if (!free.ok()) return Fail(free);
    wire::ClientBackupResultT r;
    r.archive = dest->RsyncPath(*file_name);
    CommandOutcome out;
    out.detail.Set(std::move(r));
    return out;
  }
  auto result = run.Run(*file_name, paths, *dest, work_dir_, node_id_);
  if (!result.ok()) return Fail(result.status());
  CommandOutcome out;
  out.detail.Set(std::move(result).value());
  return out;
}

}  // namespace ledgerkeep
