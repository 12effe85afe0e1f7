#include "agents/backup_service.h"

#include <sys/statvfs.h>

#include <spdlog/spdlog.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "backup/backup_schedule.h"
#include "backup/retention.h"
#include "backup/snapshot_restore.h"
#include "common/exception_text.h"
#include "common/file_util.h"
#include "ledger/control_client.h"

namespace ledgerkeep {
namespace {

nlohmann::json ResultToJson(const BackupResult& r, int64_t finished_at_ms) {
  return {{"snapshot_id", r.snapshot_id}, {"destination", r.destination},
          {"bytes_transferred", r.bytes_transferred}, {"bytes_total", r.bytes_total},
          {"files_total", r.files_total}, {"duration_ms", r.duration_ms},
          {"consistent", r.consistent}, {"genesis", r.genesis},
          {"last_reachable", r.last_reachable}, {"last_block_id", r.last_block_id},
          {"manifest_digest", r.manifest_digest}, {"scheduled", r.scheduled},
          {"ok", r.ok}, {"error", r.error}, {"error_code", static_cast<uint16_t>(r.error_code)}, {"attempts", r.attempts},
          {"snapshot_count", r.snapshot_count}, {"finished_at_ms", finished_at_ms}};
}

// When a persisted run ended: recorded since issue 16; for an older state
// file, the time in its snapshot id plus its duration (0 = unknown).
int64_t FinishedAtFromJson(const nlohmann::json& j, const BackupResult& r) {
  const int64_t recorded = j.value("finished_at_ms", int64_t{0});
  if (recorded > 0) return recorded;
  const auto started = SnapshotTimeMs(r.snapshot_id);
  return started ? *started + r.duration_ms : 0;
}

std::unique_ptr<BackupResult> ResultFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return nullptr;
  auto r = std::make_unique<BackupResult>();
  r->snapshot_id = j.value("snapshot_id", "");
  r->destination = j.value("destination", "");
  r->bytes_transferred = j.value("bytes_transferred", uint64_t{0});
  r->bytes_total = j.value("bytes_total", uint64_t{0});
  r->files_total = j.value("files_total", uint64_t{0});
  r->duration_ms = j.value("duration_ms", int64_t{0});
  r->consistent = j.value("consistent", false);
  r->genesis = j.value("genesis", uint64_t{0});
  r->last_reachable = j.value("last_reachable", uint64_t{0});
  r->last_block_id = j.value("last_block_id", uint64_t{0});
  r->manifest_digest = j.value("manifest_digest", "");
  r->scheduled = j.value("scheduled", false);
  r->ok = j.value("ok", false);
  r->error = j.value("error", "");
  const auto code = j.value("error_code", uint16_t{0});
  r->error_code = code <= kMaxStatusCode ? static_cast<StatusCode>(code) : StatusCode::kInternal;
  r->attempts = j.value("attempts", uint32_t{0});
  r->snapshot_count = j.value("snapshot_count", uint32_t{0});
  return r;
}

// The directory a path resolves to (symlinks of its existing part resolved).
std::filesystem::path Resolved(const std::string& p) {
  std::error_code ec;
  auto r = std::filesystem::weakly_canonical(p, ec);
  return ec ? std::filesystem::path(p).lexically_normal() : r;
}

bool Inside(const std::filesystem::path& path, const std::filesystem::path& dir) {
  auto p = path.begin(), d = dir.begin();
  for (; d != dir.end(); ++d, ++p) {
    if (d->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *d) return false;
  }
  return true;
}

// Issue 13: a destination inside the ledger's DB or data directory (or the
// agent's own) would be copied into every later snapshot of a stopped
// ledger, and retention there would delete live files. Refused, after
// resolving symlinks.
Status RefuseDestinationInsideTheNode(const BackupDestination& d, const NodeConfig& node,
                                      const std::string& agent_data_dir) {
  if (d.LocalDirectory().empty()) return Status::OK();  // on another host
  const auto dest = Resolved(d.LocalDirectory());
  std::vector<std::pair<std::string, std::string>> guarded;
  if (!node.ledger_db.empty()) {
    guarded.emplace_back(node.ledger_db, "the ledger DB");
    const auto data = std::filesystem::path(node.ledger_db).parent_path();
    // The ledger's data directory: where its DB and control socket live.
    if (!node.ledger_control.empty() && std::filesystem::path(node.ledger_control).parent_path() == data &&
        data.has_relative_path()) {
      guarded.emplace_back(data.string(), "the ledger's data directory");
    }
  }
  if (!agent_data_dir.empty()) guarded.emplace_back(agent_data_dir, "this agent's data directory");
  for (const auto& [dir, what] : guarded) {
    const auto g = Resolved(dir);
    if (Inside(dest, g)) {
      return Status::InvalidArgument("backup destination " + d.path + " is inside " + what + " " + g.string() +
                                     ": its snapshots would be copied into the next ones. Use a directory "
                                     "outside it, e.g. on the backup server");
    }
  }
  return Status::OK();
}

}  // namespace

BackupTarget ExpandedTarget(const BackupConfig& c, const std::string& node_id) {
  BackupTarget t;
  t.destination = ExpandNodePlaceholder(c.destination, node_id);
  t.rsync_user = c.rsync_user;
  t.ssh_key = c.ssh_key;
  t.ssh_port = c.ssh_port;
  t.known_hosts = c.known_hosts;
  t.accept_new_host_key = c.accept_new_host_key;
  return t;
}

void SetDestination(BackupConfig& c, const BackupTarget& t) {
  c.destination = t.destination;
  c.rsync_user = t.rsync_user;
  c.ssh_key = t.ssh_key;
  c.ssh_port = t.ssh_port;
  c.known_hosts = t.known_hosts;
  c.accept_new_host_key = t.accept_new_host_key;
}

BackupService::BackupService(BackupServiceOptions options)
    : opt_(std::move(options)),
      engine_(opt_.runner, opt_.clock, opt_.data_dir + "/backup/work"),
      checkpoints_(opt_.node.ledger_db, opt_.node.ledger_control, opt_.clock) {}

BackupService::~BackupService() { Stop(); }

// Persisted JSON with a wrong type makes nlohmann's value() throw: say
// which files are unreadable instead of aborting the agent at start.
Status BackupService::Load() {
  try {
    return LoadUnguarded();
  } catch (...) {
    return Status::Corruption("the backup configuration under " + opt_.data_dir + "/backup is unreadable (" +
                              CurrentExceptionText() +
                              "); fix config.json and state.json there, or move them aside to start over");
  }
}

Status BackupService::LoadUnguarded() {
  LK_RETURN_IF_ERROR(CreateDirectories(opt_.data_dir + "/backup", 0700));
  const std::string path = opt_.data_dir + "/backup/config.json";
  if (std::filesystem::exists(path)) {
    LK_ASSIGN_OR_RETURN(auto text, ReadFileToString(path));
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::Corruption(path + " is not valid JSON");
    BackupConfig c;
    c.mode = j.value("mode", "none");
    c.scheduled = j.value("scheduled", false);
    c.destination = j.value("destination", "");
    c.rsync_user = j.value("rsync_user", "");
    c.ssh_key = j.value("ssh_key", "");
    c.ssh_port = j.value("ssh_port", uint16_t{0});
    if (auto k = j.find("known_hosts"); k != j.end() && k->is_string()) c.known_hosts = k->get<std::string>();
    if (auto a = j.find("accept_new_host_key"); a != j.end() && a->is_boolean()) {
      c.accept_new_host_key = a->get<bool>();
    }
    if (auto p = j.find("places"); p != j.end()) c.places = PlacesFromJson(*p);
    c.frequency = j.value("frequency", "");
    c.time_zone = j.value("time_zone", "UTC");
    c.keep_last = j.value("keep_last", uint32_t{0});
    c.max_age_s = j.value("max_age_s", uint64_t{0});
    c.min_free_bytes = j.value("min_free_bytes", uint64_t{1} << 30);
    c.bwlimit_bytes_per_s = std::min(j.value("bwlimit_bytes_per_s", uint64_t{0}), kMaxBwlimitBytesPerS);
    c.scheduled_since_ms = j.value("scheduled_since_ms", int64_t{0});
    c.last_scheduled_run_ms = j.value("last_scheduled_run_ms", int64_t{0});
    std::lock_guard<std::mutex> lock(mu_);
    config_ = c;
  }
  const std::string state = opt_.data_dir + "/backup/state.json";
  if (std::filesystem::exists(state)) {
    LK_ASSIGN_OR_RETURN(auto text, ReadFileToString(state));
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_discarded() && j.is_object()) {
      std::lock_guard<std::mutex> lock(mu_);
      const nlohmann::json last = j.value("last", nlohmann::json());
      const nlohmann::json last_ok = j.value("last_ok", nlohmann::json());
      last_ = ResultFromJson(last);
      last_ok_ = ResultFromJson(last_ok);
      last_finished_ms_ = last_ ? FinishedAtFromJson(last, *last_) : 0;
      last_ok_finished_ms_ = last_ok_ ? FinishedAtFromJson(last_ok, *last_ok_) : 0;
    }
  }
  return Status::OK();
}

// Callers hold mu_.
Status BackupService::SaveConfig() {
  nlohmann::json j = {{"mode", config_.mode}, {"scheduled", config_.scheduled},
                      {"destination", config_.destination}, {"rsync_user", config_.rsync_user},
                      {"ssh_key", config_.ssh_key}, {"ssh_port", config_.ssh_port},
                      {"known_hosts", config_.known_hosts},
                      {"accept_new_host_key", config_.accept_new_host_key},
                      {"places", PlacesToJson(config_.places)},
                      {"frequency", config_.frequency}, {"time_zone", config_.time_zone},
                      {"keep_last", config_.keep_last}, {"max_age_s", config_.max_age_s},
                      {"min_free_bytes", config_.min_free_bytes},
                      {"bwlimit_bytes_per_s", config_.bwlimit_bytes_per_s},
                      {"scheduled_since_ms", config_.scheduled_since_ms},
                      {"last_scheduled_run_ms", config_.last_scheduled_run_ms}};
  return WriteFileAtomically(opt_.data_dir + "/backup/config.json", j.dump(1) + "\n", 0600);
}

// Callers hold mu_.
Status BackupService::SaveState() {
  nlohmann::json j = nlohmann::json::object();
  if (last_) j["last"] = ResultToJson(*last_, last_finished_ms_);
  if (last_ok_) j["last_ok"] = ResultToJson(*last_ok_, last_ok_finished_ms_);
  return WriteFileAtomically(opt_.data_dir + "/backup/state.json", j.dump(1) + "\n", 0600);
}

void BackupService::SetReporter(std::function<void(wire::ReportBodyUnion)> reporter) {
  std::lock_guard<std::mutex> lock(mu_);
  reporter_ = std::move(reporter);
}

void BackupService::SetRunObserver(std::function<void(const FinishedBackupRun&)> observer) {
  std::lock_guard<std::mutex> lock(mu_);
  observer_ = std::move(observer);
}

BackupHistory BackupService::History() {
  std::lock_guard<std::mutex> lock(mu_);
  BackupHistory h;
  if (last_) h.last = FinishedBackupRun{*last_, last_finished_ms_};
  if (last_ok_) h.last_ok = FinishedBackupRun{*last_ok_, last_ok_finished_ms_};
  return h;
}

Result<int64_t> BackupService::NextRun(const BackupConfig& c) const {
  LK_ASSIGN_OR_RETURN(auto sched, ParseSchedule(c.frequency, c.time_zone));
  const int64_t after = std::max(c.last_scheduled_run_ms, c.scheduled_since_ms);
  return NextRunMs(sched, after);
}

Result<BackupRunOptions> BackupService::RunOptionsFor(const BackupConfig& c, bool scheduled) {
  BackupRunOptions o;
  LK_ASSIGN_OR_RETURN(o.destination, ParseDestination(ExpandedTarget(c, opt_.node_id), opt_.node_id));
  LK_RETURN_IF_ERROR(RefuseDestinationInsideTheNode(o.destination, opt_.node, opt_.data_dir));
  o.cluster_id = opt_.cluster_id;
  o.node_id = opt_.node_id;
  o.ledger_db = opt_.node.ledger_db;
  o.ledger_control = opt_.node.ledger_control;
  o.keep_last = c.keep_last;
  o.max_age_s = c.max_age_s;
  o.scheduled = scheduled;
  o.io_timeout_s = opt_.io_timeout_s;
  o.max_attempts = opt_.max_attempts;
  o.backoff_base_ms = opt_.backoff_base_ms;
  o.ssh_options = opt_.node.backup_ssh_options;
  o.transfer_streams = opt_.node.backup_transfer_streams;
  o.flush_as_written = opt_.node.backup_flush_as_written;
  o.bwlimit_bytes_per_s = c.bwlimit_bytes_per_s != 0 ? c.bwlimit_bytes_per_s : opt_.node.backup_bwlimit_bytes_per_s;
  o.background = opt_.node.backup_background;
  return o;
}

SnapshotPlaces BackupService::PlacesOf(const BackupConfig& c, const std::string& node_id) {
  SnapshotPlaces places = c.places;
  if (!c.destination.empty() && c.mode != "checkpoint") {
    const BackupTarget home = ExpandedTarget(c, node_id);
    const SnapshotPlace* h = HomePlace(places);
    if (h == nullptr || !SamePlace(h->target, home)) SetHomePlace(places, home);
  }
  return places;
}

Result<std::vector<SnapshotAccess>> BackupService::AccessToEveryPlace(const std::string& work_dir) {
  BackupConfig c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    c = config_;
  }
  const SnapshotPlaces places = PlacesOf(c, opt_.node_id);
  if (places.empty()) return Status::FailedPrecondition("no backup destination configured on " + opt_.node_id);
  std::vector<SnapshotAccess> access;
  for (const auto& place : places) {
    LK_ASSIGN_OR_RETURN(auto dest, ParseDestination(place.target, opt_.node_id));
    SnapshotAccess a;
    a.destination = std::move(dest);
    a.ssh_options = opt_.node.backup_ssh_options;
    a.work_dir = work_dir;
    a.io_timeout_s = opt_.io_timeout_s;
    a.max_attempts = opt_.max_attempts;
    a.backoff_base_ms = opt_.backoff_base_ms;
    a.newest_recorded = place.newest_snapshot_id;
    access.push_back(std::move(a));
  }
  return access;
}

// Checkpoint mode's directory ("" = next to the DB): a local absolute path,
// not inside the live DB (RocksDB's own directory).
Status BackupService::CheckpointDirAllowed(const std::string& dir) const {
  if (dir.empty()) return Status::OK();
  auto d = ParseDestination(dir, "", "", 0);
  if (!d.ok() || d->LocalDirectory().empty()) {
    return Status::InvalidArgument("checkpoint mode needs a local directory, got '" + dir.substr(0, 200) + "'");
  }
  if (!opt_.node.ledger_db.empty() && Inside(Resolved(d->path), Resolved(opt_.node.ledger_db))) {
    return Status::InvalidArgument("checkpoint directory " + d->path + " is inside the ledger DB " +
                                   opt_.node.ledger_db + "; use a directory next to it");
  }
  return Status::OK();
}

// ---------------------------------------------------------------- runs

BackupResult BackupService::RunLocked(const BackupConfig& c, bool scheduled,
                                             const std::function<void(const TransferProgress&)>& progress,
                                             const std::function<bool()>& cancelled,
                                             const MaintenanceCheckpointInfo* ship) {
  std::lock_guard<std::mutex> run(run_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = true;
  }
  // Cleared however the run ends: an exception goes to the caller's boundary.
  struct ClearRunning {
    BackupService* s;
    ~ClearRunning() {
      std::lock_guard<std::mutex> lock(s->mu_);
      s->running_ = false;
    }
  } clear_running{this};
  BackupResult res;
  if (c.mode == "checkpoint") {
    res = RunCheckpoint(c, scheduled);
  } else {
    auto o = RunOptionsFor(c, scheduled);
    if (!o.ok()) {
      res.ok = false;
      res.error = o.status().ToString();
      res.error_code = o.status().code();
      res.destination = c.destination;
      res.scheduled = scheduled;
    } else {
      o->on_progress = progress;
      o->cancelled = cancelled;
      if (ship != nullptr) {
        o->prepared = ship->checkpoint;
        o->snapshot_id = ship->snapshot_id;
        o->set_run = ship->run;
        o->set_block = ship->stop_point;
      }
      res = engine_.Run(*o);
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  running_ = false;
  // The metric counts the home destination's snapshots; a one-off
  // destination's count says nothing about it.
  const bool at_home = c.mode == "checkpoint" || config_.destination.empty() ||
                       SamePlace(ExpandedTarget(config_, opt_.node_id), ExpandedTarget(c, opt_.node_id));
  if (!at_home) res.snapshot_count = 0;
  const int64_t finished_at = opt_.clock->NowMs();
  last_ = std::make_unique<BackupResult>(res);
  last_finished_ms_ = finished_at;
  if (res.ok) {
    last_ok_ = std::make_unique<BackupResult>(res);
    last_ok_finished_ms_ = finished_at;
  }
  Status s = SaveState();
  if (!s.ok()) spdlog::error("cannot save backup state: {}", s.ToString());
  if (res.ok && c.mode != "checkpoint" && !res.snapshot_id.empty()) {
    // Where this snapshot is: `latest` looks at every place (snapshot_places.h).
    // A node without a home adopts this destination as its home.
    config_.places = PlacesOf(config_, opt_.node_id);
    const bool had_home = HomePlace(config_.places) != nullptr;
    RecordSnapshotAt(config_.places, ExpandedTarget(c, opt_.node_id), res.snapshot_id);
    if (!had_home && config_.destination.empty()) {
      config_.mode = "rsync";
      SetDestination(config_, ExpandedTarget(c, opt_.node_id));
    }
    Status saved = SaveConfig();
    if (!saved.ok()) spdlog::error("cannot save backup config: {}", saved.ToString());
  }
  const auto observer = observer_;
  lock.unlock();
  if (observer) observer(FinishedBackupRun{res, finished_at});
  return res;
}

BackupResult BackupService::RunCheckpoint(const BackupConfig& c, bool scheduled) {
  BackupResult res;
  res.scheduled = scheduled;
  const int64_t started = opt_.clock->NowMs();
  std::string dir = c.destination.empty()
                        ? std::filesystem::path(opt_.node.ledger_db).parent_path().string() + "/checkpoints"
                        : ExpandNodePlaceholder(c.destination, opt_.node_id);
  res.destination = dir;
  auto fail = [&](Status s) {
    res.ok = false;
    res.error = s.ToString();
    res.error_code = s.code();
    res.duration_ms = opt_.clock->NowMs() - started;
    return res;
  };
  if (Status where = CheckpointDirAllowed(dir); !where.ok()) return fail(where);
  Status mk = CreateDirectories(dir, 0700);
  if (!mk.ok()) return fail(mk);
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0) {
    const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (free_bytes < c.min_free_bytes) {
      std::string why = "checkpoint skipped: only " + std::to_string(free_bytes >> 20) + " MiB free in " +
                        dir + " (threshold " + std::to_string(c.min_free_bytes >> 20) +
                        " MiB); free space or lower --min-free";
      spdlog::warn("{}", why);
      ReportNote("warn", why);
      return fail(Status::NoSpace(why));
    }
  }
  const std::string id = SnapshotIdFor(started);
  ledger::LedgerControlClient client(opt_.node.ledger_control);
  auto cp = client.Checkpoint(dir + "/" + id);
  if (!cp.ok()) return fail(cp.status().WithContext("local checkpoint"));
  res.snapshot_id = id;
  res.consistent = true;
  res.genesis = cp->genesis;
  res.last_reachable = cp->last_reachable;
  res.last_block_id = cp->last;
  res.ok = true;
  // Keep the newest N (default 2).
  const uint32_t keep = c.keep_last == 0 ? 2 : c.keep_last;
  std::vector<std::string> ids;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    // Only our checkpoints: never anything else an operator keeps there.
    if (e.is_directory() && IsSnapshotId(e.path().filename().string())) ids.push_back(e.path().filename().string());
  }
  size_t kept = ids.size();
  for (const auto& old : SnapshotsToDelete(ids, opt_.clock->NowMs(), {keep, 0})) {
    std::error_code ec;
    std::filesystem::remove_all(dir + "/" + old, ec);
    spdlog::info("checkpoint retention: deleted {}", old);
    if (!ec) --kept;
  }
  res.snapshot_count = static_cast<uint32_t>(kept);
  res.duration_ms = opt_.clock->NowMs() - started;
  return res;
}

void BackupService::ReportNote(const std::string& level, const std::string& text) {
  std::function<void(wire::ReportBodyUnion)> reporter;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reporter = reporter_;
  }
  if (!reporter) return;
  wire::NoteT note;
  note.level = level;
  note.text = text;
  wire::ReportBodyUnion b;
  b.Set(std::move(note));
  reporter(std::move(b));
}

// ---------------------------------------------------------------- scheduler

void BackupService::StartScheduler() {
  scheduler_ = std::thread([this] { SchedulerLoop(); });
}

void BackupService::Stop() {
  stopping_ = true;
  cv_.notify_all();
  if (scheduler_.joinable()) scheduler_.join();
}

// The scheduler thread's boundary: an exception from one run (or from
// reading the schedule) is logged and reported, and the schedule goes on;
// the run's slot was recorded before it started, so it is not retried at
// once.
void BackupService::SchedulerLoop() {
  while (!stopping_) {
    try {
      ScheduleTurns();
    } catch (...) {
      const std::string what = "internal error in a scheduled backup: " + CurrentExceptionText() +
                               "; the agent keeps serving and the schedule goes on";
      spdlog::error("{}", what);
      ReportNote("error", what);
    }
  }
}

void BackupService::ScheduleTurns() {
  while (!stopping_) {
    BackupConfig c;
    std::function<void(wire::ReportBodyUnion)> reporter;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping_.load(); });
      if (stopping_) return;
      c = config_;
      reporter = reporter_;
    }
    if (!c.scheduled) continue;
    auto next = NextRun(c);
    if (!next.ok()) {
      spdlog::error("backup schedule: {}", next.status().ToString());
      continue;
    }
    const int64_t now = opt_.clock->NowMs();
    if (now < *next) continue;
    {
      std::lock_guard<std::mutex> lock(mu_);
      config_.last_scheduled_run_ms = now;
      Status s = SaveConfig();
      if (!s.ok()) spdlog::error("cannot save backup config: {}", s.ToString());
    }
    spdlog::info("scheduled backup ({} {}) starting", c.frequency, c.time_zone);
    auto progress = [&](const TransferProgress& p) {
      if (!reporter) return;
      wire::ReportBodyUnion b;
      b.Set(ProgressToWire(p));
      reporter(std::move(b));
    };
    auto res = RunLocked(c, /*scheduled=*/true, progress, [this] { return stopping_.load(); });
    if (reporter) {
      wire::ReportBodyUnion b;
      b.Set(ToWire(res));
      reporter(std::move(b));
    }
  }
}

}  // namespace ledgerkeep
