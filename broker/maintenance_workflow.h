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
//
// The steps are a declared table (MaintenanceSteps(): order, and what a
// failure of each does); `ledgerkeep-broker --print-maintenance-steps`
// prints it, and the fault suite takes its list from there. The run's
// resume state is a MaintenanceState, read from and written to the
// workflow record's state object in one place.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/workflow.h"

namespace ledgerkeep {

// What a failure of a step does to the cluster.
enum class StepFailure {
  kNothingChanged,     // nothing was changed yet: the run just fails
  kRollBackIfAborted,  // the pre hook: killed by an abort, it may have done part of its work
  kRollBack,           // the cluster was changed: roll it back to serving
};

// One forward step of a maintenance run, as declared in the run's table.
struct MaintenanceStep {
  std::string_view name;  // as in events, the report and the persisted state
  StepFailure on_failure;
  bool hook;              // runs an operator hook ([[hook]] of the cluster config), if one is named
  std::string_view does;  // one line for the operator
};

// The forward steps in the order they run. An abort before a step rolls
// back when that step's on_failure is kRollBack, and otherwise ends the run
// with nothing changed.
const std::vector<MaintenanceStep>& MaintenanceSteps();
// The table as JSON (`ledgerkeep-broker --print-maintenance-steps`):
// {"steps": [{"index", "name", "on_failure": "nothing_changed" |
// "roll_back_if_aborted" | "roll_back", "hook", "does"}, ...]}.
nlohmann::json MaintenanceStepsJson();

// A maintenance run's resume state. It shares the workflow record's state
// object with the wedge helpers, whose keys ("stop_point", "unwedging")
// belong to them (wedge_workflows.h).
struct MaintenanceState {
  size_t step = 0;             // index into MaintenanceSteps() of the step reached
  bool rolling_back = false;   // a rollback started (a restart continues it)
  std::string failure;         // why it rolls back
  int64_t window_start_ms = 0; // broker clock when the clients were stopped (0 = not yet)
  int64_t window_end_ms = 0;   // ... and started again
  std::optional<uint64_t> common_block;  // the block every replica stopped at
  std::string archive;                   // the client archives' name, chosen once ("" = not yet)
  uint64_t client_backup_cmd = 0;        // the client backups, once issued
  uint64_t final_sync_cmd = 0;           // the replicas' final sync, once issued

  // Sets this state's keys in `state`, leaving the others as they are.
  void WriteTo(nlohmann::json& state) const;
  // Corruption naming the key when one has the wrong type; missing keys
  // keep their defaults.
  static Result<MaintenanceState> ReadFrom(const nlohmann::json& state);
};

// The client archives' name when the operator gives none:
// maintenance-<run>-<UTC time of now_ms>, e.g. maintenance-7-20260517T015900Z.
std::string DefaultArchiveName(uint64_t run_id, int64_t now_ms);

class MaintenanceWorkflow final : public Workflow {
 public:
  Status Run(WorkflowContext& ctx, nlohmann::json& report) override;
};

void RegisterMaintenanceWorkflow(WorkflowManager& manager);

}  // namespace ledgerkeep
