// The online window's own steps (issue 15; broker/maintenance_run.h): the
// checkpoint space check, the checkpoints at the stop point, the client
// archives, and shipping every checkpoint while the ledger runs.
#include <algorithm>
#include <map>

#include "broker/maintenance_run.h"
#include "broker/workflow_steps.h"

namespace ledgerkeep::maintenance_internal {

wire::CommandBodyUnion MaintenanceRun::CheckpointBody(wire::CheckpointAction action, uint64_t stop_point) const {
  wire::MaintenanceCheckpointT c;
  c.run_id = ctx_.run_id();
  c.stop_point = stop_point;
  c.action = action;
  c.min_free_bytes = params_.value("min_free_bytes", uint64_t{0});
  wire::CommandBodyUnion body;
  body.Set(std::move(c));
  return body;
}

// Preflight: every replica has room for a checkpoint (it pins SSTs that
// compaction would delete: up to its DB's size while it ships).
Status MaintenanceRun::CheckCheckpointSpace() {
  auto st = OnAll(wire::Role::Replica, CheckpointBody(wire::CheckpointAction::Check), 30'000);
  if (!st.ok()) return Status::FailedPrecondition("not enough disk for a checkpoint: " + st.status().message());
  for (const auto& t : st->targets) {
    if (const auto* r = t->result->detail.AsMaintenanceCheckpointResult()) {
      report_["disk"][t->node_id] = {{"db_bytes", r->db_bytes}, {"free_bytes", r->free_bytes},
                                     {"held_bytes", r->held_bytes}};
    }
  }
  return Status::OK();
}

// Every replica, wedged, checkpoints at the stop point; the checkpoints
// must agree (CrossCheckCheckpoints) before anything is unwedged.
Status MaintenanceRun::TakeCheckpoints() {
  const uint64_t stop = report_.value("stop_point", uint64_t{0});
  if (stop == 0) return Status::Internal("no stop point");
  state_.checkpoints_taken = true;
  LK_RETURN_IF_ERROR(SaveState());
  LK_ASSIGN_OR_RETURN(auto st, OnAll(wire::Role::Replica, CheckpointBody(wire::CheckpointAction::Take, stop),
                                     static_cast<uint32_t>(params_.value("stop_timeout_s", int64_t{120}) * 1000)));
  std::vector<ReplicaCheckpoint> cps;
  int64_t first_wedged = 0;
  for (const auto& t : st.targets) {
    const auto* r = t->result->detail.AsMaintenanceCheckpointResult();
    if (r == nullptr) return Status::Internal(t->node_id + " answered without a checkpoint");
    cps.push_back({t->node_id, r->last_reachable, r->last, r->stop_digest});
    if (r->wedged_since_ms > 0 && (first_wedged == 0 || r->wedged_since_ms < first_wedged)) {
      first_wedged = r->wedged_since_ms;
    }
    report_["checkpoints"][t->node_id] = {{"last_block_id", r->last},   {"stop_digest", r->stop_digest},
                                          {"took_ms", r->took_ms},      {"db_bytes", r->db_bytes},
                                          {"free_bytes", r->free_bytes}, {"path", r->path}};
  }
  LK_RETURN_IF_ERROR(CrossCheckCheckpoints(stop, cps));
  state_.common_block = stop;
  state_.pause_start_ms = first_wedged;
  report_["common_block"] = stop;
  return SaveState();
}

Status MaintenanceRun::ClientBackups() {
  LK_RETURN_IF_ERROR(IssueClientBackups());
  return WaitClientBackups();
}

// Ships every replica's checkpoint as its snapshot of this run's set, in
// parallel (one command per replica). A failed shipment is issued again
// for that replica alone after a pause (1 s, doubling to 30 s) until
// ship_timeout_s; the others go on meanwhile. Each success is saved, so a
// broker restart resumes with the shipments in flight and the ones missing.
Status MaintenanceRun::Ship() {
  if (state_.ship_start_ms == 0) {
    state_.ship_start_ms = ctx_.clock().NowMs();
    LK_RETURN_IF_ERROR(SaveState());
  }
  LK_ASSIGN_OR_RETURN(auto replicas, NodesWithRole(wire::Role::Replica));
  const int64_t deadline =
      ctx_.clock().MonotonicNowMs() + params_.value("ship_timeout_s", int64_t{86'400}) * 1000;
  const uint32_t attempt_ms = static_cast<uint32_t>(params_.value("backup_timeout_s", int64_t{3600}) * 1000);
  struct Retry {
    int attempts = 0;
    int64_t pause_ms = 1000;
    int64_t next_ms = 0;  // monotonic; 0 = now
  };
  std::map<std::string, Retry> retry;
  while (state_.shipped.size() < replicas.size()) {
    if (ctx_.cancelled()) return Status::Aborted("broker stopping");  // resumes on restart
    if (ctx_.abort_requested()) return Status::Aborted("aborted by the operator while shipping");
    const int64_t now = ctx_.clock().MonotonicNowMs();
    if (now >= deadline) return Status::Timeout("shipping did not finish within ship_timeout_s");
    bool changed = false;
    // Issue what is missing and due.
    for (const auto& n : replicas) {
      if (state_.shipped.count(n) != 0 || state_.ship_cmds.count(n) != 0 || now < retry[n].next_ms) continue;
      wire::RunBackupNowT r;
      r.reason = "maintenance";
      r.maintenance_run = ctx_.run_id();
      wire::CommandBodyUnion body;
      body.Set(std::move(r));
      LK_ASSIGN_OR_RETURN(uint64_t id, ctx_.IssueCommand(TargetNode(n), std::move(body), attempt_ms));
      state_.ship_cmds[n] = id;
      ++retry[n].attempts;
      report_["shipping"][n] = {{"state", "shipping"}, {"attempt", retry[n].attempts}, {"cmd_id", id}};
      LK_RETURN_IF_ERROR(SaveState());
      changed = true;
    }
    // Collect what finished.
    for (auto it = state_.ship_cmds.begin(); it != state_.ship_cmds.end();) {
      const std::string node = it->first;
      auto st = ctx_.WaitCommand(it->second, 100);
      if (!st.ok() && st.status().code() == StatusCode::kTimeout) {
        ++it;  // still shipping
        continue;
      }
      if (ctx_.cancelled()) return Status::Aborted("broker stopping");
      std::string error;
      const wire::BackupResultT* b = nullptr;
      if (!st.ok()) {
        error = st.status().ToString();
      } else {
        for (const auto& t : st->targets) {
          b = t->result ? t->result->detail.AsBackupResult() : nullptr;
          if (!ResultOk(*t) || b == nullptr) error = ResultText(*t);
        }
      }
      Retry& rt = retry[node];
      if (error.empty() && b != nullptr) {
        state_.shipped[node] = b->snapshot_id;
        report_["replicas"][node] = {{"snapshot_id", b->snapshot_id}, {"bytes_transferred", b->bytes_transferred},
                                     {"bytes_total", b->bytes_total}, {"duration_ms", b->duration_ms},
                                     {"consistent", b->consistent}, {"last_block_id", b->last_block_id},
                                     {"destination", b->destination}, {"set_run", b->set_run}};
        report_["shipping"][node] = {{"state", "done"}, {"snapshot_id", b->snapshot_id}};
        ctx_.Step("ship", "progress", node + ": snapshot " + b->snapshot_id + " complete");
      } else {
        rt.next_ms = ctx_.clock().MonotonicNowMs() + rt.pause_ms;
        report_["shipping"][node] = {{"state", "retrying"}, {"attempt", rt.attempts}, {"error", error},
                                     {"next_attempt_in_s", rt.pause_ms / 1000}};
        ctx_.Note("maintenance", node, "warn",
                  "run " + std::to_string(ctx_.run_id()) + ": shipping the checkpoint failed (" + error +
                      "); the checkpoint is kept and the shipment is issued again in " +
                      std::to_string(rt.pause_ms / 1000) + " s");
        rt.pause_ms = std::min<int64_t>(rt.pause_ms * 2, 30'000);
      }
      it = state_.ship_cmds.erase(it);
      LK_RETURN_IF_ERROR(SaveState());
      changed = true;
    }
    if (changed) ctx_.SaveReport(report_).IgnoreError();
    if (state_.ship_cmds.empty()) ctx_.clock().SleepMs(200);  // only retries are pending
  }
  state_.ship_end_ms = ctx_.clock().NowMs();
  return SaveState();
}

}  // namespace ledgerkeep::maintenance_internal
