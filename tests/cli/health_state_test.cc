// ClassifyReplicaHealth (cli/health_state.h): what `ledgerkeep health` says
// per replica.
#include "cli/health_state.h"

#include <gtest/gtest.h>

namespace ledgerkeep {
namespace {

wire::NodeHealthT Producing() {
  wire::NodeHealthT h;
  h.running = true;
  h.blocks_per_sec = 200;
  h.fast_paths = 1000;
  return h;
}

TEST(ReplicaHealthTest, ProducingOnTheFastPathIsHealthy) {
  const auto s = ClassifyReplicaHealth(Producing());
  EXPECT_EQ(s.id, "healthy");
  EXPECT_TRUE(s.healthy);
}

// Issue 15: a replica in state transfer showed 0 blocks/s and "not producing
// blocks" exactly like a stuck one.
TEST(ReplicaHealthTest, ReplicaInStateTransferThatProgressesIsCatchingUpNotStalled) {
  auto h = Producing();
  h.blocks_per_sec = 0;
  h.state_transfer_active = true;
  h.catching_up = true;
  h.lag_blocks = 48000;
  h.catch_up_blocks_per_sec = 1800;
  const auto s = ClassifyReplicaHealth(h);
  EXPECT_EQ(s.id, "catching_up");
  EXPECT_EQ(s.text, "catching up: 48000 blocks behind, state transfer fetching 1800 blocks/s");
  EXPECT_FALSE(s.healthy) << "exit code as before: only a producing replica counts healthy";
}

TEST(ReplicaHealthTest, ReplicaWithoutBlocksOrProgressIsNotProducing) {
  auto h = Producing();
  h.blocks_per_sec = 0;
  auto s = ClassifyReplicaHealth(h);
  EXPECT_EQ(s.id, "not_producing");
  EXPECT_EQ(s.text, "not producing blocks (no progress)");
  EXPECT_FALSE(s.healthy);
  h.state_transfer_active = true;  // in state transfer, but nothing moves
  s = ClassifyReplicaHealth(h);
  EXPECT_EQ(s.id, "not_producing");
  EXPECT_NE(s.text.find("state transfer stalled"), std::string::npos) << s.text;
}

TEST(ReplicaHealthTest, NotRunningAndForcedSlowPathComeFirst) {
  wire::NodeHealthT down;
  EXPECT_EQ(ClassifyReplicaHealth(down).id, "not_running");
  EXPECT_EQ(ClassifyReplicaHealth(down).text, "ledgerd not running");
  auto h = Producing();
  h.slow_path_fault = true;
  h.catching_up = true;
  EXPECT_EQ(ClassifyReplicaHealth(h).id, "slow_path_fault");
  EXPECT_FALSE(ClassifyReplicaHealth(h).healthy);
}

TEST(ReplicaHealthTest, BehindButProducingIsCatchingUpAndStillHealthy) {
  auto h = Producing();
  h.catching_up = true;
  h.lag_blocks = 400;
  const auto s = ClassifyReplicaHealth(h);
  EXPECT_EQ(s.id, "catching_up");
  EXPECT_TRUE(s.healthy);
}

}  // namespace
}  // namespace ledgerkeep
