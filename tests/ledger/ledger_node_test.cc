// LedgerNode with a manual cluster clock: the producer thread is real, time
// is not, so heights are exact.
#include "ledger/ledger_node.h"

#include <gtest/gtest.h>

#include <atomic>

#include "ledger/control_codec.h"
#include "ledger/control_server.h"
#include "ledger/ledger_store.h"
#include "tests/ledger/ledger_test_util.h"

namespace ledgerkeep::ledger {
namespace {

using testing::TempDir;
using testing::WaitUntil;
using namespace std::chrono_literals;

class LedgerNodeTest : public ::testing::Test {
 protected:
  std::unique_ptr<LedgerNode> OpenNode(bool start = true) {
    LedgerNodeOptions o;
    o.db_path = dir_ / "db";
    o.params = ChainParams{99, 256, 64};
    o.genesis_time_ms = 0;
    o.blocks_per_sec = 1000;  // one block per clock ms
    o.st_blocks_per_sec = 0;
    o.write_buffer_size = 256 << 10;
    o.clock = [this] { return now_.load(); };
    auto node = LedgerNode::Open(o);
    EXPECT_TRUE(node.ok()) << node.status().ToString();
    if (!node.ok()) return nullptr;
    if (start) {
      EXPECT_TRUE((*node)->Start().ok());
    }
    return std::move(node).value();
  }
  bool WaitForHeight(LedgerNode& node, uint64_t height) {
    return WaitUntil([&] { return node.GetStatus().last_reachable == height; }, 20s);
  }

  TempDir dir_;
  std::atomic<int64_t> now_{0};
};

TEST_F(LedgerNodeTest, FollowsTheClusterClock) {
  auto node = OpenNode();
  ASSERT_TRUE(node);
  now_ = 100;
  ASSERT_TRUE(WaitForHeight(*node, 100));
  const LedgerStatus s = node->GetStatus();
  EXPECT_EQ(s.genesis, 1u);
  EXPECT_EQ(s.last, 100u);
  EXPECT_EQ(s.fast_paths, 100u);
  EXPECT_FALSE(s.state_transfer_active);
}

TEST_F(LedgerNodeTest, WedgeStopsExactlyAtTheStopPointAndUnwedgeResumesFromIt) {
  auto node = OpenNode();
  ASSERT_TRUE(node);
  now_ = 120;
  ASSERT_TRUE(WaitForHeight(*node, 120));
  EXPECT_EQ(node->Wedge(200).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(node->Wedge(0).status().code(), StatusCode::kInvalidArgument);
  auto wedged = node->Wedge(150);
  ASSERT_TRUE(wedged.ok()) << wedged.status().ToString();
  EXPECT_EQ(wedged->stop_point, 150u);
  EXPECT_FALSE(wedged->wedged);
  now_ = 100000;  // the clock runs far past the stop point
  ASSERT_TRUE(WaitUntil([&] { return node->GetStatus().wedged; }, 20s));
  EXPECT_EQ(node->GetStatus().last_reachable, 150u);
  auto past = node->Wedge(150 - 150 + 150);  // at the point itself: fine
  EXPECT_TRUE(past.ok());
  ASSERT_TRUE(node->Unwedge().ok());
  EXPECT_EQ(node->GetStatus().stop_point, 0u);
  // Epoch reset to (150, now): height grows from 150, not to ~100000.
  now_ = 100000 + 50;
  ASSERT_TRUE(WaitForHeight(*node, 200));
  EXPECT_FALSE(node->GetStatus().state_transfer_active);
  auto refused = node->Wedge(150);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("already past stop point"), std::string::npos);
}

TEST_F(LedgerNodeTest, FarBehindReplicaCatchesUpByStateTransfer) {
  {
    auto node = OpenNode();
    ASSERT_TRUE(node);
    now_ = 40;
    ASSERT_TRUE(WaitForHeight(*node, 40));
  }
  now_ = 1000;  // 960 blocks behind: more than one checkpoint window
  auto node = OpenNode();
  ASSERT_TRUE(node);
  ASSERT_TRUE(WaitUntil(
      [&] {
        const LedgerStatus st = node->GetStatus();
        return st.last_reachable == 1000 && !st.state_transfer_active;
      },
      20s));
  const LedgerStatus s = node->GetStatus();
  EXPECT_EQ(s.last, 1000u);
  EXPECT_FALSE(s.state_transfer_active);
  EXPECT_EQ(s.fast_paths, 40u);  // transferred blocks were not produced here
  ASSERT_TRUE(node->Stop().ok());
  node.reset();
  auto store = LedgerStore::OpenReadOnly(dir_ / "db");
  ASSERT_TRUE(store.ok());
  auto report = (*store)->VerifyChain(0, 0);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << report->error;
}

// Issue 15: `health` showed a replica looping in state transfer as "0
// blocks/s" like a dead one; its status now says it is catching up.
TEST_F(LedgerNodeTest, FarBehindReplicaReportsCatchingUpWhileItTransfers) {
  {
    auto node = OpenNode();
    ASSERT_TRUE(node);
    now_ = 40;
    ASSERT_TRUE(WaitForHeight(*node, 40));
    const LedgerStatus current = node->GetStatus();
    EXPECT_FALSE(current.catching_up);
    EXPECT_EQ(current.lag_blocks, 0u);
  }
  now_ = 100000;  // ~100k blocks behind
  LedgerNodeOptions o;
  o.db_path = dir_ / "db";
  o.params = ChainParams{99, 256, 64};
  o.blocks_per_sec = 1000;
  o.st_blocks_per_sec = 2000;  // paced on the manual clock: it moves only when the clock does
  o.clock = [this] { return now_.load(); };
  auto node = LedgerNode::Open(o);
  ASSERT_TRUE(node.ok());
  ASSERT_TRUE((*node)->Start().ok());
  LedgerStatus s;
  ASSERT_TRUE(WaitUntil(
      [&] {
        now_ += 20;
        s = (*node)->GetStatus();
        return s.state_transfer_active && s.catch_up_blocks_per_sec > 0;
      },
      20s));
  EXPECT_TRUE(s.catching_up);
  EXPECT_EQ(s.blocks_per_sec, 0);  // nothing produced: what health used to show alone
  EXPECT_GT(s.lag_blocks, kCheckpointWindow);
  EXPECT_EQ(s.lag_blocks, (now_.load() - 0) - s.last_reachable);
  ASSERT_TRUE((*node)->Stop().ok());
}

TEST(LedgerHealthTest, CatchingUpNeedsBeingBehindAndProgress) {
  LedgerStatus s;
  s.lag_blocks = 2;
  s.blocks_per_sec = 50;
  EXPECT_FALSE(IsCatchingUp(s, 0, 150)) << "a producing replica a block or two behind is current";
  s.lag_blocks = 5000;
  s.blocks_per_sec = 0;
  s.state_transfer_active = true;
  EXPECT_TRUE(IsCatchingUp(s, 900, 150)) << "in state transfer and moving";
  EXPECT_FALSE(IsCatchingUp(s, 0, 150)) << "in state transfer, no progress: stuck";
  s.state_transfer_active = false;
  s.blocks_per_sec = 120;
  EXPECT_TRUE(IsCatchingUp(s, 0, 150)) << "behind and producing";
  s.blocks_per_sec = 0;
  EXPECT_FALSE(IsCatchingUp(s, 0, 150)) << "behind, producing nothing: not producing";
  s.blocks_per_sec = 120;
  s.wedged = true;
  EXPECT_FALSE(IsCatchingUp(s, 0, 150));
}

TEST_F(LedgerNodeTest, WedgeDuringStateTransferCapsTheTransfer) {
  {
    auto node = OpenNode();
    ASSERT_TRUE(node);
    now_ = 10;
    ASSERT_TRUE(WaitForHeight(*node, 10));
  }
  now_ = 5000;
  auto node = OpenNode(/*start=*/false);
  ASSERT_TRUE(node);
  ASSERT_TRUE(node->Wedge(450).ok());
  ASSERT_TRUE(node->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return node->GetStatus().wedged; }, 20s));
  EXPECT_EQ(node->GetStatus().last, 450u);
}

TEST_F(LedgerNodeTest, FaultFlagCountsBlocksAsSlowPath) {
  auto node = OpenNode();
  ASSERT_TRUE(node);
  now_ = 10;
  ASSERT_TRUE(WaitForHeight(*node, 10));
  ASSERT_TRUE(node->SetFault(true).ok());
  EXPECT_TRUE(node->GetStatus().slow_path_fault);
  now_ = 30;
  ASSERT_TRUE(WaitForHeight(*node, 30));
  EXPECT_EQ(node->GetStatus().fast_paths, 10u);
  EXPECT_EQ(node->GetStatus().slow_paths, 20u);
}

TEST_F(LedgerNodeTest, MalformedControlRequestsGetErrorReplies) {
  auto node = OpenNode();
  ASSERT_TRUE(node);
  for (const std::string& garbage :
       {std::string(), std::string("hello"), std::string(1000, '\xff'), std::string("\x08\x00\x00\x00LKLC", 8)}) {
    auto reply = DecodeControlReply(HandleControlRequest(*node, garbage));
    ASSERT_TRUE(reply.ok());
    EXPECT_EQ(reply->status.code(), StatusCode::kInvalidArgument);
  }
  auto ok = DecodeControlReply(HandleControlRequest(*node, EncodeControlRequest({7, ControlOp::kStatus})));
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->status.ok());
  EXPECT_EQ(ok->request_id, 7u);
  EXPECT_TRUE(std::holds_alternative<LedgerStatus>(ok->result));
}

}  // namespace
}  // namespace ledgerkeep::ledger
