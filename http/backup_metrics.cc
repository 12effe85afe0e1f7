#include "http/backup_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cctype>

namespace ledgerkeep {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

std::string SnakeCase(const std::string& camel) {
  std::string out;
  for (char c : camel) {
    if (std::isupper(static_cast<unsigned char>(c))) {
      if (!out.empty()) out.push_back('_');
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    } else if (std::isalnum(static_cast<unsigned char>(c))) {
      out.push_back(c);
    } else {
      out.push_back('_');
    }
  }
  return out.empty() ? "unknown" : out;
}

BackupMetrics::BackupMetrics(prometheus::Registry& r)
    : last_success_(BuildGauge()
                        .Name("ledgerkeep_backup_last_success_timestamp_seconds")
                        .Help("End of the newest successful backup run (Unix seconds; 0 = none yet)")
                        .Register(r)),
      last_run_success_(BuildGauge()
                            .Name("ledgerkeep_backup_last_run_success")
                            .Help("1 if the newest backup run succeeded, 0 if it failed")
                            .Register(r)),
      duration_(BuildHistogram()
                    .Name("ledgerkeep_backup_duration_seconds")
                    .Help("Backup run durations")
                    .Register(r)),
      bytes_(BuildCounter()
                 .Name("ledgerkeep_backup_sent_bytes_total")
                 .Help("Bytes sent to backup destinations")
                 .Register(r)),
      runs_(BuildCounter()
                .Name("ledgerkeep_backup_runs_total")
                .Help("Backup runs by result (success, failure)")
                .Register(r)),
      failures_(BuildCounter()
                    .Name("ledgerkeep_backup_failures_total")
                    .Help("Failed backup runs by reason (the error's status code)")
                    .Register(r)),
      snapshots_(BuildGauge()
                     .Name("ledgerkeep_backup_snapshots")
                     .Help("Complete snapshots at the home destination, as last counted")
                     .Register(r)),
      newest_age_(BuildGauge()
                      .Name("ledgerkeep_backup_newest_snapshot_age_seconds")
                      .Help("Age of the newest complete snapshot (seconds)")
                      .Register(r)) {}

BackupMetrics::NodeSeries& BackupMetrics::RunSeries(const std::string& node) {
  NodeSeries& s = nodes_[node];
  if (s.last_run_success == nullptr) {
    // Created by the first run: a node that never ran has no last-run series
    // (an alert on "the newest run failed" must not fire for it).
    const prometheus::Labels l{{"node", node}};
    s.last_success = &last_success_.Add(l);
    s.last_run_success = &last_run_success_.Add(l);
    // 1 s .. 2 h: a small incremental run to a full copy of a large ledger.
    s.duration = &duration_.Add(l, prometheus::Histogram::BucketBoundaries{1, 5, 15, 30, 60, 120, 300, 600, 1800,
                                                                            3600, 7200});
    s.bytes = &bytes_.Add(l);
    s.runs_ok = &runs_.Add({{"node", node}, {"result", "success"}});
    s.runs_failed = &runs_.Add({{"node", node}, {"result", "failure"}});
  }
  return s;
}

void BackupMetrics::ObserveRun(const std::string& node, const BackupRunFigures& run) {
  std::lock_guard<std::mutex> lock(mu_);
  NodeSeries& s = RunSeries(node);
  s.duration->Observe(run.duration_s);
  s.bytes->Increment(static_cast<double>(run.bytes_sent));
  s.last_run_success->Set(run.ok ? 1 : 0);
  if (run.ok) {
    s.runs_ok->Increment();
    if (run.finished_at_ms > s.last_success_ms) {
      s.last_success_ms = run.finished_at_ms;
      s.last_success->Set(static_cast<double>(run.finished_at_ms) / 1000.0);
    }
  } else {
    s.runs_failed->Increment();
    failures_.Add({{"node", node}, {"reason", run.failure_reason.empty() ? "unknown" : run.failure_reason}})
        .Increment();
  }
}

void BackupMetrics::SeedLastRun(const std::string& node, bool last_run_ok, int64_t last_success_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  NodeSeries& s = RunSeries(node);
  s.last_run_success->Set(last_run_ok ? 1 : 0);
  if (last_success_ms > s.last_success_ms) {
    s.last_success_ms = last_success_ms;
    s.last_success->Set(static_cast<double>(last_success_ms) / 1000.0);
  }
}

void BackupMetrics::SetSnapshots(const std::string& node, uint64_t count, int64_t newest_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  NodeSeries& s = nodes_[node];
  if (s.snapshots == nullptr) {
    s.snapshots = &snapshots_.Add({{"node", node}});
    s.newest_age = &newest_age_.Add({{"node", node}});
  }
  s.snapshots->Set(static_cast<double>(count));
  s.newest_ms = newest_ms;
}

void BackupMetrics::RefreshAges(int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [node, s] : nodes_) {
    if (s.newest_age == nullptr || s.newest_ms <= 0) continue;
    s.newest_age->Set(static_cast<double>(now_ms - s.newest_ms) / 1000.0);
  }
}

}  // namespace ledgerkeep
