// Internal to broker/: the maintenance run's state and steps, included only
// by the maintenance_*.cc files. Nothing here is exported through
// broker/maintenance_workflow.h, whose MaintenanceWorkflow::Run drives one
// MaintenanceRun. The members are defined by concern:
//   maintenance_workflow.cc  Execute (the driver), the figures, the saved
//                            state, an incomplete end, the step tables
//   maintenance_runbook.cc   the shared steps, nodes and components,
//                            preflight, hooks, blocks, client archives, the
//                            offline final sync
//   maintenance_online.cc    the online steps: checkpoints, shipping
//   maintenance_rollback.cc  the rollback
//   maintenance_dry_run.cc   the dry run
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "broker/maintenance_workflow.h"
#include "common/codec.h"
#include "common/config.h"

namespace ledgerkeep::maintenance_internal {

class MaintenanceRun {
 public:
  MaintenanceRun(WorkflowContext& ctx, nlohmann::json& report)
      : ctx_(ctx),
        report_(report),
        params_(ctx.params()),
        online_(params_.value("mode", std::string("online")) != "offline") {}

  // A row of the step table: the declaration and the function that runs it.
  struct StepDef {
    MaintenanceStep step;
    Status (MaintenanceRun::*forward)();
  };
  static const std::vector<StepDef>& Table(MaintenanceMode mode);

  Status Execute();

 private:
  // maintenance_workflow.cc: the driver's helpers.
  void Figures();
  std::string StepDoneDetail(const std::string& name, int64_t ms);
  Status Incomplete(const std::string& why);
  Status SaveState();

  // maintenance_runbook.cc: the steps both modes share, and the offline ones.
  Status PreHook();
  Status PostHook();
  Status StopClients();
  Status Wedge();
  Status StopReplicas();
  Status FinalSyncAndClientBackups();
  Status StartReplicas();
  Status Unwedge();
  Status StartClients();
  Status Preflight();
  Status CheckBlocks();
  Status VerifyBlocksAdvance();

  // maintenance_runbook.cc: nodes and their components.
  Result<std::vector<std::string>> NodesWithRole(wire::Role role);
  Result<wire::CommandStatusT> OnAll(wire::Role role, wire::CommandBodyUnion body, uint32_t timeout_ms);
  Status Components(wire::Role role, wire::NodeAction action, const std::set<std::string>& skip = {});
  std::set<std::string> LostNodes();

  // maintenance_runbook.cc: hooks, client archives, the final sync.
  Result<const HookSpec*> NamedHook(const std::string& which) const;
  Status Hook(const std::string& which);
  Result<std::string> ArchiveName();
  Status CheckClientArchiveName();
  Status IssueClientBackups();
  Status WaitClientBackups();
  Status FinalSync();

  // maintenance_online.cc: the online steps.
  wire::CommandBodyUnion CheckpointBody(wire::CheckpointAction action, uint64_t stop_point = 0) const;
  Status CheckCheckpointSpace();
  Status TakeCheckpoints();
  Status ClientBackups();
  Status Ship();

  // maintenance_rollback.cc
  Status Rollback(const std::string& why);

  // maintenance_dry_run.cc
  Status DryRun();

  WorkflowContext& ctx_;
  nlohmann::json& report_;
  nlohmann::json params_;
  MaintenanceState state_;
  bool online_;
};

}  // namespace ledgerkeep::maintenance_internal
