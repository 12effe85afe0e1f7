// BackupMetrics: the ledgerkeep_backup_* metric families (docs/http-and-metrics.md),
// one series set per node. The broker feeds it every node's results from the
// event log; an agent feeds it its own node's. Both therefore export the
// same names, so one alert rule serves either scrape.
// Thread-safety: Observe*/Set* and the registry's Collect may run
// concurrently (prometheus-cpp metrics are atomic; the node map is locked).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Gauge;
class Counter;
class Histogram;
}  // namespace prometheus

namespace ledgerkeep {

struct BackupRunFigures {
  bool ok = false;
  int64_t finished_at_ms = 0;   // when it ended
  double duration_s = 0;
  uint64_t bytes_sent = 0;
  std::string failure_reason;   // snake_case status code name when !ok, e.g. "unavailable"
};

class BackupMetrics {
 public:
  explicit BackupMetrics(prometheus::Registry& registry);
  void ObserveRun(const std::string& node, const BackupRunFigures& run);
  // What a restarted process knows of the runs before it (an agent's
  // persisted state): the newest run's outcome and the end of the newest
  // successful one (0 = none), without counting a run. Creates the node's
  // run series, so call it only for a node that ran at least once.
  void SeedLastRun(const std::string& node, bool last_run_ok, int64_t last_success_ms);
  // The newest complete snapshot's time (ms) and how many there are, as last counted.
  void SetSnapshots(const std::string& node, uint64_t count, int64_t newest_ms);
  // Recomputes the newest-snapshot ages for `now_ms` (call before a scrape).
  void RefreshAges(int64_t now_ms);

 private:
  struct NodeSeries {
    prometheus::Gauge* last_success = nullptr;
    prometheus::Gauge* last_run_success = nullptr;
    prometheus::Histogram* duration = nullptr;
    prometheus::Counter* bytes = nullptr;
    prometheus::Counter* runs_ok = nullptr;
    prometheus::Counter* runs_failed = nullptr;
    prometheus::Gauge* snapshots = nullptr;
    prometheus::Gauge* newest_age = nullptr;
    int64_t newest_ms = 0;
    int64_t last_success_ms = 0;
  };
  // The series a run sets, created on the first run (or seed). mu_ held.
  NodeSeries& RunSeries(const std::string& node);

  std::mutex mu_;
  std::map<std::string, NodeSeries> nodes_;
  prometheus::Family<prometheus::Gauge>& last_success_;
  prometheus::Family<prometheus::Gauge>& last_run_success_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Counter>& bytes_;
  prometheus::Family<prometheus::Counter>& runs_;
  prometheus::Family<prometheus::Counter>& failures_;
  prometheus::Family<prometheus::Gauge>& snapshots_;
  prometheus::Family<prometheus::Gauge>& newest_age_;
};

// "Unavailable" -> "unavailable", "PermissionDenied" -> "permission_denied".
std::string SnakeCase(const std::string& camel);

}  // namespace ledgerkeep
