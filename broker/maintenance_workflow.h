// The maintenance window as one command (DESIGN.md §7; runbook steps 3-19).
//
//   preflight -> pre hook -> stop clients -> wedge -> stop replicas ->
//   check block ids (offline, equal, no gap) -> client backups ->
//   final run_now on every replica -> start replicas -> unwedge ->
//   blocks advance -> start clients -> post hook -> report
//
// A failed preflight touches nothing. Any failure after the clients were
// stopped — or `ledgerkeep maintenance abort` — rolls the cluster back to
// serving (start replicas, unwedge, start clients, post hook) and reports
// why. An abort kills a running pre hook's process group at once and rolls
// back; an abort before the pre hook ends the run with nothing changed. The
// step reached is persisted; a broker restarted mid-run resumes forward from
// it (a final sync already issued is waited for, not repeated), or continues
// its rollback. It never leaves the ledger wedged or stopped.
// Params (JSON): dry_run, pre_hook, post_hook, archive (client archive
// name), wedge_timeout_s (120), stop_timeout_s (120), backup_timeout_s (3600).
#pragma once

#include "broker/workflow.h"

namespace ledgerkeep {

class MaintenanceWorkflow final : public Workflow {
 public:
  Status Run(WorkflowContext& ctx, nlohmann::json& report) override;
};

void RegisterMaintenanceWorkflow(WorkflowManager& manager);

}  // namespace ledgerkeep
