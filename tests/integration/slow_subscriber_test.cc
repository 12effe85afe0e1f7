// A subscriber that never reads must not stall the broker or anyone else
// (DESIGN.md §2): the broker's XPUB drops for that subscriber alone, pings
// keep completing quickly, and an EventFollower still gets every event, in
// order, exactly once (filling any live-stream gap from history).
#include <gtest/gtest.h>

#include "broker/broker.h"
#include "common/clock.h"
#include "tests/support/raw_peer.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

using namespace std::chrono_literals;

constexpr int kPings = 150;
constexpr int64_t kMaxPingMs = 2000;

class SlowSubscriberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestClusterOptions o;
    o.extra_keys = {{"watcher", wire::Role::Subscriber}};
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
  }

  // A SUB on `events` that subscribes to everything and never reads, with
  // the smallest queue and socket buffer, so it backs up at once.
  void ConnectStuckSubscriber() {
    RawPeerOptions po;
    po.type = zmq::socket_type::sub;
    po.endpoint = cluster_->Config().ConnectEndpoint(cluster_->Config().events_port);
    po.key = cluster_->Key("watcher");
    po.server_public_z85 = cluster_->Config().broker_public_key;
    po.rcvhwm = 1;
    po.rcvbuf = 4096;
    po.subscribe = {""};
    LK_ASSERT_OK_AND_ASSIGN(stuck_, RawPeer::Connect(po));
    LK_ASSERT_OK(stuck_->WaitHandshake(5s));
  }

  // Pings every agent kPings times with a 4 KiB note (it comes back in every
  // result event, so the stuck subscriber's backlog grows fast) while
  // `follower` is drained between pings. Returns the seqs it delivered.
  void PingWhileFollowing(EventFollower& follower, std::vector<uint64_t>& seqs) {
    LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
    auto drain = [&](int64_t wait_ms) -> Status {
      while (true) {
        LK_ASSIGN_OR_RETURN(auto ev, follower.Next(wait_ms));
        if (!ev) return Status::OK();
        seqs.push_back((*ev)->body_as_Event()->seq());
        wait_ms = 0;
      }
    };
    wire::TargetT all;
    all.all = true;
    int64_t slowest = 0;
    for (int i = 0; i < kPings; ++i) {
      wire::PingT ping;
      ping.note = std::string(4096, static_cast<char>('a' + i % 26));
      wire::CommandBodyUnion body;
      body.Set(std::move(ping));
      const int64_t start = MonotonicMs();
      LK_ASSERT_OK_AND_ASSIGN(auto issued, client->Issue(all, std::move(body), 10'000));
      LK_ASSERT_OK_AND_ASSIGN(auto done, client->Wait(issued.cmd_id, 10'000, nullptr));
      const int64_t took = MonotonicMs() - start;
      slowest = std::max(slowest, took);
      LK_ASSERT_OK(AllTargetsOk(done));
      ASSERT_LT(took, kMaxPingMs) << "ping " << i << " took " << took << " ms";
      LK_ASSERT_OK(drain(0));
    }
    std::printf("[slow-subscriber] %d pings, slowest %lld ms\n", kPings,
                static_cast<long long>(slowest));
    // Everything up to the head reaches the follower. A follower only learns
    // of a gap from a later live event (see TailOfABurstDroppedOnTheEvent...
    // below), so while it lags, single-target pings give it one more event
    // at a time; such lone events are never dropped.
    LK_ASSERT_OK_AND_ASSIGN(auto head, client->FetchEvents(UINT64_MAX, 1, ""));
    wire::TargetT one;
    one.node_id = cluster_->AgentNodes().front();
    for (int nudge = 0; nudge < 20 && follower.next_seq() <= head.head_seq; ++nudge) {
      LK_ASSERT_OK(drain(200));
      if (follower.next_seq() > head.head_seq) break;
      LK_ASSERT_OK_AND_ASSIGN(auto st, cluster_->Ping(one));
      LK_ASSERT_OK(AllTargetsOk(st));
    }
    ASSERT_GT(follower.next_seq(), head.head_seq)
        << "the follower stopped at seq " << follower.next_seq() << " of " << head.head_seq;
    LK_ASSERT_OK(drain(0));
  }

  static void ExpectDense(const std::vector<uint64_t>& seqs) {
    ASSERT_FALSE(seqs.empty());
    for (size_t i = 0; i < seqs.size(); ++i) {
      ASSERT_EQ(seqs[i], i + 1) << "follower skipped, repeated or reordered an event";
    }
  }

  std::unique_ptr<TestCluster> cluster_;
  std::unique_ptr<RawPeer> stuck_;
};

TEST_F(SlowSubscriberTest, StuckSubscriberDoesNotStallBrokerOrOtherFollowers) {
  LK_ASSERT_OK(cluster_->StartAll());
  ConnectStuckSubscriber();
  if (HasFatalFailure()) return;
  LK_ASSERT_OK_AND_ASSIGN(auto follower, EventFollower::Start(cluster_->OperatorOptions(), 1, ""));
  std::vector<uint64_t> seqs;
  PingWhileFollowing(*follower, seqs);
  if (HasFatalFailure()) return;
  ExpectDense(seqs);
  EXPECT_TRUE(cluster_->broker_process()->IsRunning());
}

// Same, with the broker's XPUB queue cut to a few messages (no flag exposes
// it, so the broker runs in this process): bursts now overflow the
// follower's queue too, and it must fill those gaps from history.
TEST_F(SlowSubscriberTest, FollowerFillsLiveGapsWhenTheEventQueueOverflows) {
  BrokerOptions bo = cluster_->InProcessBrokerOptions();
  bo.xpub_hwm = 4;
  LK_ASSERT_OK_AND_ASSIGN(auto broker, Broker::Start(std::move(bo)));
  for (const auto& n : cluster_->AgentNodes()) LK_ASSERT_OK(cluster_->StartAgent(n));
  LK_ASSERT_OK(cluster_->WaitAllAlive(15s));
  ConnectStuckSubscriber();
  if (HasFatalFailure()) return;
  LK_ASSERT_OK_AND_ASSIGN(auto follower, EventFollower::Start(cluster_->OperatorOptions(), 1, ""));
  std::vector<uint64_t> seqs;
  PingWhileFollowing(*follower, seqs);
  if (HasFatalFailure()) return;
  ExpectDense(seqs);
  EXPECT_FALSE(broker->Exited());
}

// The last events of a burst are dropped on a full XPUB queue and nothing
// happens afterwards: the follower must still deliver them (DESIGN.md §2:
// every event exactly once; `ledgerkeep events --follow` must not hide the
// end of what just happened until some later, unrelated event).
TEST_F(SlowSubscriberTest, TailOfABurstDroppedOnTheEventQueueStillReachesTheFollower) {
  constexpr uint64_t kBurst = 50;
  BrokerOptions bo = cluster_->InProcessBrokerOptions();
  bo.xpub_hwm = 4;
  LK_ASSERT_OK_AND_ASSIGN(auto broker, Broker::Start(std::move(bo)));
  LK_ASSERT_OK_AND_ASSIGN(auto follower, EventFollower::Start(cluster_->OperatorOptions(), 1, ""));
  LK_ASSERT_OK_AND_ASSIGN(auto first, follower->Next(2000));
  ASSERT_TRUE(first.has_value()) << "the broker's start note";
  const uint64_t base = EventOf(*first).seq();

  // kBurst commands for an agent that is not running, in one go: the broker
  // stores and publishes kBurst CommandIssued events back to back, then stays
  // quiet (nothing answers, and the deadline is far away).
  RawPeerOptions po;
  po.endpoint = cluster_->Config().ConnectEndpoint(cluster_->Config().ctl_port);
  po.key = cluster_->Key("operator");
  po.server_public_z85 = cluster_->Config().broker_public_key;
  LK_ASSERT_OK_AND_ASSIGN(auto op, RawPeer::Connect(po));
  LK_ASSERT_OK(op->WaitHandshake(5s));
  for (uint64_t i = 1; i <= kBurst; ++i) {
    wire::IssueCommandT ic;
    ic.target = std::make_unique<wire::TargetT>();
    ic.target->node_id = cluster_->AgentNodes().front();
    ic.timeout_ms = 60'000;
    ic.body.Set(wire::PingT{});
    wire::BodyUnion b;
    b.Set(std::move(ic));
    ASSERT_TRUE(op->Send(MakeEnvelope("operator", i, std::move(b))));
  }
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto page = client->FetchEvents(UINT64_MAX, 1, "");
        return page.ok() && page->head_seq >= base + kBurst;
      },
      10s))
      << "the broker did not store the burst";

  uint64_t last = base;
  const bool all = WaitUntil(
      [&] {
        auto ev = follower->Next(100);
        if (ev.ok() && ev->has_value()) last = EventOf(**ev).seq();
        return last >= base + kBurst;
      },
      5s, 1ms);
  EXPECT_TRUE(all) << "the follower delivered up to seq " << last << " of " << base + kBurst
                   << " and then waited for a live event that never came: events dropped at "
                      "the end of a burst are only recovered when a later event arrives "
                      "(EventFollower::Next never checks the head while the stream is quiet)";
}

// History is paged by bytes (BrokerOptions::max_event_page_bytes): with
// pages of one event each, a replay of the whole log, raw and through an
// EventFollower, still has every event once (an event cut off a page must
// open the next one, not be skipped).
TEST_F(SlowSubscriberTest, HistoryReplayedThroughOneEventPagesHasEveryEventOnce) {
  BrokerOptions bo = cluster_->InProcessBrokerOptions();
  bo.max_event_page_bytes = 1;
  LK_ASSERT_OK_AND_ASSIGN(auto broker, Broker::Start(std::move(bo)));
  RawPeerOptions po;
  po.endpoint = cluster_->Config().ConnectEndpoint(cluster_->Config().ctl_port);
  po.key = cluster_->Key("operator");
  po.server_public_z85 = cluster_->Config().broker_public_key;
  LK_ASSERT_OK_AND_ASSIGN(auto op, RawPeer::Connect(po));
  LK_ASSERT_OK(op->WaitHandshake(5s));
  for (uint64_t i = 1; i <= 60; ++i) {
    wire::IssueCommandT ic;
    ic.target = std::make_unique<wire::TargetT>();
    ic.target->node_id = cluster_->AgentNodes().front();
    ic.timeout_ms = 60'000;
    ic.body.Set(wire::PingT{});  // for an agent that is not running: a CommandIssued event each
    wire::BodyUnion b;
    b.Set(std::move(ic));
    ASSERT_TRUE(op->Send(MakeEnvelope("operator", i, std::move(b))));
  }
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto page = client->FetchEvents(UINT64_MAX, 1, "");
        return page.ok() && page->head_seq >= 61;
      },
      10s))
      << "the broker did not store the commands";

  LK_ASSERT_OK_AND_ASSIGN(auto dump, FetchAllEvents(*client));
  LK_EXPECT_OK(CheckDenseFromOne(dump));
  LK_ASSERT_OK_AND_ASSIGN(auto follower, EventFollower::Start(cluster_->OperatorOptions(), 1, ""));
  std::vector<uint64_t> seqs;
  while (seqs.size() < dump.head_seq) {
    LK_ASSERT_OK_AND_ASSIGN(auto ev, follower->Next(2000));
    ASSERT_TRUE(ev.has_value()) << "the follower stopped at " << seqs.size() << " of " << dump.head_seq;
    seqs.push_back(EventOf(*ev).seq());
  }
  for (size_t i = 0; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], i + 1) << "gap or duplicate at position " << i;
}

}  // namespace
}  // namespace ledgerkeep::test
