// BackupService's command handlers (backup_service.h): wire commands in,
// library calls, wire results out.
#include <spdlog/spdlog.h>

#include "agents/backup_service.h"
#include "backup/backup_schedule.h"
#include "backup/retention.h"
#include "backup/rsync.h"
#include "backup/snapshot_verifier.h"

namespace ledgerkeep {
namespace {

Status BwlimitOutOfRange(uint64_t v) {
  return Status::InvalidArgument("bwlimit " + std::to_string(v) + " bytes/s is out of range: give 0 (no limit) to " +
                                 std::to_string(kMaxBwlimitBytesPerS) + " (1 TiB/s)");
}

class BackupHandler final : public CommandHandler {
 public:
  BackupHandler(BackupService* s, std::function<CommandOutcome(BackupService*, const CommandContext&)> fn,
                std::string lane)
      : s_(s), fn_(std::move(fn)), lane_(std::move(lane)) {}
  std::string Lane(const wire::Command&) const override { return lane_; }
  CommandOutcome Execute(const CommandContext& ctx) override { return fn_(s_, ctx); }

 private:
  BackupService* s_;
  std::function<CommandOutcome(BackupService*, const CommandContext&)> fn_;
  std::string lane_;
};

}  // namespace

// ---------------------------------------------------------------- commands

CommandOutcome BackupService::Schedule(const wire::ScheduleBackup& cmd) {
  const std::string mode = cmd.mode() == wire::BackupMode::Checkpoint ? "checkpoint" : "rsync";
  BackupTarget target = FromWire(cmd.target());
  const std::string freq = cmd.frequency() ? cmd.frequency()->str() : "";
  const std::string tz = cmd.time_zone() && cmd.time_zone()->size() ? cmd.time_zone()->str() : "UTC";
  auto sched = ParseSchedule(freq, tz);
  if (!sched.ok()) return Fail(sched.status());
  // The CLI checks these ranges too; a command from elsewhere is checked here.
  Status retention = ValidateRetention({cmd.retention() ? cmd.retention()->keep_last() : 0u,
                                        cmd.retention() ? cmd.retention()->max_age_s() : 0u});
  if (!retention.ok()) return Fail(retention);
  if (cmd.min_free_bytes() > kMaxMinFreeBytes) {
    return Fail(Status::InvalidArgument("min_free_bytes " + std::to_string(cmd.min_free_bytes()) +
                                        " is out of range: give 0 to " + std::to_string(kMaxMinFreeBytes) +
                                        " (1 PiB)"));
  }
  if (cmd.bwlimit_bytes_per_s() > kMaxBwlimitBytesPerS) return Fail(BwlimitOutOfRange(cmd.bwlimit_bytes_per_s()));
  BackupConfig c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (config_.scheduled && config_.mode != mode) {
      return Fail(Status::FailedPrecondition(
          "this node already runs " + config_.mode + " backups (" + config_.frequency + "); a node runs " +
          "one backup mode, never both. To switch, run `ledgerkeep backup unschedule --node " +
          opt_.node_id + "`, then schedule the " + mode + " mode"));
    }
    c = config_;
  }
  c.mode = mode;
  c.scheduled = true;
  c.frequency = freq;
  c.time_zone = tz;
  c.keep_last = cmd.retention() ? cmd.retention()->keep_last() : 0;
  c.max_age_s = cmd.retention() ? cmd.retention()->max_age_s() : 0;
  if (cmd.min_free_bytes() > 0) c.min_free_bytes = cmd.min_free_bytes();
  c.bwlimit_bytes_per_s = cmd.bwlimit_bytes_per_s();
  // Checkpoint mode keeps its own local directory (empty = next to the DB);
  // an earlier rsync destination must not leak into it.
  if (mode == "rsync") {
    SetDestination(c, target);
  } else {
    SetDestination(c, BackupTarget{});
    c.destination = target.destination;
  }
  if (mode == "rsync") {
    // Validate the destination and claim it now, so a shared or unreachable
    // directory is refused when scheduling, not an hour later.
    auto o = RunOptionsFor(c, true);
    if (!o.ok()) return Fail(o.status());
    Status claim = engine_.Claim(*o);
    if (!claim.ok()) return Fail(claim);
  } else if (Status where = CheckpointDirAllowed(ExpandNodePlaceholder(c.destination, opt_.node_id));
             !where.ok()) {
    return Fail(where);
  }
  c.scheduled_since_ms = opt_.clock->NowMs();
  c.last_scheduled_run_ms = 0;
  if (mode == "rsync") {
    c.places = PlacesOf(c, opt_.node_id);  // the new home first; the old one stays if it holds snapshots
  }
  std::lock_guard<std::mutex> lock(mu_);
  config_ = c;
  Status s = SaveConfig();
  if (!s.ok()) return Fail(s);
  cv_.notify_all();
  spdlog::info("backups scheduled: {} ({}), {}", DescribeSchedule(*sched), mode, c.destination);
  return GetStatusLocked();
}

CommandOutcome BackupService::Unschedule() {
  std::lock_guard<std::mutex> lock(mu_);
  config_.scheduled = false;
  config_.frequency.clear();
  if (config_.mode == "checkpoint") config_.mode = "none";
  if (config_.mode == "rsync" && config_.destination.empty()) config_.mode = "none";
  Status s = SaveConfig();
  if (!s.ok()) return Fail(s);
  return GetStatusLocked();
}

CommandOutcome BackupService::Configure(const wire::ConfigureBackup& cmd) {
  BackupTarget target = FromWire(cmd.target());
  BackupConfig c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (config_.scheduled && config_.mode == "checkpoint") {
      return Fail(Status::FailedPrecondition(
          "this node runs checkpoint-mode backups; a node runs one backup mode. Run `ledgerkeep "
          "backup unschedule --node " + opt_.node_id + "` first"));
    }
    c = config_;
  }
  SetDestination(c, target);
  if (c.mode == "none") c.mode = "rsync";
  auto o = RunOptionsFor(c, false);
  if (!o.ok()) return Fail(o.status());
  if (!opt_.node.ledger_db.empty()) {  // replicas claim now; clients claim when they ship
    Status claim = engine_.Claim(*o);
    if (!claim.ok()) return Fail(claim);
  }
  c.places = PlacesOf(c, opt_.node_id);
  std::lock_guard<std::mutex> lock(mu_);
  config_ = c;
  Status s = SaveConfig();
  if (!s.ok()) return Fail(s);
  return GetStatusLocked();
}

CommandOutcome BackupService::RunNow(const CommandContext& ctx, const wire::RunBackupNow& cmd) {
  BackupConfig c;
  {
    std::lock_guard<std::mutex> lock(mu_);
    c = config_;
  }
  if (cmd.bwlimit_bytes_per_s() > kMaxBwlimitBytesPerS) return Fail(BwlimitOutOfRange(cmd.bwlimit_bytes_per_s()));
  if (cmd.bwlimit_bytes_per_s() != 0) c.bwlimit_bytes_per_s = cmd.bwlimit_bytes_per_s();
  BackupTarget target = FromWire(cmd.target());
  if (!target.destination.empty()) {
    // A one-off destination: this run only. It never replaces the home
    // destination; its snapshot is recorded as a place (RunLocked).
    SetDestination(c, target);
    if (c.mode == "none") c.mode = "rsync";
  }
  if (c.mode == "none" || (c.mode == "rsync" && c.destination.empty())) {
    return Fail(Status::FailedPrecondition(
        "no backup destination for " + opt_.node_id +
        ": pass --destination, or set one with `ledgerkeep backup configure` or `backup schedule`"));
  }
  if (cmd.maintenance_run() != 0) return ShipCheckpoint(ctx, c, cmd.maintenance_run());
  auto res = RunLocked(
      c, false, [&](const TransferProgress& p) { ctx.ReportProgress(p); },
      [&] { return ctx.cancelled(); });
  CommandOutcome out;
  if (!res.ok) out.status = Status(StatusCode::kAborted, res.error);
  out.detail.Set(ToWire(res));
  return out;
}

CommandOutcome BackupService::ShipCheckpoint(const CommandContext& ctx, const BackupConfig& c, uint64_t run) {
  auto cp = checkpoints_.Find(run);
  if (!cp.ok()) {
    return Fail(cp.status().code() == StatusCode::kNotFound
                    ? Status::FailedPrecondition("no checkpoint of maintenance run " + std::to_string(run) + " on " +
                                                 opt_.node_id + " (it was released, or never taken)")
                    : cp.status());
  }
  BackupResult res;
  if (cp->shipped) {  // a repeated request: complete already
    res.ok = true;
    res.snapshot_id = cp->snapshot_id;
    res.destination = ExpandedTarget(c, opt_.node_id).destination;
    res.consistent = true;
    res.genesis = cp->checkpoint.genesis;
    res.last_reachable = cp->checkpoint.last_reachable;
    res.last_block_id = cp->checkpoint.last;
    res.set_run = run;
    res.set_block = cp->stop_point;
  } else {
    res = RunLocked(
        c, false, [&](const TransferProgress& p) { ctx.ReportProgress(p); }, [&] { return ctx.cancelled(); },
        &*cp);
    if (res.ok) {
      Status s = checkpoints_.MarkShipped(run);
      if (!s.ok()) spdlog::warn("maintenance run {}: snapshot complete, checkpoint not deleted: {}", run, s.ToString());
    }
  }
  CommandOutcome out;
  if (!res.ok) out.status = Status(res.error_code == StatusCode::kOk ? StatusCode::kAborted : res.error_code, res.error);
  out.detail.Set(ToWire(res));
  return out;
}

CommandOutcome BackupService::Checkpoint(const wire::MaintenanceCheckpoint& cmd) {
  wire::MaintenanceCheckpointResultT r;
  r.run_id = cmd.run_id();
  CommandOutcome out;
  switch (cmd.action()) {
    case wire::CheckpointAction::Check: {
      Status s = checkpoints_.CheckSpace(cmd.min_free_bytes());
      if (!s.ok()) return Fail(s);
      break;
    }
    case wire::CheckpointAction::Take: {
      auto t = checkpoints_.Take(cmd.run_id(), cmd.stop_point(), cmd.min_free_bytes());
      if (!t.ok()) return Fail(t.status());
      r.last_reachable = t->checkpoint.last_reachable;
      r.last = t->checkpoint.last;
      r.stop_digest = t->stop_digest;
      r.wedged_since_ms = t->wedged_since_ms;
      r.path = t->checkpoint.dir;
      r.took_ms = t->took_ms;
      break;
    }
    case wire::CheckpointAction::Release: {
      Status s = checkpoints_.Release(cmd.run_id());
      if (!s.ok()) return Fail(s);
      break;
    }
    default:
      return Fail(Status::InvalidArgument("unknown checkpoint action"));
  }
  if (auto space = checkpoints_.Space(); space.ok()) {
    r.db_bytes = space->db_bytes;
    r.free_bytes = space->free_bytes;
    r.held_bytes = space->held_bytes;
  }
  out.detail.Set(std::move(r));
  return out;
}

CommandOutcome BackupService::GetStatus() {
  std::lock_guard<std::mutex> lock(mu_);
  return GetStatusLocked();
}

CommandOutcome BackupService::GetStatusLocked() {
  wire::BackupStatusT st;
  st.mode = config_.mode;
  st.destination = ExpandNodePlaceholder(config_.destination, opt_.node_id);
  st.running = running_;
  if (config_.scheduled) {
    auto sched = ParseSchedule(config_.frequency, config_.time_zone);
    if (sched.ok()) st.schedule = DescribeSchedule(*sched);
    auto next = NextRun(config_);
    if (next.ok()) st.next_run_ms = *next;
  }
  if (last_) st.last = std::make_unique<wire::BackupResultT>(ToWire(*last_));
  if (last_ok_) st.last_ok = std::make_unique<wire::BackupResultT>(ToWire(*last_ok_));
  st.places = PlacesToWire(PlacesOf(config_, opt_.node_id));
  CommandOutcome out;
  out.detail.Set(std::move(st));
  return out;
}

CommandOutcome BackupService::List() {
  auto every = AccessToEveryPlace(opt_.data_dir + "/backup/work");
  if (!every.ok()) return Fail(every.status());
  const std::vector<SnapshotAccess>& access = *every;
  PlacesListing listing = ListPlaces(opt_.runner, access);
  wire::SnapshotListT sl;
  sl.destination = access[0].destination.Display();
  for (auto& s : listing.snapshots) sl.snapshots.push_back(std::make_unique<wire::SnapshotInfoT>(ToWire(s)));
  sl.unreachable = std::move(listing.unreachable);
  CommandOutcome out;
  if (!sl.unreachable.empty() && sl.unreachable.size() == access.size()) {
    out.status = Status::Unavailable("cannot list the snapshots of " + opt_.node_id + ": " + sl.unreachable[0]);
  }
  out.detail.Set(std::move(sl));
  return out;
}

CommandOutcome BackupService::Verify(const CommandContext& ctx, const wire::VerifyBackup& cmd) {
  auto every = AccessToEveryPlace(opt_.data_dir + "/backup/verify-work");
  if (!every.ok()) return Fail(every.status());
  std::vector<SnapshotAccess>& access = *every;
  for (auto& a : access) {
    a.on_progress = [&](const TransferProgress& pr) { ctx.ReportProgress(pr); };
    a.cancelled = [&] { return ctx.cancelled(); };
  }
  auto res = VerifyBackup(opt_.runner, access, cmd.snapshot_id() ? cmd.snapshot_id()->str() : "", cmd.all());
  if (!res.ok()) return Fail(res.status());
  std::string bad;
  for (const auto& v : res->snapshots) {
    if (v.ok) continue;
    bad += "\nsnapshot " + v.snapshot_id + " at " + v.destination + ":\n" + DescribeProblems(v);
  }
  CommandOutcome out;
  if (!bad.empty()) {
    out.status = Status::Corruption("backup verification failed" + bad);
  }
  out.detail.Set(ToWire(*res));
  return out;
}

Result<BackupTarget> BackupService::ConfiguredTarget() {
  std::lock_guard<std::mutex> lock(mu_);
  if (config_.destination.empty() || config_.mode == "checkpoint") {
    return Status::NotFound("no backup destination configured on " + opt_.node_id);
  }
  BackupTarget t = ExpandedTarget(config_, opt_.node_id);
  t.destination = config_.destination;  // as configured ({node} kept)
  return t;
}

HandlerMap BackupService::Handlers() {
  HandlerMap m;
  auto add = [&](wire::CommandBody type, std::string lane,
                 std::function<CommandOutcome(BackupService*, const CommandContext&)> fn) {
    m[type] = std::make_shared<BackupHandler>(this, std::move(fn), std::move(lane));
  };
  add(wire::CommandBody::ScheduleBackup, "backup-config", [](BackupService* s, const CommandContext& c) {
    return s->Schedule(*c.command().body_as_ScheduleBackup());
  });
  add(wire::CommandBody::UnscheduleBackup, "backup-config",
      [](BackupService* s, const CommandContext&) { return s->Unschedule(); });
  add(wire::CommandBody::ConfigureBackup, "backup-config", [](BackupService* s, const CommandContext& c) {
    return s->Configure(*c.command().body_as_ConfigureBackup());
  });
  add(wire::CommandBody::RunBackupNow, "backup", [](BackupService* s, const CommandContext& c) {
    return s->RunNow(c, *c.command().body_as_RunBackupNow());
  });
  // Its own lane: the window's checkpoint must not wait behind an hourly run.
  add(wire::CommandBody::MaintenanceCheckpoint, "maintenance", [](BackupService* s, const CommandContext& c) {
    return s->Checkpoint(*c.command().body_as_MaintenanceCheckpoint());
  });
  add(wire::CommandBody::GetBackupStatus, "control",
      [](BackupService* s, const CommandContext&) { return s->GetStatus(); });
  add(wire::CommandBody::ListSnapshots, "backup-list",
      [](BackupService* s, const CommandContext&) { return s->List(); });
  add(wire::CommandBody::VerifyBackup, "backup-verify", [](BackupService* s, const CommandContext& c) {
    return s->Verify(c, *c.command().body_as_VerifyBackup());
  });
  return m;
}

}  // namespace ledgerkeep
