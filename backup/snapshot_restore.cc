#include "backup/snapshot_restore.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>

#include "backup/destination.h"
#include "backup/rsync.h"
#include "backup/transfer_progress.h"
#include "common/clock.h"
#include "common/file_util.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;

// The destination of `a`, reached with `a`'s ssh options and rsync tuning,
// its scratch space in `work_dir`.
Result<std::unique_ptr<Destination>> OpenPlace(ProcessRunner* runner, const SnapshotAccess& a,
                                               const std::string& work_dir) {
  return MakeDestination(a.destination, DestinationContextOf(a, runner, work_dir));
}

void Emit(const SnapshotAccess& a, const std::string& phase, double percent) {
  if (!a.on_progress) return;
  TransferProgress p;
  p.phase = phase;
  p.percent = percent;
  a.on_progress(p);
}

// What a restore may replace or clean up at its target: nothing there, an
// empty directory, or a RocksDB directory (a ledger DB restored before); a
// scratch dir only with what a restore puts there. Anything else is an
// operator's data, and a restore never deletes it (issue 13: `--to-dir /etc`
// would have moved /etc aside and deleted it).
bool IsEmptyDir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::is_empty(path, ec);
}
bool IsRocksDbDir(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec) || !fs::is_regular_file(path + "/CURRENT", ec)) return false;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().rfind("MANIFEST-", 0) == 0) return true;
  }
  return false;
}
bool HoldsOnly(const std::string& dir, std::initializer_list<const char*> names) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return false;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    if (std::none_of(names.begin(), names.end(), [&](const char* x) { return n == x; })) return false;
  }
  return !ec;
}
Status MayReplace(const std::string& path, const std::string& what, bool scratch) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec)) || IsEmptyDir(path)) return Status::OK();
  if (scratch ? HoldsOnly(path, {"data", "MANIFEST.json", "DONE"}) || IsRocksDbDir(path) : IsRocksDbDir(path)) {
    return Status::OK();
  }
  return Status::FailedPrecondition(path + " exists and is not " + what +
                                    "; a restore never replaces or deletes it. Restore into a new or empty "
                                    "directory, or move it away");
}

// Copies `snapshots/<id>/` of the destination into `dir` (made empty first).
Result<RsyncResult> Fetch(ProcessRunner* runner, const SnapshotAccess& a, const std::string& id,
                          const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  LK_RETURN_IF_ERROR(CreateDirectories(dir, 0750));
  LK_ASSIGN_OR_RETURN(auto dest, OpenPlace(runner, a, a.work_dir));
  TransferOptions ro;
  ro.extra_args = {"--whole-file"};
  ro.on_progress = [&](const RsyncProgress& p) {
    if (a.on_progress) a.on_progress(ToTransferProgress(p, "fetch"));
  };
  auto r = dest->Fetch("snapshots/" + id + "/", dir + "/", ro);
  if (!r.ok()) return r.status().WithContext("fetching snapshot " + id + " from " + a.destination.Display());
  return r;
}

}  // namespace

namespace {

// The snapshots at one place, oldest first.
Result<std::vector<SnapshotInfo>> ListPlace(ProcessRunner* runner, const SnapshotAccess& access) {
  LK_RETURN_IF_ERROR(CreateDirectories(access.work_dir, 0700));
  LK_RETURN_IF_ERROR(CheckSshFiles(access.destination));
  LK_ASSIGN_OR_RETURN(auto dest, OpenPlace(runner, access, access.work_dir + "/list"));
  return ListSnapshotInfos(*dest, std::nullopt);
}

}  // namespace

Result<LocatedSnapshot> FindSnapshot(ProcessRunner* runner, const std::vector<SnapshotAccess>& places,
                                     const std::string& requested) {
  if (places.empty()) return Status::NotFound("no backup destination to look for snapshots at");
  std::string where;
  for (const auto& p : places) where += (where.empty() ? "" : ", ") + p.destination.Display();
  const bool latest = requested.empty() || requested == "latest";
  if (!latest) {
    if (!IsSnapshotId(requested)) {
      return Status::InvalidArgument("'" + requested.substr(0, 64) +
                                     "' is not a snapshot id (like 20261125T093012.123Z) or latest");
    }
    std::optional<Status> unreachable;
    for (size_t i = 0; i < places.size(); ++i) {
      auto list = ListPlace(runner, places[i]);
      if (!list.ok()) {
        if (!unreachable) unreachable = list.status().WithContext("cannot list " + places[i].destination.Display());
        continue;
      }
      for (const auto& s : *list) {
        if (s.snapshot_id != requested) continue;
        if (!s.complete) {
          return Status::FailedPrecondition(
              "snapshot " + requested + " at " + places[i].destination.Display() +
              " has no DONE: it is incomplete (its backup run did not finish) and is never restored");
        }
        return LocatedSnapshot{i, requested};
      }
    }
    if (unreachable) return Status(StatusCode::kUnavailable, unreachable->message() + "; snapshot " +
                                                                 requested + " is not at the other places");
    return Status::NotFound("no snapshot " + requested + " at " + where + " (see `ledgerkeep backup list`)");
  }
  // "latest": places with the newest records first (unknown records first of
  // all: they may hold anything).
  std::vector<size_t> order(places.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& ra = places[a].newest_recorded;
    const auto& rb = places[b].newest_recorded;
    if (ra.empty() != rb.empty()) return ra.empty();
    return ra > rb;
  });
  std::optional<LocatedSnapshot> best;
  std::vector<std::pair<size_t, Status>> failed;
  for (size_t i : order) {
    const std::string& recorded = places[i].newest_recorded;
    if (best && !recorded.empty() && recorded <= best->snapshot_id) continue;  // nothing newer there
    auto list = ListPlace(runner, places[i]);
    if (!list.ok()) {
      failed.emplace_back(i, list.status());
      continue;
    }
    for (auto it = list->rbegin(); it != list->rend(); ++it) {
      if (!it->complete) continue;
      if (!best || it->snapshot_id > best->snapshot_id) best = LocatedSnapshot{i, it->snapshot_id};
      break;
    }
  }
  for (const auto& [i, status] : failed) {
    const std::string& recorded = places[i].newest_recorded;
    if (best && !recorded.empty() && recorded <= best->snapshot_id) {
      spdlog::warn("{} cannot be listed ({}); it holds nothing newer than {}", places[i].destination.Display(),
                   status.message(), best->snapshot_id);
      continue;
    }
    return Status(StatusCode::kUnavailable,
                  "cannot tell which snapshot is the latest: " + places[i].destination.Display() +
                      (recorded.empty() ? "" : " (newest recorded there: " + recorded + ")") +
                      " cannot be listed: " + status.message() +
                      ". Bring it back, or name a snapshot with --snapshot ID (see `ledgerkeep backup list`)");
  }
  if (!best) {
    return Status::NotFound("no complete snapshot at " + where + " (a snapshot is complete once its DONE exists)");
  }
  return *best;
}

Result<std::string> ResolveSnapshot(ProcessRunner* runner, const SnapshotAccess& access,
                                    const std::string& requested) {
  LK_ASSIGN_OR_RETURN(auto found, FindSnapshot(runner, {access}, requested));
  return found.snapshot_id;
}

PlacesListing ListPlaces(ProcessRunner* runner, const std::vector<SnapshotAccess>& places) {
  PlacesListing out;
  for (const auto& p : places) {
    auto list = ListPlace(runner, p);
    if (!list.ok()) {
      out.unreachable.push_back(p.destination.Display() + ": " + list.status().message());
      continue;
    }
    for (auto& s : *list) {
      s.destination = p.destination.Display();
      out.snapshots.push_back(std::move(s));
    }
  }
  std::stable_sort(out.snapshots.begin(), out.snapshots.end(),
                   [](const auto& a, const auto& b) { return a.snapshot_id < b.snapshot_id; });
  return out;
}

Status RestoreSnapshot(ProcessRunner* runner, const std::vector<SnapshotAccess>& places,
                       const RestoreRequest& request, RestoreResult* result) {
  RestoreResult local;
  RestoreResult& res = result != nullptr ? *result : local;
  const int64_t started = MonotonicMs();
  res.source_node = request.source_node;
  res.db = request.db_dir;
  if (places.empty()) return Status::InvalidArgument("no backup destination to restore from");
  if (request.db_dir.empty() || request.db_dir == "/") return Status::InvalidArgument("no restore directory");
  std::string db = fs::path(request.db_dir).lexically_normal().string();
  while (db.size() > 1 && db.back() == '/') db.pop_back();
  if (db == "/" || !fs::path(db).has_parent_path()) return Status::InvalidArgument("no restore directory");
  const std::string tmp = db + ".restore-tmp";
  const std::string old = db + ".restore-old";
  LK_RETURN_IF_ERROR(MayReplace(db, "a ledger DB", false));
  LK_RETURN_IF_ERROR(MayReplace(tmp, "an earlier restore's scratch directory", true));
  LK_RETURN_IF_ERROR(MayReplace(old, "an earlier restore's previous DB", false));
  std::error_code ec;
  fs::remove_all(old, ec);  // left by an interrupted restore

  Emit(places[0], "resolve", 0);
  LK_ASSIGN_OR_RETURN(auto found, FindSnapshot(runner, places, request.snapshot_id));
  const SnapshotAccess& access = places[found.place];
  res.snapshot_id = found.snapshot_id;
  res.source = access.destination.Display();
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
  res.verification = std::move(v);
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
  // The renames durable before the old DB goes: a crash must not lose both.
  const Status synced = SyncParentDirectory(db);
  // Keep the manifest beside the DB: what was restored, from where.
  fs::rename(tmp + "/MANIFEST.json", db + ".MANIFEST.json", ec);
  fs::remove_all(tmp, ec);
  if (!synced.ok()) {
    // The restored DB is in place, but not durably: keep the previous one
    // (it is the one a crash may bring back) and say so.
    res.duration_ms = MonotonicMs() - started;
    return synced.WithContext("restored snapshot " + res.snapshot_id + " into " + db +
                              ", but cannot make it durable (the previous DB is kept at " + old + ")");
  }
  fs::remove_all(old, ec);
  res.duration_ms = MonotonicMs() - started;
  spdlog::info("restored snapshot {} of {} from {} into {}: {} bytes, fetch {} ms, verify {} ms",
               res.snapshot_id, request.source_node, res.source, db, res.bytes, res.fetch_ms, res.verify_ms);
  return Status::OK();
}

namespace {

// Verifies `ids` at one place into `out` (its method; each snapshot's result).
Status VerifyAt(ProcessRunner* runner, const SnapshotAccess& access, const std::vector<std::string>& ids,
                BackupVerifyResult& out) {

  LK_ASSIGN_OR_RETURN(auto dest, OpenPlace(runner, access, access.work_dir));
  // In place when the snapshots are on this machine; else on the host when
  // it runs commands and has ledgerkeep-db; else a fetched copy.
  const bool in_place = !dest->LocalPath("snapshots").empty();
  bool on_host = false;
  if (!in_place) {
    auto probe = dest->RunOnHost({"sh", "-c", "command -v ledgerkeep-db"});
    on_host = probe.ok() && probe->exit_code == 0;
  }
  if (in_place) {
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
    SnapshotVerification v;
    if (in_place) {
      LK_ASSIGN_OR_RETURN(v, VerifySnapshotDir(dest->LocalPath("snapshots/" + id)));
    } else if (on_host) {
      std::string report;  // one line per file: more than a 64 KiB tail for a large DB
      LK_ASSIGN_OR_RETURN(
          auto r,
          dest->RunOnHost({"ledgerkeep-db", access.destination.path + "/snapshots/" + id, "verifySnapshot"},
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
    v.destination = access.destination.Display();
    out.snapshots.push_back(std::move(v));
  }
  return Status::OK();
}

}  // namespace

Result<BackupVerifyResult> VerifyBackup(ProcessRunner* runner, const std::vector<SnapshotAccess>& places,
                                               const std::string& snapshot_id, bool all) {
  if (places.empty()) return Status::NotFound("no backup destination to verify");
  BackupVerifyResult out;
  out.destination = places[0].destination.Display();
  if (!all) {
    LK_ASSIGN_OR_RETURN(auto found, FindSnapshot(runner, places, snapshot_id));
    out.destination = places[found.place].destination.Display();
    LK_RETURN_IF_ERROR(VerifyAt(runner, places[found.place], {found.snapshot_id}, out));
    return out;
  }
  size_t complete = 0;
  for (const auto& place : places) {
    LK_ASSIGN_OR_RETURN(auto list, ListPlace(runner, place));
    std::vector<std::string> ids;
    for (const auto& s : list)
      if (s.complete) ids.push_back(s.snapshot_id);
    complete += ids.size();
    if (!ids.empty()) LK_RETURN_IF_ERROR(VerifyAt(runner, place, ids, out));
  }
  if (complete == 0) return Status::NotFound("no complete snapshot at " + out.destination);
  return out;
}

}  // namespace ledgerkeep
