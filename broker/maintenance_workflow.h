// The maintenance window as one command (DESIGN.md §7; runbook steps 3-19).
//
// Online (the default, issue 15): the ledger pauses only for the wedge and a
// RocksDB checkpoint on every replica; the copying happens after it runs again.
//   preflight (+ free space for a checkpoint) -> pre hook -> stop clients ->
//   wedge -> checkpoint on every replica at the stop point, cross-checked
//   (last block id and the stop block's digest equal everywhere) -> unwedge
//   -> blocks advance -> client backups -> start clients -> post hook ->
//   ship every checkpoint as its snapshot of the run's set, in parallel
// The pause (first replica at the stop point .. last one past it) is the
// report's pause_s. Shipping never rolls back: a failed shipment keeps its
// checkpoint and is issued again (agent or broker restarted, destination
// down) until every snapshot is complete or ship_timeout_s passes; an abort
// while shipping ends the run incomplete with the checkpoints kept.
//
// Offline (params mode "offline"; the runbook as written):
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
// Params (JSON): mode ("online" | "offline"), dry_run, pre_hook, post_hook,
// archive (client archive name), wedge_timeout_s (120), stop_timeout_s
// (120), backup_timeout_s (3600), ship_timeout_s (online: how long shipping
// may retry, 86400), min_free_bytes (online: free space a replica needs for
// its checkpoint; 0 = its DB's size).
//
// The steps are a declared table (MaintenanceSteps(): order, and what a
// failure of each does); `ledgerkeep-broker --print-maintenance-steps`
// prints it, and the fault suite takes its list from there. The run's
// resume state is a MaintenanceState, read from and written to the
// workflow record's state object in one place.
#pragma once

#include <cstdint>
#include <map>
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
  kIncomplete,         // the cluster serves again: the run ends incomplete, nothing rolled back
};

enum class MaintenanceMode { kOnline, kOffline };

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
const std::vector<MaintenanceStep>& MaintenanceSteps(MaintenanceMode mode);
// The table as JSON (`ledgerkeep-broker --print-maintenance-steps [--offline]`):
// {"mode": "online" | "offline", "steps": [{"index", "name", "on_failure":
// "nothing_changed" | "roll_back_if_aborted" | "roll_back" | "incomplete",
// "hook", "does"}, ...]}.
nlohmann::json MaintenanceStepsJson(MaintenanceMode mode);

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
  // Online mode.
  bool checkpoints_taken = false;        // the take was issued (a rollback releases them)
  int64_t pause_start_ms = 0;            // first replica at the stop point (its clock)
  int64_t pause_end_ms = 0;              // every replica past it (broker clock)
  int64_t ship_start_ms = 0;             // shipping began (broker clock)
  int64_t ship_end_ms = 0;               // every snapshot complete
  std::map<std::string, uint64_t> ship_cmds;      // node -> the shipment in flight
  std::map<std::string, std::string> shipped;     // node -> its complete snapshot

  // Sets this state's keys in `state`, leaving the others as they are.
  void WriteTo(nlohmann::json& state) const;
  // Corruption naming the key when one has the wrong type; missing keys
  // keep their defaults.
  static Result<MaintenanceState> ReadFrom(const nlohmann::json& state);
};

// One replica's maintenance checkpoint, as the cross-check sees it.
struct ReplicaCheckpoint {
  std::string node;
  uint64_t last_reachable = 0;
  uint64_t last = 0;
  std::string stop_digest;  // hex digest of its block at the stop point
};

// The online window's cross-check: OK when every checkpoint ends at
// `stop_point` (last reachable and last) and every stop block's digest is
// the same. Otherwise FailedPrecondition naming each replica that is not at
// the stop point, and each whose digest differs from the most common one.
Status CrossCheckCheckpoints(uint64_t stop_point, const std::vector<ReplicaCheckpoint>& checkpoints);

// The client archives' name when the operator gives none:
// maintenance-<run>-<UTC time of now_ms>, e.g. maintenance-7-20260517T015900Z.
std::string DefaultArchiveName(uint64_t run_id, int64_t now_ms);

class MaintenanceWorkflow final : public Workflow {
 public:
  Status Run(WorkflowContext& ctx, nlohmann::json& report) override;
};

void RegisterMaintenanceWorkflow(WorkflowManager& manager);

}  // namespace ledgerkeep
