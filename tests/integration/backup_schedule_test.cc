// A backup schedule through a real cluster (broker, agents, ledgerd, CLI):
// it survives an agent restart and runs while the broker is down, and the
// scheduled run's result reaches the event log once the broker is back.
// A 1-minute schedule: this test waits for up to ~70 s of wall clock.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "backup/backup_manifest.h"
#include "common/clock.h"
#include "tests/support/cli_json.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Complete snapshot ids (with DONE) under <dest>/snapshots.
std::vector<std::string> CompleteSnapshots(const std::string& dest) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(dest + "/snapshots", ec)) return out;
  for (const auto& e : fs::directory_iterator(dest + "/snapshots", ec))
    if (fs::exists(e.path() / "DONE")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class BackupScheduleTest : public ::testing::Test {
 protected:
  RunResult Cli(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"--json"};
    full.insert(full.end(), args.begin(), args.end());
    return cluster_->RunCli(full, 60s);
  }
  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(BackupScheduleTest, ScheduleSurvivesAnAgentRestartAndRunsWhileTheBrokerIsDown) {
  TestClusterOptions o;
  o.replicas = 2;
  o.clients = 0;
  o.with_ledger = true;
  LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
  LK_ASSERT_OK(cluster_->StartAll());
  const std::vector<std::string> replicas = {"r1", "r2"};
  const std::string root = cluster_->dir() + "/backups";
  auto dest = [&](const std::string& node) { return root + "/" + node; };

  RunResult sched = Cli({"backup", "schedule", "--destination", root + "/{node}", "--frequency", "1m",
                         "--time-zone", "Europe/Berlin"});
  ASSERT_EQ(sched.exit_code, 0) << sched.Describe();
  // Scheduling claims the destination but does not run a backup.
  for (const auto& node : replicas) {
    EXPECT_TRUE(fs::exists(dest(node) + "/.ledgerkeep-owner")) << node;
    EXPECT_TRUE(CompleteSnapshots(dest(node)).empty()) << node;
  }

  // The schedule is the agent's own state: it survives a restart.
  LK_ASSERT_OK(cluster_->RestartAgent("r1"));
  LK_ASSERT_OK(cluster_->WaitNodeState("r1", "alive", 15s));
  auto status = Json(Cli({"backup", "status"}));
  int64_t next_run = 0;
  for (const auto& node : replicas) {
    SCOPED_TRACE(node);
    EXPECT_EQ(status[node].value("mode", ""), "rsync") << status.dump();
    EXPECT_NE(status[node].value("schedule", ""), "") << status.dump();
    EXPECT_EQ(status[node].value("destination", ""), dest(node)) << status.dump();
    const int64_t n = status[node].value("next_run_ms", int64_t{0});
    EXPECT_GT(n, Clock::System()->NowMs() - 1000) << status.dump();
    EXPECT_EQ(n % 60'000, 0) << "every minute runs on the minute: " << status.dump();
    next_run = std::max(next_run, n);
  }
  ASSERT_GT(next_run, 0);

  // If the next run is too close to take the broker down first, let it run
  // with the broker up, and use the one after it.
  std::map<std::string, size_t> before;
  if (next_run - Clock::System()->NowMs() < 8'000) {
    ASSERT_TRUE(WaitUntil(
        [&] {
          for (const auto& node : replicas)
            if (CompleteSnapshots(dest(node)).empty()) return false;
          return true;
        },
        std::chrono::milliseconds(next_run - Clock::System()->NowMs() + 30'000), 100ms))
        << "no scheduled run at " << next_run;
    next_run += 60'000;
  }
  for (const auto& node : replicas) before[node] = CompleteSnapshots(dest(node)).size();

  LK_ASSERT_OK(cluster_->KillBroker());
  std::map<std::string, std::string> scheduled_id;
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (const auto& node : replicas) {
          auto ids = CompleteSnapshots(dest(node));
          if (ids.size() <= before[node]) return false;
          scheduled_id[node] = ids.back();
        }
        return true;
      },
      std::chrono::milliseconds(next_run - Clock::System()->NowMs() + 30'000), 100ms))
      << "the scheduled run did not happen while the broker was down";
  for (const auto& node : replicas) {
    SCOPED_TRACE(node);
    // It ran at (not before) the minute boundary.
    const std::string manifest = ReadFile(dest(node) + "/snapshots/" + scheduled_id[node] + "/MANIFEST.json");
    auto m = SnapshotManifest::Parse(manifest);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_GE(m->started_at_ms, next_run);
    EXPECT_LT(m->started_at_ms, next_run + 30'000);
    EXPECT_TRUE(m->consistent);
    EXPECT_GT(m->last, 0u);
  }

  // Back up: the agents hand over the journaled result of the scheduled run.
  LK_ASSERT_OK(cluster_->StartBroker());
  LK_ASSERT_OK(cluster_->WaitAllAlive(15s));
  std::map<std::string, bool> seen;
  std::string last_out;
  EXPECT_TRUE(WaitUntil(
      [&] {
        RunResult ev = Cli({"events", "--from-start", "--filter", "backup"});
        last_out = ev.out;
        std::istringstream in(ev.out);
        for (std::string line; std::getline(in, line);) {
          auto j = nlohmann::json::parse(line, nullptr, false);
          if (j.is_discarded() || j.value("type", "") != "BackupResult") continue;
          const std::string node = j.value("node", "");
          if (scheduled_id.count(node) && j.value("snapshot_id", "") == scheduled_id[node] && j.value("ok", false) &&
              j.value("text", "").find("scheduled") != std::string::npos) {
            seen[node] = true;
          }
        }
        return seen.size() == replicas.size();
      },
      20s, 250ms))
      << "BackupResult events of the scheduled runs missing; events:\n" << last_out;
  auto after = Json(Cli({"backup", "status"}));
  for (const auto& node : replicas) {
    EXPECT_EQ(after[node]["last_snapshot"].value("snapshot_id", ""), scheduled_id[node]) << after.dump();
    EXPECT_TRUE(after[node]["last_snapshot"].value("scheduled", false)) << after.dump();
    EXPECT_GT(after[node].value("next_run_ms", int64_t{0}), next_run) << after.dump();
  }
}

}  // namespace
}  // namespace ledgerkeep::test
