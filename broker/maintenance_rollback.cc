// The maintenance run's rollback (broker/maintenance_run.h): what a failure
// or an abort after the clients were stopped runs, and what a broker
// restarted mid-rollback continues.
#include <algorithm>
#include <set>

#include "broker/maintenance_run.h"
#include "broker/wedge_workflows.h"
#include "broker/workflow_steps.h"

namespace ledgerkeep::maintenance_internal {

// Brings the cluster back to serving whatever state it is in. Each action
// is idempotent; failures are collected, not fatal, so every step runs.
Status MaintenanceRun::Rollback(const std::string& why) {
  if (!state_.rolling_back) {
    state_.rolling_back = true;
    state_.failure = why;
    SaveState().IgnoreError();
  }
  ctx_.Step("rollback", "started", why);
  std::string problems;
  auto note = [&](const std::string& what, const Status& s) {
    if (!s.ok()) problems += (problems.empty() ? "" : "; ") + what + ": " + s.message();
  };
  // A lost node must not hold up the others: a command to it would wait
  // its whole deadline (minutes for a start) while the clients stay
  // stopped (fault suite: a replica partitioned during the wedge kept the
  // clients down for 2+ minutes, and left that replica wedged for good
  // after the heal). The reachable nodes are rolled back now; a lost
  // replica gets its start and unwedge queued with a long deadline, so it
  // receives them when it says hello again (README "When things fail").
  const std::set<std::string> lost = LostNodes();
  note("start replicas", Components(wire::Role::Replica, wire::NodeAction::Start, lost));
  nlohmann::json unwedge_report;
  note("unwedge", UnwedgeReplicas(ctx_, unwedge_report, /*check_first=*/false, lost));
  if (unwedge_report.contains("needs_unwedge")) report_["needs_unwedge"] = unwedge_report["needs_unwedge"];
  note("start clients", Components(wire::Role::Client, wire::NodeAction::Start, lost));
  note("post hook", Hook("post_hook"));
  if (state_.checkpoints_taken) {
    // Nothing of a rolled-back run is shipped: its checkpoints only hold disk.
    auto released = ctx_.RunCommand(TargetRole(wire::Role::Replica),
                                    CheckpointBody(wire::CheckpointAction::Release), 30'000);
    if (!released.ok()) {
      note("release checkpoints", released.status());
    } else {
      for (const auto& t : released->targets) {
        if (!ResultOk(*t)) note("release the checkpoint on " + t->node_id, Status::Aborted(ResultText(*t)));
      }
    }
  }
  auto replicas = NodesWithRole(wire::Role::Replica);
  const uint32_t redeliver_ms =
      static_cast<uint32_t>(params_.value("rollback_redeliver_s", int64_t{600}) * 1000);
  for (const auto& n : replicas.ok() ? *replicas : std::vector<std::string>{}) {
    if (lost.count(n) == 0) continue;
    wire::NodeManagementT m;
    m.action = wire::NodeAction::Start;
    wire::CommandBodyUnion start;
    start.Set(std::move(m));
    wire::CommandBodyUnion unwedge;
    unwedge.Set(wire::UnwedgeT{});
    Status s = ctx_.IssueCommand(TargetNode(n), std::move(start), redeliver_ms, "rollback-start-" + n).status();
    if (s.ok()) {
      s = ctx_.IssueCommand(TargetNode(n), std::move(unwedge), redeliver_ms, "rollback-unwedge-" + n).status();
    }
    if (s.ok()) {
      report_["queued_for_lost"].push_back(n);
      problems += (problems.empty() ? "" : "; ") + n + " is lost: its start and unwedge are queued for " +
                  std::to_string(redeliver_ms / 1000) +
                  " s and run when it reconnects (the broker retries its unwedge until it succeeds)";
    } else {
      note(n + " (lost): queueing its start and unwedge", s);
    }
  }
  for (const auto& n : lost) {
    if (replicas.ok() && std::find(replicas->begin(), replicas->end(), n) != replicas->end()) continue;
    problems += (problems.empty() ? "" : "; ") + n + " is lost: start its services when it is back (ledgerkeep node start --node " + n + ")";
  }
  report_["rolled_back"] = true;
  report_["rollback_problems"] = problems;
  ctx_.Step("rollback", problems.empty() ? "done" : "failed",
            problems.empty() ? "the cluster serves again" : problems);
  return Status::Aborted(why + (problems.empty() ? "; rolled back, the cluster serves again"
                                                 : "; rollback incomplete: " + problems));
}

}  // namespace ledgerkeep::maintenance_internal
