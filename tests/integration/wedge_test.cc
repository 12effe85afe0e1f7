// The runbook's wedge, stop/start and block-id checks against 4 real
// replicas (ledgerd under real agents) and a real broker.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ledger/control_client.h"
#include "ledger/ledger_store.h"
#include "tests/support/child_process.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

using namespace std::chrono_literals;

class WedgeTest : public ::testing::Test {
 protected:
  void StartCluster(int replicas, int blocks_per_sec = 300, int st_blocks_per_sec = 2000) {
    TestClusterOptions o;
    o.replicas = replicas;
    o.clients = 1;
    o.with_ledger = true;
    o.ledger_blocks_per_sec = blocks_per_sec;
    o.ledger_st_blocks_per_sec = st_blocks_per_sec;
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
    LK_ASSERT_OK(cluster_->StartAll());
  }
  nlohmann::json Cli(const std::vector<std::string>& args, int want_exit = 0) {
    std::vector<std::string> full = {"--json"};
    full.insert(full.end(), args.begin(), args.end());
    RunResult r = cluster_->RunCli(full, 120s);
    EXPECT_EQ(r.exit_code, want_exit) << r.Describe();
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.Describe();
    return j;
  }
  std::map<std::string, uint64_t> LastBlocks() {
    auto j = Cli({"blocks"});
    std::map<std::string, uint64_t> out;
    for (auto& [node, v] : j["replicas"].items()) out[node] = v.value("lastBlockID", uint64_t{0});
    return out;
  }
  // The replica's ledgerd status straight from its control socket (what the
  // agent sees); nullopt while ledgerd is down or starting.
  std::optional<ledger::LedgerStatus> Ledger(const std::string& node) {
    auto& c = control_[node];
    if (!c) {
      ledger::ControlClientOptions o;
      o.timeout = 1000ms;
      c = std::make_unique<ledger::LedgerControlClient>(cluster_->LedgerControl(node), o);
    }
    auto st = c->GetStatus();
    if (!st.ok()) return std::nullopt;
    return *st;
  }
  uint64_t LastReachable(const std::string& node) {
    auto st = Ledger(node);
    return st ? st->last_reachable : 0;
  }
  // `ledgerkeep-db <args>` (the real offline tool).
  RunResult DbTool(const std::vector<std::string>& args) {
    ProcessSpec spec;
    spec.argv = {BinPath("ledgerkeep-db")};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    const std::string base = cluster_->dir() + "/logs/db-tool-" + std::to_string(++db_tool_runs_);
    spec.stdout_path = base + ".out";
    spec.stderr_path = base + ".err";
    return RunToCompletion(std::move(spec), 60s);
  }
  std::unique_ptr<TestCluster> cluster_;
  std::map<std::string, std::unique_ptr<ledger::LedgerControlClient>> control_;
  int db_tool_runs_ = 0;
};

TEST_F(WedgeTest, AllReplicasStopAtOneCheckpointSurviveStopStartAndResumeAfterUnwedge) {
  StartCluster(4);
  ASSERT_TRUE(WaitUntil([&] { return LastBlocks()["r1"] > 20; }, 20s));
  auto wedge = Cli({"wedge", "stop", "--timeout-s", "60"});
  const uint64_t stop = wedge["report"]["stop_point"].get<uint64_t>();
  EXPECT_EQ(stop % 150, 0u);
  EXPECT_TRUE(wedge["ok"].get<bool>()) << wedge.dump();
  // DESIGN.md §5: the next-but-one checkpoint above the highest block the
  // broker read from the replicas (not one window lower or higher).
  ASSERT_EQ(wedge["report"]["block_ids"].size(), 4u) << wedge.dump();
  uint64_t highest = 0;
  for (auto& [node, last] : wedge["report"]["block_ids"].items()) highest = std::max(highest, last.get<uint64_t>());
  EXPECT_EQ(stop, (highest + 300) - ((highest + 300) % 150)) << "highest block " << highest << ": " << wedge.dump();
  auto status = Cli({"wedge", "status"});
  for (const char* r : {"r1", "r2", "r3", "r4"}) EXPECT_TRUE(status[r].get<bool>()) << status.dump();
  for (auto& [node, last] : LastBlocks()) EXPECT_EQ(last, stop) << node;

  Cli({"node", "stop", "--role", "replica"});
  auto offline = Cli({"blocks"});
  EXPECT_TRUE(offline["agree"].get<bool>()) << offline.dump();
  for (auto& [node, v] : offline["replicas"].items()) {
    EXPECT_FALSE(v["running"].get<bool>()) << node;
    EXPECT_EQ(v["lastBlockID"].get<uint64_t>(), stop) << node;
    EXPECT_EQ(v["lastReachableBlockID"].get<uint64_t>(), stop) << node;
  }
  Cli({"node", "start", "--role", "replica"});
  Cli({"unwedge"});
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto b = LastBlocks();
        for (auto& [n, last] : b)
          if (last <= stop + 5) return false;
        return b.size() == 4;
      },
      30s))
      << "block ids did not advance on every replica after unwedge";
}

// A replica whose ledgerd was down catches up by state transfer: while it
// runs, LastBlockID (top of st_chain) is above LastReachableBlockID; then
// they meet, and once the cluster is wedged and stopped its DB is
// block-for-block the same as its peers' (real ledgerkeep-db compareTo).
TEST_F(WedgeTest, ReplicaStoppedForAWhileCatchesUpByStateTransferAndMatchesItsPeers) {
  // State transfer only twice as fast as production: the gap stays
  // observable for seconds, and it takes several rounds to catch up.
  StartCluster(3, /*blocks_per_sec=*/200, /*st_blocks_per_sec=*/400);
  ASSERT_TRUE(WaitUntil([&] { return LastReachable("r2") > 20; }, 20s, 50ms)) << "r2 does not produce blocks";

  Cli({"node", "stop", "--node", "r2"});
  auto offline = Cli({"blocks"});
  ASSERT_FALSE(offline["replicas"]["r2"].value("running", true)) << offline.dump();
  const uint64_t r2_stopped_at = offline["replicas"]["r2"].value("lastBlockID", uint64_t{0});
  ASSERT_GT(r2_stopped_at, 0u) << offline.dump();
  ASSERT_FALSE(Ledger("r2").has_value()) << "r2's ledgerd still answers after node stop";

  // The others run ahead by several hundred blocks, r2 stays where it was.
  ASSERT_TRUE(WaitUntil([&] { return LastReachable("r1") >= r2_stopped_at + 500; }, 30s, 50ms));
  offline = Cli({"blocks"});
  EXPECT_EQ(offline["replicas"]["r2"].value("lastBlockID", uint64_t{0}), r2_stopped_at) << offline.dump();
  EXPECT_FALSE(offline["agree"].get<bool>()) << offline.dump();

  Cli({"node", "start", "--node", "r2"});
  const uint64_t peers_at_restart = LastReachable("r1");
  ASSERT_GE(peers_at_restart, r2_stopped_at + 500);

  // Catch-up: the gap shows (last > last reachable), then closes.
  uint64_t widest_gap = 0;
  ledger::LedgerStatus gap_seen;
  ledger::LedgerStatus r2_now;
  uint64_t r1_now = 0;
  const bool caught_up = WaitUntil(
      [&] {
        auto st = Ledger("r2");
        if (!st) return false;
        r2_now = *st;
        if (st->last > st->last_reachable && st->last - st->last_reachable > widest_gap) {
          widest_gap = st->last - st->last_reachable;
          gap_seen = *st;
        }
        if (widest_gap == 0 || st->last != st->last_reachable || st->state_transfer_active) return false;
        if (st->last_reachable < peers_at_restart) return false;
        r1_now = LastReachable("r1");
        // Caught up: producing at the clock like its peers (within one
        // state-transfer threshold of r1).
        return r1_now > 0 && st->last_reachable + 150 >= r1_now;
      },
      45s, 20ms);
  ASSERT_GT(widest_gap, 0u) << "never saw LastBlockID > LastReachableBlockID on r2 during catch-up; r2 now: last "
                            << r2_now.last << " reachable " << r2_now.last_reachable;
  EXPECT_TRUE(gap_seen.state_transfer_active) << "gap without state_transfer_active";
  EXPECT_GT(gap_seen.last, r2_stopped_at + 400) << "state transfer did not fetch the top first";
  ASSERT_TRUE(caught_up) << "r2 did not catch up: last " << r2_now.last << " reachable " << r2_now.last_reachable
                         << " st " << r2_now.state_transfer_active << "; r1 " << r1_now << "; widest gap "
                         << widest_gap;

  // Quiesce, stop, and compare the DBs offline.
  auto wedge = Cli({"wedge", "stop", "--timeout-s", "30"});
  ASSERT_TRUE(wedge.value("ok", false)) << wedge.dump();
  const uint64_t stop = wedge["report"]["stop_point"].get<uint64_t>();
  Cli({"node", "stop", "--role", "replica"});
  auto stopped = Cli({"blocks"});
  ASSERT_TRUE(stopped["agree"].get<bool>()) << stopped.dump();

  for (const char* peer : {"r1", "r3"}) {
    RunResult cmp = DbTool({cluster_->LedgerDb("r2"), "compareTo", cluster_->LedgerDb(peer)});
    EXPECT_EQ(cmp.exit_code, 0) << "r2 vs " << peer << ": " << cmp.Describe();
    auto j = nlohmann::json::parse(cmp.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << cmp.Describe();
    EXPECT_EQ(j.value("result", ""), "match") << cmp.out;
    EXPECT_TRUE(j["firstMismatch"].is_null()) << cmp.out;
    EXPECT_EQ(j.value("commonTo", ""), std::to_string(stop)) << cmp.out;
  }
  RunResult verify = DbTool({cluster_->LedgerDb("r2"), "verifyChain"});
  EXPECT_EQ(verify.exit_code, 0) << verify.Describe();
  RunResult st_top = DbTool({cluster_->LedgerDb("r2"), "getLastStateTransferBlockID"});
  EXPECT_EQ(st_top.exit_code, 0) << st_top.Describe();

  LK_ASSERT_OK_AND_ASSIGN(auto r2db, ledger::LedgerStore::OpenReadOnly(cluster_->LedgerDb("r2")));
  LK_ASSERT_OK_AND_ASSIGN(auto r1db, ledger::LedgerStore::OpenReadOnly(cluster_->LedgerDb("r1")));
  EXPECT_EQ(r2db->GetBlockIds(), r1db->GetBlockIds());
  EXPECT_EQ(r2db->GetBlockIds().last_state_transfer, 0u) << "st_chain not empty after catch-up";
  EXPECT_EQ(r2db->FirstStateTransferBlockId(), 0u);
  LK_ASSERT_OK_AND_ASSIGN(auto report, r2db->CompareTo(*r1db));
  EXPECT_FALSE(report.first_mismatch.has_value()) << "first mismatch at block " << *report.first_mismatch;
  EXPECT_EQ(report.to, stop);
  EXPECT_LE(report.from, r2_stopped_at) << "the compared range does not cover the transferred blocks";
  LK_ASSERT_OK_AND_ASSIGN(auto chain, r2db->VerifyChain(0, 0));
  EXPECT_TRUE(chain.ok()) << "r2 chain broken at " << chain.first_bad_block.value_or(0) << ": " << chain.error;
  EXPECT_EQ(chain.to, stop);
}

// A replica whose ledgerd is down cannot wedge: the workflow gives up after
// --timeout-s, naming it (and only it) and why; wedge status agrees.
TEST_F(WedgeTest, WedgeWithOneReplicaDownReportsItAndStatusIsFalseForIt) {
  StartCluster(3);
  ASSERT_TRUE(WaitUntil([&] { return LastReachable("r1") > 20; }, 20s, 50ms));
  Cli({"node", "stop", "--node", "r3"});

  auto wedge = Cli({"wedge", "stop", "--timeout-s", "8"}, /*want_exit=*/1);
  EXPECT_FALSE(wedge.value("ok", true)) << wedge.dump();
  // (not const: a missing key must fail the test, not trip a json assert)
  nlohmann::json report = wedge.value("report", nlohmann::json::object());
  // The healthy replicas must get a stop point they have not passed yet,
  // however long the down one takes to answer.
  ASSERT_FALSE(report.contains("refused"))
      << "healthy replicas refused the stop point (it was already stale when sent): " << wedge.dump();
  EXPECT_EQ(report["not_wedged"], nlohmann::json::array({"r3"})) << wedge.dump();
  const std::string error = wedge.value("error", "");
  EXPECT_NE(error.find("r3"), std::string::npos) << error;
  EXPECT_EQ(error.find("r1"), std::string::npos) << error;
  EXPECT_EQ(error.find("r2"), std::string::npos) << error;
  EXPECT_NE(report["why"].value("r3", "").find("not running"), std::string::npos)
      << "the report should say why r3 is not wedged: " << wedge.dump();
  ASSERT_TRUE(report.contains("stop_point")) << wedge.dump();
  const uint64_t stop = report["stop_point"].get<uint64_t>();
  EXPECT_EQ(stop % 150, 0u);
  EXPECT_TRUE(report["wedged"].value("r1", false)) << wedge.dump();
  EXPECT_TRUE(report["wedged"].value("r2", false)) << wedge.dump();

  auto status = Cli({"wedge", "status"}, /*want_exit=*/1);
  EXPECT_EQ(status, nlohmann::json({{"r1", true}, {"r2", true}, {"r3", false}})) << status.dump();
  for (const char* r : {"r1", "r2"}) {
    auto st = Ledger(r);
    ASSERT_TRUE(st.has_value()) << r;
    EXPECT_TRUE(st->wedged) << r;
    EXPECT_EQ(st->last_reachable, stop) << r;
  }
}

// Unwedge checks every replica first: with one not wedged it is refused,
// naming that replica, and touches nobody. Once that replica is back (still
// wedged: the stop point is persisted), unwedge goes through.
TEST_F(WedgeTest, UnwedgeIsRefusedWhileOneReplicaIsNotWedged) {
  StartCluster(3);
  ASSERT_TRUE(WaitUntil([&] { return LastReachable("r1") > 20; }, 20s, 50ms));
  auto wedge = Cli({"wedge", "stop", "--timeout-s", "30"});
  ASSERT_TRUE(wedge.value("ok", false)) << wedge.dump();
  const uint64_t stop = wedge["report"]["stop_point"].get<uint64_t>();
  Cli({"node", "stop", "--node", "r2"});

  auto unwedge = Cli({"unwedge"}, /*want_exit=*/1);
  EXPECT_FALSE(unwedge.value("ok", true)) << unwedge.dump();
  const std::string error = unwedge.value("error", "");
  EXPECT_NE(error.find("r2 is not wedged"), std::string::npos) << unwedge.dump();
  EXPECT_EQ(error.find("r1"), std::string::npos) << unwedge.dump();
  EXPECT_EQ(error.find("r3"), std::string::npos) << unwedge.dump();
  EXPECT_FALSE(unwedge["report"].contains("unwedged")) << "unwedge was sent anyway: " << unwedge.dump();

  // The others stay wedged: nothing moves for a second.
  const bool moved = WaitUntil(
      [&] {
        for (const char* r : {"r1", "r3"}) {
          auto st = Ledger(r);
          if (!st || !st->wedged || st->last != stop || st->last_reachable != stop) return true;
        }
        return false;
      },
      1000ms, 50ms);
  EXPECT_FALSE(moved) << "a wedged replica moved or unwedged after the refused unwedge";
  auto status = Cli({"wedge", "status"}, /*want_exit=*/1);
  EXPECT_EQ(status, nlohmann::json({{"r1", true}, {"r2", false}, {"r3", true}})) << status.dump();

  // r2 comes back at its persisted stop point; now unwedge is accepted.
  Cli({"node", "start", "--node", "r2"});
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto st = Ledger("r2");
        return st && st->wedged && st->stop_point == stop;
      },
      20s, 50ms))
      << "r2 did not come back wedged at " << stop;
  auto ok = Cli({"unwedge"});
  EXPECT_TRUE(ok.value("ok", false)) << ok.dump();
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (const char* r : {"r1", "r2", "r3"})
          if (LastReachable(r) <= stop + 5) return false;
        return true;
      },
      20s, 50ms))
      << "block ids did not advance after unwedge";
}

// Health: every replica produces on the fast path; forcing the slow path on
// one makes it (and the command) unhealthy, clearing it makes it healthy.
TEST_F(WedgeTest, HealthShowsBlocksPerSecondAndFastPaths) {
  StartCluster(3);
  RunResult r;
  ASSERT_TRUE(WaitUntil(
      [&] {
        r = cluster_->RunCli({"--json", "health"}, 30s);
        return r.exit_code == 0;
      },
      20s, 200ms))
      << r.Describe();
  auto health = nlohmann::json::parse(r.out, nullptr, false);
  ASSERT_FALSE(health.is_discarded()) << r.Describe();
  ASSERT_EQ(health.size(), 3u) << r.out;
  for (const char* n : {"r1", "r2", "r3"}) {
    ASSERT_TRUE(health.contains(n)) << r.out;
    EXPECT_GT(health[n].value("blocks_per_sec", 0.0), 0.0) << r.out;
    EXPECT_EQ(health[n].value("slow_paths", uint64_t{1}), 0u) << r.out;
    EXPECT_GT(health[n].value("fast_paths", uint64_t{0}), 0u) << r.out;
    EXPECT_TRUE(health[n].value("healthy", false)) << r.out;
    EXPECT_TRUE(health[n].value("running", false)) << r.out;
  }

  ledger::LedgerControlClient r1(cluster_->LedgerControl("r1"));
  LK_ASSERT_OK(r1.SetFault(true));
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto st = Ledger("r1");
        return st && st->slow_paths > 0;
      },
      10s, 50ms))
      << "r1 produced no slow-path blocks with the fault flag set";
  health = Cli({"health"}, /*want_exit=*/1);
  EXPECT_FALSE(health["r1"].value("healthy", true)) << health.dump();
  EXPECT_TRUE(health["r1"].value("slow_path_fault", false)) << health.dump();
  EXPECT_GT(health["r1"].value("slow_paths", uint64_t{0}), 0u) << health.dump();
  for (const char* n : {"r2", "r3"}) {
    EXPECT_TRUE(health[n].value("healthy", false)) << health.dump();
    EXPECT_EQ(health[n].value("slow_paths", uint64_t{1}), 0u) << health.dump();
  }

  LK_ASSERT_OK(r1.SetFault(false));
  health = Cli({"health"});
  EXPECT_TRUE(health["r1"].value("healthy", false)) << health.dump();
}

// The wedge workflow is persisted: a broker SIGKILLed while the workflow
// waits for the replicas resumes it on restart, and the operator's CLI
// (which keeps polling through the restart) gets the final report.
TEST_F(WedgeTest, WedgeSurvivesABrokerRestartMidRun) {
  // Slow production: the stop point is 150..300 blocks = 3..6 s away.
  StartCluster(3, /*blocks_per_sec=*/50);
  ASSERT_TRUE(WaitUntil([&] { return LastReachable("r1") > 5; }, 20s, 50ms));
  LK_ASSERT_OK_AND_ASSIGN(auto cli, cluster_->StartCli({"--json", "wedge", "stop", "--timeout-s", "60"}, "wedge-bg"));

  // Wait until the workflow has sent the stop point, then kill the broker
  // while the replicas are still on their way to it.
  ledger::LedgerStatus r1;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto st = Ledger("r1");
        if (st) r1 = *st;
        return st && st->stop_point != 0;
      },
      20s, 20ms))
      << "the wedge workflow never sent a stop point; CLI: " << cli->ReadStdout();
  ASSERT_FALSE(r1.wedged) << "already wedged before the broker was killed; the test proves nothing";
  const uint64_t stop = r1.stop_point;
  LK_ASSERT_OK(cluster_->KillBroker(SIGKILL));
  EXPECT_TRUE(cli->IsRunning()) << "the CLI gave up when the broker died: " << cli->ReadStdout();
  LK_ASSERT_OK(cluster_->StartBroker());

  auto code = cli->WaitExit(45s);
  ASSERT_TRUE(code.has_value()) << "the resumed workflow never finished";
  EXPECT_EQ(*code, 0) << cli->ReadStdout();
  auto out = nlohmann::json::parse(cli->ReadStdout(), nullptr, false);
  ASSERT_FALSE(out.is_discarded()) << cli->ReadStdout();
  EXPECT_TRUE(out.value("ok", false)) << out.dump();
  EXPECT_EQ(out["report"].value("stop_point", uint64_t{0}), stop) << out.dump();
  EXPECT_EQ(out["report"]["not_wedged"], nlohmann::json::array()) << out.dump();

  auto status = Cli({"wedge", "status"});
  EXPECT_EQ(status, nlohmann::json({{"r1", true}, {"r2", true}, {"r3", true}})) << status.dump();
  for (auto& [node, last] : LastBlocks()) EXPECT_EQ(last, stop) << node;
}

}  // namespace
}  // namespace ledgerkeep::test
