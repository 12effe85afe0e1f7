#include "agents/snapshot_restore.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "agents/transfer_progress.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "common/rsync.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;

BackupRunOptions RunOptionsOf(const SnapshotAccess& a) {
  BackupRunOptions o;
  o.destination = a.destination;
  o.ssh_options = a.ssh_options;
  o.io_timeout_s = a.io_timeout_s;
  o.max_attempts = a.max_attempts;
  o.backoff_base_ms = a.backoff_base_ms;
  o.cancelled = a.cancelled;
  return o;
}

// Makes a rename in `dir` durable.
void SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

RsyncOptions RsyncOptionsOf(const SnapshotAccess& a) {
  return DestinationRsyncOptions(RunOptionsOf(a), a.work_dir);
}

void Emit(const SnapshotAccess& a, const std::string& phase, double percent) {
  if (!a.on_progress) return;
  wire::ProgressT p;
  p.phase = phase;
  p.percent = percent;
  a.on_progress(p);
}

// Copies `snapshots/<id>/` of the destination into `dir` (made empty first).
Result<RsyncResult> Fetch(ProcessRunner* runner, const SnapshotAccess& a, const std::string& id,
                          const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  LK_RETURN_IF_ERROR(CreateDirectories(dir, 0750));
  RsyncOptions ro = RsyncOptionsOf(a);
  ro.extra_args = {"--whole-file"};
  ro.on_progress = [&](const RsyncProgress& p) {
    if (a.on_progress) a.on_progress(ToWireProgress(p, "fetch"));
  };
  RsyncRunner rsync(runner, ro);
  auto r = rsync.Copy({a.destination.RsyncPath("snapshots/" + id + "/")}, dir + "/");
  if (!r.ok()) return r.status().WithContext("fetching snapshot " + id + " from " + a.destination.Display());
  return r;
}

}  // namespace

Result<std::string> ResolveSnapshot(ProcessRunner* runner, const SnapshotAccess& access,
                                    const std::string& requested) {
  LK_RETURN_IF_ERROR(CreateDirectories(access.work_dir, 0700));
  BackupEngine engine(runner, Clock::System(), access.work_dir + "/list");
  LK_ASSIGN_OR_RETURN(auto list, engine.List(RunOptionsOf(access)));
  const std::string where = access.destination.Display();
  if (requested.empty() || requested == "latest") {
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
      if (it->complete) return it->snapshot_id;
    }
    return Status::NotFound("no complete snapshot at " + where +
                            " (a snapshot is complete once its DONE exists)");
  }
  for (const auto& s : list) {
    if (s.snapshot_id != requested) continue;
    if (!s.complete) {
      return Status::FailedPrecondition(
          "snapshot " + requested + " at " + where +
          " has no DONE: it is incomplete (its backup run did not finish) and is "
          "never restored");
    }
    return requested;
  }
  return Status::NotFound("no snapshot " + requested + " at " + where + " (see `ledgerkeep backup list`)");
}

Status RestoreSnapshot(ProcessRunner* runner, const SnapshotAccess& access, const RestoreRequest& request,
                       wire::RestoreResultT* result) {
  wire::RestoreResultT local;
  wire::RestoreResultT& res = result != nullptr ? *result : local;
  const int64_t started = MonotonicMs();
  res.source_node = request.source_node;
  res.source = access.destination.Display();
  res.db = request.db_dir;
  if (request.db_dir.empty() || request.db_dir == "/") return Status::InvalidArgument("no restore directory");
  const std::string db = fs::path(request.db_dir).lexically_normal().string();
  const std::string tmp = db + ".restore-tmp";
  const std::string old = db + ".restore-old";
  std::error_code ec;
  fs::remove_all(old, ec);  // left by an interrupted restore

  Emit(access, "resolve", 0);
  LK_ASSIGN_OR_RETURN(res.snapshot_id, ResolveSnapshot(runner, access, request.snapshot_id));
  LK_RETURN_IF_ERROR(CreateDirectories(fs::path(db).parent_path().string(), 0750));

  Emit(access, "fetch", 0);
  const int64_t fetch_start = MonotonicMs();
  LK_ASSIGN_OR_RETURN(auto copied, Fetch(runner, access, res.snapshot_id, tmp));
  res.fetch_ms = MonotonicMs() - fetch_start;
  res.bytes = copied.stats.total_file_size;

  Emit(access, "verify", 0);
  const int64_t verify_start = MonotonicMs();
  LK_ASSIGN_OR_RETURN(auto v, VerifySnapshotDir(tmp, request.verify));
  res.verify_ms = MonotonicMs() - verify_start;
  res.files = v.files_checked;
  const bool ok = v.ok;
  const std::string problems = DescribeProblems(v);
  res.verification = std::make_unique<wire::SnapshotVerificationT>(std::move(v));
  if (!ok) {
    fs::remove_all(tmp, ec);
    res.duration_ms = MonotonicMs() - started;
    return Status::Corruption("snapshot " + res.snapshot_id + " of " + request.source_node + " at " +
                              res.source + " failed verification; nothing was restored:\n" + problems);
  }

  // Publish: the old DB aside, the verified copy in, the old one gone.
  Emit(access, "publish", 100);
  if (fs::exists(db, ec)) {
    fs::rename(db, old, ec);
    if (ec) return Status::FromErrno(ec.value(), "move the previous DB " + db + " aside");
  }
  fs::rename(tmp + "/data", db, ec);
  if (ec) {
    Status s = Status::FromErrno(ec.value(), "publish the restored DB at " + db);
    std::error_code back;
    if (fs::exists(old, back)) fs::rename(old, db, back);
    return s;
  }
  SyncDirectory(fs::path(db).parent_path().string());
  // Keep the manifest beside the DB: what was restored, from where.
  fs::rename(tmp + "/MANIFEST.json", db + ".MANIFEST.json", ec);
  fs::remove_all(tmp, ec);
  fs::remove_all(old, ec);
  res.duration_ms = MonotonicMs() - started;
  spdlog::info("restored snapshot {} of {} from {} into {}: {} bytes, fetch {} ms, verify {} ms",
               res.snapshot_id, request.source_node, res.source, db, res.bytes, res.fetch_ms, res.verify_ms);
  return Status::OK();
}

Result<wire::BackupVerifyResultT> VerifyBackup(ProcessRunner* runner, const SnapshotAccess& access,
                                               const std::string& snapshot_id, bool all) {
  wire::BackupVerifyResultT out;
  out.destination = access.destination.Display();
  std::vector<std::string> ids;
  if (all) {
    LK_RETURN_IF_ERROR(CreateDirectories(access.work_dir, 0700));
    BackupEngine engine(runner, Clock::System(), access.work_dir + "/list");
    LK_ASSIGN_OR_RETURN(auto list, engine.List(RunOptionsOf(access)));
    for (const auto& s : list)
      if (s.complete) ids.push_back(s.snapshot_id);
    if (ids.empty()) return Status::NotFound("no complete snapshot at " + out.destination);
  } else {
    LK_ASSIGN_OR_RETURN(auto id, ResolveSnapshot(runner, access, snapshot_id));
    ids.push_back(id);
  }

  const auto kind = access.destination.kind;
  bool on_host = false;
  RsyncRunner shell(runner, RsyncOptionsOf(access));
  if (kind == BackupDestination::Kind::kSsh) {
    auto probe = shell.RunOnHost(access.destination.UserHost(), {"sh", "-c", "command -v ledgerkeep-db"});
    on_host = probe.ok() && probe->exit_code == 0;
  }
  if (kind == BackupDestination::Kind::kLocal) {
    out.method = "in place";
  } else if (on_host) {
    out.method = "on the backup host (ledgerkeep-db verifySnapshot)";
  } else {
    out.method =
        "fetched to " + access.work_dir + "/verify (ledgerkeep-db is not installed on the backup host)";
  }

  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string& id = ids[i];
    Emit(access, "verify " + id, 100.0 * static_cast<double>(i) / static_cast<double>(ids.size()));
    wire::SnapshotVerificationT v;
    if (kind == BackupDestination::Kind::kLocal) {
      LK_ASSIGN_OR_RETURN(v, VerifySnapshotDir(access.destination.path + "/snapshots/" + id));
    } else if (on_host) {
      std::string report;  // one line per file: more than a 64 KiB tail for a large DB
      LK_ASSIGN_OR_RETURN(
          auto r,
          shell.RunOnHost(access.destination.UserHost(),
                          {"ledgerkeep-db", access.destination.path + "/snapshots/" + id, "verifySnapshot"},
                          30 * 60 * 1000, &report));
      auto parsed = VerificationFromJson(report);
      if (!parsed.ok()) {
        return Status::IOError("ledgerkeep-db verifySnapshot on " + access.destination.UserHost() +
                               " exited " + std::to_string(r.exit_code) + ": " + r.output);
      }
      v = std::move(*parsed);
    } else {
      const std::string dir = access.work_dir + "/verify/" + id;
      LK_RETURN_IF_ERROR(Fetch(runner, access, id, dir).status());
      auto checked = VerifySnapshotDir(dir);
      std::error_code ec;
      fs::remove_all(dir, ec);
      if (!checked.ok()) return checked.status();
      v = std::move(*checked);
    }
    v.snapshot_id = id;
    out.snapshots.push_back(std::make_unique<wire::SnapshotVerificationT>(std::move(v)));
  }
  return out;
}

}  // namespace ledgerkeep
