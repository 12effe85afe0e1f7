// The maintenance run's dry run (params dry_run; broker/maintenance_run.h):
// the plan, the named hooks and the estimates, with nothing changed.
#include <algorithm>

#include "broker/maintenance_run.h"
#include "broker/workflow_steps.h"
#include "common/config.h"

namespace ledgerkeep::maintenance_internal {

Status MaintenanceRun::DryRun() {
  report_["plan"] = nlohmann::json::array();
  for (const auto& row : Table(online_ ? MaintenanceMode::kOnline : MaintenanceMode::kOffline)) {
    report_["plan"].push_back(row.step.name);
  }
  for (const char* which : {"pre_hook", "post_hook"}) {
    LK_ASSIGN_OR_RETURN(const HookSpec* hook, NamedHook(which));
    if (hook != nullptr) report_["hooks"][which] = {{"name", hook->name}, {"command", hook->exec}};
  }
  wire::CommandBodyUnion body;
  body.Set(wire::GetBackupStatusT{});
  LK_ASSIGN_OR_RETURN(auto st, ctx_.RunCommand(TargetRole(wire::Role::Replica), std::move(body), 15'000));
  double slowest = 0;
  for (const auto& t : st.targets) {
    const auto* b = t->result ? t->result->detail.AsBackupStatus() : nullptr;
    if (b == nullptr || !b->last_ok || b->last_ok->duration_ms <= 0) {
      report_["estimate"][t->node_id] = online_ ? "no earlier snapshot: shipping is a full copy"
                                                : "no earlier snapshot: the final sync is a full copy";
      continue;
    }
    // The final sync sends about one incremental delta at the measured rate.
    const double rate = static_cast<double>(std::max<uint64_t>(b->last_ok->bytes_transferred, 1)) /
                        (static_cast<double>(b->last_ok->duration_ms) / 1000.0);
    const double secs = static_cast<double>(b->last_ok->bytes_transferred) / rate + 2.0;
    slowest = std::max(slowest, secs);
    report_["estimate"][t->node_id] = {{"delta_bytes", b->last_ok->bytes_transferred},
                                       {"rate_bytes_per_s", rate},
                                       {online_ ? "shipping_s" : "final_sync_s", secs}};
  }
  if (online_) {
    // The ledger pauses for the checkpoints (hard links) and the unwedge,
    // whatever the data; the clients are down for the wedge (the chain
    // reaching the stop point, at most two checkpoint windows of blocks)
    // and their archives; shipping follows while the ledger runs.
    Status space = CheckCheckpointSpace();
    if (!space.ok()) report_["refused"] = space.message();
    report_["estimated_pause_s"] = 1.0;
    report_["estimated_client_downtime_s"] = 5.0;
    report_["estimated_shipping_s"] = slowest;
  } else {
    // Fixed parts: wedge (up to two checkpoints of blocks), stops and starts.
    const double fixed_s = 15.0;
    report_["estimated_window_s"] = slowest + fixed_s;
  }
  report_["dry_run"] = true;
  return Status::OK();
}

}  // namespace ledgerkeep::maintenance_internal
