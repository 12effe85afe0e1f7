// The runbook's wedge, stop/start and block-id checks against 4 real
// replicas (ledgerd under real agents) and a real broker.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ledger/ledger_store.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

using namespace std::chrono_literals;

class WedgeTest : public ::testing::Test {
 protected:
  void StartCluster(int replicas) {
    TestClusterOptions o;
    o.replicas = replicas;
    o.clients = 1;
    o.with_ledger = true;
    o.ledger_blocks_per_sec = 300;
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
  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(WedgeTest, AllReplicasStopAtOneCheckpointSurviveStopStartAndResumeAfterUnwedge) {
  StartCluster(4);
  ASSERT_TRUE(WaitUntil([&] { return LastBlocks()["r1"] > 20; }, 20s));
  auto wedge = Cli({"wedge", "stop", "--timeout-s", "60"});
  const uint64_t stop = wedge["report"]["stop_point"].get<uint64_t>();
  EXPECT_EQ(stop % 150, 0u);
  EXPECT_TRUE(wedge["ok"].get<bool>()) << wedge.dump();
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

}  // namespace
}  // namespace ledgerkeep::test
