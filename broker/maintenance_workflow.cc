// The maintenance run's driver (broker/maintenance_run.h): Execute runs the
// step table of the run's mode, saving the step reached before each step,
// and turns a failure or an abort into what the step declares; the tables,
// and the workflow's entry points.
#include "broker/maintenance_workflow.h"

#include <algorithm>
#include <cstdio>

#include "broker/maintenance_run.h"
#include "broker/workflow_steps.h"

namespace ledgerkeep {
namespace maintenance_internal {

Status MaintenanceRun::Execute() {
  if (const auto m = params_.find("mode");
      m != params_.end() && !(m->is_string() && (*m == "online" || *m == "offline"))) {
    return Status::InvalidArgument("mode must be \"online\" or \"offline\"");
  }
  LK_ASSIGN_OR_RETURN(state_, MaintenanceState::ReadFrom(ctx_.state()));
  report_["mode"] = online_ ? "online" : "offline";
  if (params_.value("dry_run", false)) return DryRun();
  if (state_.rolling_back) return Rollback(state_.failure.empty() ? "resumed rollback" : state_.failure);
  const auto& table = Table(online_ ? MaintenanceMode::kOnline : MaintenanceMode::kOffline);
  // After a broker restart the report starts empty: carry over what the
  // saved state knows from the steps already done.
  if (ctx_.state().contains("stop_point")) report_["stop_point"] = ctx_.state()["stop_point"];
  if (state_.common_block) report_["common_block"] = *state_.common_block;
  if (!state_.archive.empty()) report_["archive"] = state_.archive;
  if (state_.step > 0) report_["resumed_at_step"] = table[std::min(state_.step, table.size() - 1)].step.name;
  for (size_t step = state_.step; step < table.size(); ++step) {
    const MaintenanceStep& def = table[step].step;
    const std::string name(def.name);
    if (ctx_.abort_requested()) {
      if (def.on_failure == StepFailure::kRollBack) return Rollback("aborted by the operator");
      if (def.on_failure == StepFailure::kIncomplete) return Incomplete("aborted by the operator");
      // Not even the pre hook runs after an abort.
      report_["failed_step"] = name;
      return Status::Aborted("aborted by the operator before " + name + "; nothing was changed");
    }
    if (ctx_.cancelled()) return Status::Aborted("broker stopping");
    state_.step = step;
    LK_RETURN_IF_ERROR(SaveState());
    ctx_.Step(name, "started", "");
    const int64_t t0 = ctx_.clock().MonotonicNowMs();
    Status s = (this->*table[step].forward)();
    const int64_t ms = ctx_.clock().MonotonicNowMs() - t0;
    report_["steps"][name] = {{"ms", ms}, {"ok", s.ok()}};
    if (ctx_.cancelled()) return Status::Aborted("broker stopping");  // resumes on restart
    if (!s.ok()) {
      ctx_.Step(name, "failed", s.message());
      report_["failed_step"] = name;
      switch (def.on_failure) {
        case StepFailure::kRollBackIfAborted:
          // A pre hook killed by an abort may have done part of its work
          // (stopped some applications): roll back, which runs the post hook.
          if (ctx_.abort_requested()) return Rollback("aborted by the operator: " + s.message());
          [[fallthrough]];
        case StepFailure::kNothingChanged:
          return s.WithContext(name + " failed; nothing was changed");
        case StepFailure::kRollBack:
          return Rollback(name + " failed: " + s.message());
        case StepFailure::kIncomplete:
          return Incomplete(s.message());
      }
    }
    ctx_.Step(name, "done", StepDoneDetail(name, ms));
  }
  Figures();
  if (online_) report_["complete"] = true;
  return Status::OK();
}

// The run's figures (issue 15): window_s (offline: clients stopped ..
// started), client_downtime_s (the same interval, both modes), and online
// pause_s (first replica at the stop point .. every replica past it) and
// shipping_s.
void MaintenanceRun::Figures() {
  if (state_.window_end_ms > state_.window_start_ms) {
    const double window = static_cast<double>(state_.window_end_ms - state_.window_start_ms) / 1000.0;
    report_["window_s"] = window;
    report_["client_downtime_s"] = window;
  }
  if (state_.pause_end_ms > 0 && state_.pause_start_ms > 0) {
    report_["pause_s"] = static_cast<double>(std::max<int64_t>(state_.pause_end_ms - state_.pause_start_ms, 0)) / 1000.0;
  }
  if (state_.ship_start_ms > 0) {
    const int64_t end = state_.ship_end_ms > 0 ? state_.ship_end_ms : ctx_.clock().NowMs();
    report_["shipping_s"] = static_cast<double>(end - state_.ship_start_ms) / 1000.0;
  }
}

// The "done" event's detail: the step's time, and the figure it fixed.
std::string MaintenanceRun::StepDoneDetail(const std::string& name, int64_t ms) {
  std::string d = std::to_string(ms) + " ms";
  Figures();
  char buf[96];
  if (name == "verify_blocks" && online_ && report_.contains("pause_s")) {
    std::snprintf(buf, sizeof buf, "; ledger paused %.2f s", report_["pause_s"].get<double>());
    d += buf;
  } else if (name == "start_clients" && report_.contains("client_downtime_s")) {
    std::snprintf(buf, sizeof buf, "; clients were down %.2f s", report_["client_downtime_s"].get<double>());
    d += buf;
  } else if (name == "ship" && report_.contains("shipping_s")) {
    std::snprintf(buf, sizeof buf, "; shipping took %.2f s", report_["shipping_s"].get<double>());
    d += buf;
  }
  return d;
}

// Ends an online run whose cluster serves again but whose shipping did not
// finish: nothing is rolled back, the checkpoints stay.
Status MaintenanceRun::Incomplete(const std::string& why) {
  Figures();
  report_["complete"] = false;
  std::string waiting;
  for (const auto& n : NodesWithRole(wire::Role::Replica).value_or(std::vector<std::string>{})) {
    if (state_.shipped.count(n) == 0) waiting += (waiting.empty() ? "" : ", ") + n;
  }
  report_["not_shipped"] = waiting;
  ctx_.Step("ship", "incomplete", why);
  return Status::Aborted("the cluster serves again, but the snapshot set of run " + std::to_string(ctx_.run_id()) +
                         " is incomplete (" + why + "); not confirmed shipped: " + waiting +
                         " (a shipment still in flight may yet complete: `ledgerkeep backup list --sets`); each "
                         "checkpoint stays beside its DB until its snapshot is complete or the next maintenance "
                         "run replaces it");
}

Status MaintenanceRun::SaveState() {
  state_.WriteTo(ctx_.state());
  return ctx_.SaveState();
}

// The maintenance run: the steps in order, what each does and what its
// failure does (see MaintenanceStep). From stop_clients on the cluster is
// changed, so a failure rolls it back; the pre hook only when an abort
// killed it.
const std::vector<MaintenanceRun::StepDef>& MaintenanceRun::Table(MaintenanceMode mode) {
  using F = StepFailure;
  using R = MaintenanceRun;
  static const std::vector<StepDef> offline = {
      {{"preflight", F::kNothingChanged, false,
        "every node alive, one destination per node, replicas healthy, hooks and archive name valid"},
       &R::Preflight},
      {{"pre_hook", F::kRollBackIfAborted, true, "run the --pre-hook named in the broker's config, if any"},
       &R::PreHook},
      {{"stop_clients", F::kRollBack, false, "stop the client components (the window starts)"}, &R::StopClients},
      {{"wedge", F::kRollBack, false, "wedge every replica at one stop point"}, &R::Wedge},
      {{"stop_replicas", F::kRollBack, false, "stop ledgerd on every replica"}, &R::StopReplicas},
      {{"check_blocks", F::kRollBack, false, "offline block ids: every replica at the same block, no gap"},
       &R::CheckBlocks},
      {{"client_backup", F::kRollBack, false, "issue the client archives (waited for with the final sync)"},
       &R::IssueClientBackups},
      {{"final_sync", F::kRollBack, false,
        "final backup run on every stopped replica, consistent at the common block; the client archives"},
       &R::FinalSyncAndClientBackups},
      {{"start_replicas", F::kRollBack, false, "start ledgerd on every replica"}, &R::StartReplicas},
      {{"unwedge", F::kRollBack, false, "unwedge every replica"}, &R::Unwedge},
      {{"verify_blocks", F::kRollBack, false, "blocks advance past the common block on every replica"},
       &R::VerifyBlocksAdvance},
      {{"start_clients", F::kRollBack, false, "start the client components (the window ends)"}, &R::StartClients},
      {{"post_hook", F::kRollBack, true, "run the --post-hook named in the broker's config, if any"}, &R::PostHook},
  };
  static const std::vector<StepDef> online = {
      {{"preflight", F::kNothingChanged, false,
        "every node alive, one destination per node, replicas healthy, hooks and archive name valid, "
        "free disk for a checkpoint on every replica"},
       &R::Preflight},
      {{"pre_hook", F::kRollBackIfAborted, true, "run the --pre-hook named in the broker's config, if any"},
       &R::PreHook},
      {{"stop_clients", F::kRollBack, false, "stop the client components (client downtime starts)"},
       &R::StopClients},
      {{"wedge", F::kRollBack, false, "wedge every replica at one stop point (the pause starts)"}, &R::Wedge},
      {{"checkpoint", F::kRollBack, false,
        "every replica checkpoints at the stop point; last block id and the stop block's digest equal on all"},
       &R::TakeCheckpoints},
      {{"unwedge", F::kRollBack, false, "unwedge every replica"}, &R::Unwedge},
      {{"verify_blocks", F::kRollBack, false, "blocks advance past the stop point on every replica (the pause ends)"},
       &R::VerifyBlocksAdvance},
      {{"client_backup", F::kRollBack, false, "the client archives"}, &R::ClientBackups},
      {{"start_clients", F::kRollBack, false, "start the client components (client downtime ends)"},
       &R::StartClients},
      {{"post_hook", F::kRollBack, true, "run the --post-hook named in the broker's config, if any"}, &R::PostHook},
      {{"ship", F::kIncomplete, false,
        "ship every checkpoint as its snapshot of the run's set, in parallel, retrying until complete; "
        "the ledger runs meanwhile"},
       &R::Ship},
  };
  return mode == MaintenanceMode::kOnline ? online : offline;
}

}  // namespace maintenance_internal

using maintenance_internal::MaintenanceRun;

const std::vector<MaintenanceStep>& MaintenanceSteps(MaintenanceMode mode) {
  static const auto steps_of = [](MaintenanceMode m) {
    std::vector<MaintenanceStep> out;
    for (const auto& row : MaintenanceRun::Table(m)) out.push_back(row.step);
    return out;
  };
  static const std::vector<MaintenanceStep> online = steps_of(MaintenanceMode::kOnline);
  static const std::vector<MaintenanceStep> offline = steps_of(MaintenanceMode::kOffline);
  return mode == MaintenanceMode::kOnline ? online : offline;
}

Status MaintenanceWorkflow::Run(WorkflowContext& ctx, nlohmann::json& report) {
  return MaintenanceRun(ctx, report).Execute();
}

void RegisterMaintenanceWorkflow(WorkflowManager& manager) {
  manager.Register("maintenance", [](const nlohmann::json&) { return std::make_unique<MaintenanceWorkflow>(); });
}

}  // namespace ledgerkeep
