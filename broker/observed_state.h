// ObservedState: what the broker's HTTP side knows, folded from the durable
// event log (replayed from its start, then followed live by BrokerHttp), so
// it survives broker restarts with the log: each node's recent backup
// results, its wedge state as last reported, maintenance outcomes, command
// latencies, the log head. It also owns the metric families derived from
// them (docs/http-and-metrics.md).
// Thread-safety: every method may be called from any thread (one mutex;
// prometheus-cpp metrics are atomic).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/codec.h"
#include "http/backup_metrics.h"

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Gauge;
class Counter;
class Histogram;
}  // namespace prometheus

namespace ledgerkeep {

class ObservedState {
 public:
  static constexpr size_t kRecentBackups = 10;

  explicit ObservedState(prometheus::Registry& registry);

  // Folds one event; events must come in sequence order (a repeat or an
  // older one is ignored). Returns the run id when the event ends a
  // maintenance run: the caller looks up its record and calls
  // MaintenanceFinished (the event itself carries no figures).
  std::optional<uint64_t> Apply(const wire::Event& ev);
  // outcome: "succeeded" | "rolled_back" | "incomplete" | "failed".
  void MaintenanceFinished(uint64_t run_id, const std::string& outcome, const nlohmann::json& report);
  // The outcome of a finished run from its record.
  static std::string OutcomeOf(const std::string& state, const nlohmann::json& report);

  // Liveness gauges from a fresh node list (before each scrape).
  void SetNodes(const wire::NodeListT& list);
  // /api/nodes: the node list with each node's last reported wedge state.
  nlohmann::json NodesJson(const wire::NodeListT& list) const;
  // /api/backups: every node of `list` (last null when it never backed up),
  // then any node that has results but left the list.
  nlohmann::json BackupsJson(int64_t now_ms, const wire::NodeListT& list) const;
  uint64_t head_seq() const;
  uint64_t latest_maintenance_run() const;  // 0 = none seen
  void RefreshAges(int64_t now_ms) { backups_.RefreshAges(now_ms); }

 private:
  struct NodeView {
    std::deque<nlohmann::json> recent;  // newest first
    int64_t last_success_ms = 0;
    std::optional<nlohmann::json> wedge;
  };
  struct Issued {
    std::string kind;
    int64_t at_ms = 0;
  };
  void ApplyBackup(const std::string& node, const nlohmann::json& result, int64_t at_ms,
                   uint32_t snapshot_count);
  void ApplyWedge(const std::string& node, const wire::WedgeStatus& w, int64_t at_ms);

  mutable std::mutex mu_;
  uint64_t head_seq_ = 0;
  uint64_t latest_maintenance_ = 0;
  std::map<std::string, NodeView> nodes_;
  std::map<uint64_t, Issued> issued_;  // unfinished commands, bounded
  std::map<std::string, std::pair<prometheus::Gauge*, prometheus::Gauge*>> liveness_;  // up, heartbeat

  BackupMetrics backups_;
  prometheus::Family<prometheus::Gauge>& node_up_;
  prometheus::Family<prometheus::Gauge>& node_heartbeat_;
  prometheus::Family<prometheus::Gauge>& wedged_;
  prometheus::Family<prometheus::Counter>& maintenance_runs_;
  prometheus::Gauge& maintenance_pause_;
  prometheus::Gauge& maintenance_downtime_;
  prometheus::Gauge& maintenance_running_;
  prometheus::Family<prometheus::Counter>& commands_;
  prometheus::Family<prometheus::Histogram>& command_latency_;
  prometheus::Gauge& head_;
};

}  // namespace ledgerkeep
