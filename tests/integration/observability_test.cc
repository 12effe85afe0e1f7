// The operators' tools against a real cluster (issue 16): a real Prometheus
// (Debian's) scrapes the broker and every agent, evaluates the alert rules,
// answers the dashboard's every query and, after a backup, the backup
// metric; headless Chromium loads the status page, shows the nodes and
// updates when a backup finishes. The checks themselves are the scripts
// tests/monitoring/prometheus_check.py and tests/status_page/page_check.py;
// a tool that is not installed makes its test *skipped*, never passed.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/support/child_process.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kSkipped = 77;

class ObservabilityTest : public ::testing::Test {
 protected:
  void StartCluster() {
    TestClusterOptions o;
    o.replicas = 2;
    o.clients = 1;
    o.with_ledger = true;
    o.ledger_blocks_per_sec = 100;
    o.ledger_payload_bytes = 512;
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
    LK_ASSERT_OK(cluster_->StartAll());
    ASSERT_TRUE(WaitUntil([&] { return cluster_->BrokerHttpToken().ok(); }, 10s));
    RunResult conf = cluster_->RunCli(
        {"backup", "configure", "--role", "replica", "--destination", cluster_->dir() + "/backups/{node}"}, 60s);
    ASSERT_EQ(conf.exit_code, 0) << conf.Describe();
  }
  std::string Cli() const { return std::string(LEDGERKEEP_BIN_DIR) + "/ledgerkeep"; }
  RunResult Script(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
    ProcessSpec spec;
    spec.argv = std::move(argv);
    spec.stdout_path = cluster_->dir() + "/script.out";
    spec.env.push_back({"PYTHONUNBUFFERED", "1"});
    return RunToCompletion(spec, timeout);
  }
  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(ObservabilityTest, PrometheusScrapesTheClusterEvaluatesTheRulesAndFindsTheBackupMetric) {
  StartCluster();
  RunResult backup = cluster_->RunCli({"backup", "run-now", "--node", "r1"}, 120s);
  ASSERT_EQ(backup.exit_code, 0) << backup.Describe();
  // And a failed one, so every dashboard panel (failures by reason too) has data.
  RunResult failed = cluster_->RunCli({"backup", "run-now", "--node", "r2", "--destination", "/proc/ledgerkeep-nowhere"}, 120s);
  ASSERT_NE(failed.exit_code, 0) << failed.Describe();
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   std::string(LEDGERKEEP_SOURCE_DIR) + "/tests/monitoring/prometheus_check.py",
                                   "--work-dir", cluster_->dir(),
                                   "--target", "ledgerkeep-broker=127.0.0.1:" + std::to_string(cluster_->BrokerHttpPort()),
                                   "--rules", std::string(LEDGERKEEP_SOURCE_DIR) + "/monitoring/alerts.yml",
                                   "--dashboard", std::string(LEDGERKEEP_SOURCE_DIR) + "/monitoring/grafana-dashboard.json",
                                   "--expect", "ledgerkeep_backup_last_success_timestamp_seconds{node=\"r1\"} > 0",
                                   "--expect", "ledgerkeep_node_up{node=\"r2\"} == 1",
                                   "--expect", "ledgerkeep_backup_failures_total{node=\"r2\"} > 0",
                                   "--expect", "ledgerkeep_ledger_blocks_per_second{node=\"r2\"} > 0",
                                   "--timeout", "40"};
  for (const auto& node : cluster_->AgentNodes()) {
    argv.push_back("--target");
    argv.push_back("ledgerkeep-agent=127.0.0.1:" + std::to_string(cluster_->AgentHttpPort(node)));
  }
  RunResult r = Script(argv, 180s);
  if (r.exit_code == kSkipped) GTEST_SKIP() << "Prometheus is not installed: " << r.out;
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
}

TEST_F(ObservabilityTest, TheStatusPageInHeadlessChromiumShowsTheNodesAndUpdatesWhenABackupFinishes) {
  StartCluster();
  const std::string trigger =
      nlohmann::json({Cli(), "--config", cluster_->config_path(), "backup", "run-now", "--node", "r1"}).dump();
  RunResult r = Script({"/usr/bin/python3", std::string(LEDGERKEEP_SOURCE_DIR) + "/tests/status_page/page_check.py",
                        "--url", "http://127.0.0.1:" + std::to_string(cluster_->BrokerHttpPort()) + "/",
                        "--token", *cluster_->BrokerHttpToken(),
                        "--expect-node", "r1", "--expect-node", "r2", "--expect-node", "c1",
                        "--trigger-cmd", trigger, "--expect-backup-node", "r1",
                        "--trigger-timeout-s", "90",
                        "--screenshot", cluster_->dir() + "/status-page.png"},
                       240s);
  if (r.exit_code == kSkipped) GTEST_SKIP() << "Chromium or chromedriver cannot run here: " << r.out;
  EXPECT_EQ(r.exit_code, 0) << r.Describe();
}

}  // namespace
}  // namespace ledgerkeep::test
