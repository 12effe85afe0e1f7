// Backup configuration through a real cluster (broker, agents, ledgerd, CLI):
// one destination per node (refused by the broker, and by the agent when
// the broker cannot see it), one backup mode per node, and checkpoint mode
// (keep N, skipped when the disk is low).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "ledger/ledger_store.h"
#include "tests/support/status_macros.h"
#include "tests/support/cli_json.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Checkpoint directories (named like snapshot ids) in `dir`.
std::vector<std::string> CheckpointDirs(const std::string& dir) {
  static const std::regex kId(R"(^\d{8}T\d{6}\.\d{3}Z$)");
  std::vector<std::string> out;
  for (const auto& n : Entries(dir))
    if (std::regex_match(n, kId) && fs::is_directory(dir + "/" + n)) out.push_back(n);
  return out;
}

class BackupConfigTest : public ::testing::Test {
 protected:
  void StartCluster(int replicas) {
    TestClusterOptions o;
    o.replicas = replicas;
    o.clients = 0;
    o.with_ledger = true;
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
    LK_ASSERT_OK(cluster_->StartAll());
  }
  RunResult Cli(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"--json"};
    full.insert(full.end(), args.begin(), args.end());
    return cluster_->RunCli(full, 60s);
  }
  std::string Owner(const std::string& dir) { return ReadFile(dir + "/.ledgerkeep-owner"); }
  std::string OwnerLine(const std::string& node) { return cluster_->Config().cluster_id + " " + node + "\n"; }
  std::string DefaultCheckpointDir(const std::string& node) {
    return fs::path(cluster_->LedgerDb(node)).parent_path().string() + "/checkpoints";
  }
  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(BackupConfigTest, TwoNodesOneDestinationIsRefusedNamingBoth) {
  StartCluster(2);
  const std::string same = cluster_->dir() + "/same";
  // Without --json: the operator reads stderr.
  RunResult shared = cluster_->RunCli(
      {"backup", "schedule", "--destination", same, "--frequency", "hourly", "--role", "replica"}, 60s);
  EXPECT_EQ(shared.exit_code, 2) << shared.Describe();
  EXPECT_NE(shared.err.find("r1"), std::string::npos) << shared.Describe();
  EXPECT_NE(shared.err.find("r2"), std::string::npos) << shared.Describe();
  EXPECT_NE(shared.err.find("{node}"), std::string::npos) << "no hint how to fix it: " << shared.Describe();
  EXPECT_FALSE(fs::exists(same)) << "a refused command touched the directory";
  auto status = Json(Cli({"backup", "status"}));
  for (const char* node : {"r1", "r2"}) {
    EXPECT_EQ(status[node].value("schedule", "?"), "") << status.dump();
    EXPECT_EQ(status[node].value("destination", "?"), "") << status.dump();
  }

  // r1 takes d1; r2 may not have it, however it is spelled.
  const std::string d1 = cluster_->dir() + "/d1";
  RunResult mine = Cli({"backup", "configure", "--node", "r1", "--destination", d1});
  ASSERT_EQ(mine.exit_code, 0) << mine.Describe();
  EXPECT_EQ(Owner(d1), OwnerLine("r1"));
  for (const std::string& spelling : {d1, d1 + "/", cluster_->dir() + "/x/../d1"}) {
    RunResult theirs = cluster_->RunCli({"backup", "configure", "--node", "r2", "--destination", spelling}, 60s);
    EXPECT_EQ(theirs.exit_code, 2) << spelling << ": " << theirs.Describe();
    EXPECT_NE(theirs.err.find("r1"), std::string::npos) << spelling << ": " << theirs.Describe();
  }
  // A path the broker cannot recognise (a symlink to d1) reaches r2's agent,
  // which refuses it from the ownership marker, naming r1.
  const std::string alias = cluster_->dir() + "/alias";
  fs::create_directory_symlink(d1, alias);
  RunResult via_alias = Cli({"backup", "configure", "--node", "r2", "--destination", alias});
  EXPECT_EQ(via_alias.exit_code, 1) << via_alias.Describe();
  EXPECT_NE(Json(via_alias)["r2"].value("message", "").find("r1"), std::string::npos) << via_alias.Describe();
  // The broker remembers who owns d1 across its own restart.
  LK_ASSERT_OK(cluster_->KillBroker());
  LK_ASSERT_OK(cluster_->StartBroker());
  LK_ASSERT_OK(cluster_->WaitAllAlive(15s));
  RunResult after_restart = cluster_->RunCli({"backup", "configure", "--node", "r2", "--destination", d1}, 60s);
  EXPECT_EQ(after_restart.exit_code, 2) << after_restart.Describe();
  EXPECT_NE(after_restart.err.find("r1"), std::string::npos) << after_restart.Describe();

  // Nothing of r2 reached d1: still r1's marker and nothing else.
  EXPECT_EQ(Owner(d1), OwnerLine("r1"));
  EXPECT_EQ(Entries(d1), std::vector<std::string>{".ledgerkeep-owner"});
  auto after = Json(Cli({"backup", "status", "--node", "r2"}));
  EXPECT_EQ(after["r2"].value("destination", "?"), "") << after.dump();
  // And r1 still backs up there.
  RunResult run = Cli({"backup", "run-now", "--node", "r1"});
  EXPECT_EQ(run.exit_code, 0) << run.Describe();
}

TEST_F(BackupConfigTest, BothModesOnOneNodeAreRefusedWithHowToSwitch) {
  StartCluster(1);
  const std::string rsync_dest = cluster_->dir() + "/backups/{node}";
  RunResult rsync = Cli({"backup", "schedule", "--node", "r1", "--destination", rsync_dest, "--frequency", "hourly"});
  ASSERT_EQ(rsync.exit_code, 0) << rsync.Describe();
  EXPECT_EQ(Json(rsync)["r1"].value("mode", ""), "rsync");

  RunResult both = Cli({"backup", "schedule", "--node", "r1", "--mode", "checkpoint", "--frequency", "hourly"});
  EXPECT_EQ(both.exit_code, 1) << both.Describe();
  const std::string why = Json(both)["r1"].value("message", "");
  EXPECT_NE(why.find("one backup mode"), std::string::npos) << why;
  EXPECT_NE(why.find("ledgerkeep backup unschedule --node r1"), std::string::npos) << why;
  auto status = Json(Cli({"backup", "status", "--node", "r1"}));
  EXPECT_EQ(status["r1"].value("mode", ""), "rsync") << status.dump();
  EXPECT_NE(status["r1"].value("schedule", ""), "") << "the refused command dropped the schedule: " << status.dump();

  RunResult off = Cli({"backup", "unschedule", "--node", "r1"});
  ASSERT_EQ(off.exit_code, 0) << off.Describe();
  RunResult checkpoint = Cli({"backup", "schedule", "--node", "r1", "--mode", "checkpoint", "--frequency", "hourly",
                              "--min-free-mb", "1"});
  ASSERT_EQ(checkpoint.exit_code, 0) << checkpoint.Describe();
  EXPECT_EQ(Json(checkpoint)["r1"].value("mode", ""), "checkpoint") << checkpoint.out;

  // And the other way round: now rsync mode (and a destination) are refused.
  RunResult back = Cli({"backup", "schedule", "--node", "r1", "--destination", rsync_dest, "--frequency", "hourly"});
  EXPECT_EQ(back.exit_code, 1) << back.Describe();
  EXPECT_NE(Json(back)["r1"].value("message", "").find("backup unschedule --node r1"), std::string::npos)
      << back.Describe();
  RunResult configure = Cli({"backup", "configure", "--node", "r1", "--destination", rsync_dest});
  EXPECT_EQ(configure.exit_code, 1) << configure.Describe();

  // Checkpoint mode without --destination writes local checkpoints to the
  // default <db>/../checkpoints (README), not into the rsync destination the
  // node used before.
  RunResult run = Cli({"backup", "run-now", "--node", "r1"});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  const std::string id = Json(run)["r1"].value("snapshot_id", "");
  EXPECT_EQ(Json(run)["r1"].value("destination", ""), DefaultCheckpointDir("r1")) << run.out;
  EXPECT_EQ(CheckpointDirs(DefaultCheckpointDir("r1")), std::vector<std::string>{id});
  EXPECT_EQ(Entries(cluster_->dir() + "/backups/r1"), std::vector<std::string>{".ledgerkeep-owner"})
      << "checkpoint mode wrote into the old rsync destination";
}

TEST_F(BackupConfigTest, CheckpointModeKeepsTwoAndSkipsWhenDiskIsLow) {
  StartCluster(1);
  RunResult sched = Cli({"backup", "schedule", "--node", "r1", "--mode", "checkpoint", "--frequency", "hourly",
                         "--min-free-mb", "1"});
  ASSERT_EQ(sched.exit_code, 0) << sched.Describe();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    RunResult run = Cli({"backup", "run-now", "--node", "r1"});
    ASSERT_EQ(run.exit_code, 0) << run.Describe();
    auto j = Json(run);
    EXPECT_TRUE(j["r1"].value("consistent", false)) << run.out;
    ids.push_back(j["r1"].value("snapshot_id", ""));
  }
  const std::string dir = DefaultCheckpointDir("r1");
  ASSERT_EQ(CheckpointDirs(dir), (std::vector<std::string>{ids[1], ids[2]})) << "default keep is 2";
  uint64_t previous_last = 0;
  for (const auto& id : {ids[1], ids[2]}) {
    auto store = ledger::LedgerStore::OpenReadOnly(dir + "/" + id);
    ASSERT_TRUE(store.ok()) << id << ": " << store.status().ToString();
    const uint64_t last = (*store)->GetBlockIds().last;
    EXPECT_GT(last, previous_last) << id;
    previous_last = last;
  }

  // More free space required than the disk has: skipped, NoSpace, a warning
  // event, and the existing checkpoints are untouched.
  RunResult resched = Cli({"backup", "schedule", "--node", "r1", "--mode", "checkpoint", "--frequency", "hourly",
                           "--min-free-mb", "100000000"});
  ASSERT_EQ(resched.exit_code, 0) << resched.Describe();
  RunResult low = Cli({"backup", "run-now", "--node", "r1"});
  EXPECT_EQ(low.exit_code, 1) << low.Describe();
  EXPECT_NE(Json(low)["r1"].value("error", "").find("NoSpace"), std::string::npos) << low.out;
  EXPECT_EQ(Json(low)["r1"].value("error_code", ""), "NoSpace") << low.out;  // the code, on the wire
  EXPECT_EQ(CheckpointDirs(dir), (std::vector<std::string>{ids[1], ids[2]}));
  bool warned = false;
  ASSERT_TRUE(WaitUntil(
      [&] {
        RunResult ev = Cli({"events", "--from-start", "--filter", "note.r1"});
        warned = ev.out.find("checkpoint skipped") != std::string::npos;
        return warned;
      },
      10s, 200ms))
      << "no warning event for the skipped checkpoint";
  auto status = Json(Cli({"backup", "status", "--node", "r1"}));
  EXPECT_FALSE(status["r1"]["last_run"].value("ok", true)) << status.dump();
  EXPECT_EQ(status["r1"]["last_snapshot"].value("snapshot_id", ""), ids[2]) << status.dump();
}

TEST_F(BackupConfigTest, CheckpointRetentionDeletesOnlyCheckpoints) {
  StartCluster(1);
  // An operator's directory that happens to hold something else too.
  const std::string dir = cluster_->dir() + "/ckpt/r1";
  fs::create_directories(dir + "/00-operator-notes");
  std::ofstream(dir + "/00-operator-notes/README") << "do not delete\n";
  RunResult sched = Cli({"backup", "schedule", "--node", "r1", "--mode", "checkpoint", "--frequency", "hourly",
                         "--destination", cluster_->dir() + "/ckpt/{node}", "--keep", "2", "--min-free-mb", "1"});
  ASSERT_EQ(sched.exit_code, 0) << sched.Describe();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    RunResult run = Cli({"backup", "run-now", "--node", "r1"});
    ASSERT_EQ(run.exit_code, 0) << run.Describe();
    ids.push_back(Json(run)["r1"].value("snapshot_id", ""));
  }
  EXPECT_TRUE(fs::exists(dir + "/00-operator-notes/README")) << "checkpoint retention deleted a foreign directory";
  EXPECT_EQ(CheckpointDirs(dir), (std::vector<std::string>{ids[1], ids[2]}));
}

}  // namespace
}  // namespace ledgerkeep::test
