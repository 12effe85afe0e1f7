// Reliable command delivery across process deaths (DESIGN.md §2): commands
// wait for agents that are not there yet, survive an agent's SIGKILL exactly
// once, and a broker SIGKILL loses no event and no command.
#include <gtest/gtest.h>

#include <map>

#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

using namespace std::chrono_literals;

wire::TargetT Node(const std::string& id) {
  wire::TargetT t;
  t.node_id = id;
  return t;
}

wire::CommandBodyUnion PingBody(uint32_t delay_ms) {
  wire::PingT p;
  p.delay_ms = delay_ms;
  p.note = "command-bus-test";
  wire::CommandBodyUnion b;
  b.Set(std::move(p));
  return b;
}

// Events in `dump` about command `cmd_id` of the given body type.
std::vector<const wire::Event*> CommandEvents(const EventDump& dump, uint64_t cmd_id, wire::EventBody type) {
  std::vector<const wire::Event*> out;
  for (const auto& env : dump.events) {
    const wire::Event& ev = EventOf(env);
    if (ev.body_type() != type) continue;
    uint64_t id = 0;
    switch (type) {
      case wire::EventBody::Ack:
        id = ev.body_as_Ack()->cmd_id();
        break;
      case wire::EventBody::CommandResult:
        id = ev.body_as_CommandResult()->cmd_id();
        break;
      case wire::EventBody::Progress:
        id = ev.body_as_Progress()->cmd_id();
        break;
      case wire::EventBody::CommandFinished:
        id = ev.body_as_CommandFinished()->cmd_id();
        break;
      case wire::EventBody::CommandIssued:
        id = ev.body_as_CommandIssued()->cmd_id();
        break;
      default:
        continue;
    }
    if (id == cmd_id) out.push_back(&ev);
  }
  return out;
}

const wire::TargetStatusT* TargetOf(const wire::CommandStatusT& st, const std::string& node) {
  for (const auto& t : st.targets)
    if (t->node_id == node) return t.get();
  return nullptr;
}

class CommandBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestClusterOptions o;
    // Frequent redelivery, so duplicates (PUB + ctl + hello) really race the
    // agent's dedupe in these scenarios.
    o.broker_args = {"--ack-timeout-ms", "300"};
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
  }

  // Waits until `pred` holds for the events with `prefix`.
  bool WaitForEvents(BrokerClient& client, const std::string& prefix,
                     const std::function<bool(const EventDump&)>& pred, std::chrono::milliseconds timeout) {
    return WaitUntil(
        [&] {
          auto dump = FetchAllEvents(client, prefix);
          return dump.ok() && pred(*dump);
        },
        timeout, 20ms);
  }

  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(CommandBusTest, CommandIssuedBeforeAgentStartsIsDeliveredWhenItStarts) {
  LK_ASSERT_OK(cluster_->StartBroker());
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  LK_ASSERT_OK_AND_ASSIGN(auto nodes, client->ListNodes());
  for (const auto& n : nodes.nodes) {
    if (n->node_id == "r2") {
      ASSERT_EQ(n->state, wire::NodeState::Unknown) << "r2 was never started";
    }
  }

  LK_ASSERT_OK_AND_ASSIGN(auto issued, client->Issue(Node("r2"), PingBody(0), 30'000));
  ASSERT_FALSE(issued.finished);
  // Nobody can have answered: the command waits for r2 (past several ack
  // timeouts, so redelivery to a node that is not there is exercised too).
  LK_ASSERT_OK_AND_ASSIGN(auto early, client->Wait(issued.cmd_id, 1000, nullptr));
  ASSERT_FALSE(early.finished) << DescribeCommandStatus(early);

  LK_ASSERT_OK(cluster_->StartAgent("r2"));
  LK_ASSERT_OK_AND_ASSIGN(auto done, client->Wait(issued.cmd_id, 20'000, nullptr));
  LK_EXPECT_OK(AllTargetsOk(done));
  ASSERT_EQ(done.targets.size(), 1u);
  EXPECT_EQ(done.targets[0]->node_id, "r2");
}

TEST_F(CommandBusTest, AgentKilledWhileCommandPendingGetsItExactlyOnceAfterRestart) {
  LK_ASSERT_OK(cluster_->StartAll());
  LK_ASSERT_OK(cluster_->KillAgent("r1", SIGKILL));

  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  // A ping with a delay runs on a worker lane, so the agent acks it before
  // the result (an instant ping's result is its only report).
  LK_ASSERT_OK_AND_ASSIGN(auto issued, client->Issue(Node("r1"), PingBody(50), 30'000));
  // Let the broker publish and redeliver into the void a few times.
  LK_ASSERT_OK_AND_ASSIGN(auto early, client->Wait(issued.cmd_id, 1000, nullptr));
  ASSERT_FALSE(early.finished) << DescribeCommandStatus(early);

  LK_ASSERT_OK(cluster_->RestartAgent("r1"));
  LK_ASSERT_OK_AND_ASSIGN(auto done, client->Wait(issued.cmd_id, 20'000, nullptr));
  LK_ASSERT_OK(AllTargetsOk(done));

  // A later command to r1 completes too: anything the restart still owed
  // (duplicates, resent reports) has been through the broker by then.
  LK_ASSERT_OK_AND_ASSIGN(auto after, cluster_->Ping(Node("r1")));
  LK_ASSERT_OK(AllTargetsOk(after));

  LK_ASSERT_OK_AND_ASSIGN(auto r1_events, FetchAllEvents(*client, "command.r1"));
  auto acks = CommandEvents(r1_events, issued.cmd_id, wire::EventBody::Ack);
  ASSERT_EQ(acks.size(), 1u) << "the agent must accept the command exactly once";
  EXPECT_TRUE(acks[0]->body_as_Ack()->accepted());
  auto results = CommandEvents(r1_events, issued.cmd_id, wire::EventBody::CommandResult);
  ASSERT_EQ(results.size(), 1u) << "the agent must run the command exactly once";
  EXPECT_EQ(results[0]->body_as_CommandResult()->status(), wire::ResultStatus::Ok);

  LK_ASSERT_OK_AND_ASSIGN(auto broker_events, FetchAllEvents(*client, "command.broker"));
  EXPECT_EQ(CommandEvents(broker_events, issued.cmd_id, wire::EventBody::CommandFinished).size(), 1u);
}

TEST_F(CommandBusTest, AgentKilledMidCommandReportsInterruptedAndDoesNotRerunIt) {
  LK_ASSERT_OK(cluster_->StartAll());
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  LK_ASSERT_OK_AND_ASSIGN(auto issued, client->Issue(Node("r1"), PingBody(3000), 30'000));
  const uint64_t id = issued.cmd_id;

  // The handler runs once it reported its first progress (at 0 %).
  ASSERT_TRUE(WaitForEvents(
      *client, "progress.r1",
      [&](const EventDump& d) { return !CommandEvents(d, id, wire::EventBody::Progress).empty(); }, 10s))
      << "r1 never started the 3 s ping";
  LK_ASSERT_OK(cluster_->KillAgent("r1", SIGKILL));
  LK_ASSERT_OK(cluster_->RestartAgent("r1"));

  LK_ASSERT_OK_AND_ASSIGN(auto done, client->Wait(id, 20'000, nullptr));
  ASSERT_TRUE(done.finished) << DescribeCommandStatus(done);
  const auto* t = TargetOf(done, "r1");
  ASSERT_NE(t, nullptr);
  ASSERT_TRUE(t->result);
  EXPECT_EQ(t->result->status, wire::ResultStatus::Interrupted) << DescribeCommandStatus(done);

  // Outlive the original 3 s: a re-run would have finished by then.
  LK_ASSERT_OK_AND_ASSIGN(auto later, cluster_->Ping(Node("r1"), 3000));
  LK_ASSERT_OK(AllTargetsOk(later));

  LK_ASSERT_OK_AND_ASSIGN(auto r1_events, FetchAllEvents(*client, "command.r1"));
  auto results = CommandEvents(r1_events, id, wire::EventBody::CommandResult);
  ASSERT_EQ(results.size(), 1u) << "exactly one result for the interrupted command";
  EXPECT_EQ(results[0]->body_as_CommandResult()->status(), wire::ResultStatus::Interrupted);
  EXPECT_EQ(CommandEvents(r1_events, id, wire::EventBody::Ack).size(), 1u);

  // A re-run would start again at 0 %: only the first run's start may exist.
  LK_ASSERT_OK_AND_ASSIGN(auto progress, FetchAllEvents(*client, "progress.r1"));
  int starts = 0;
  for (const auto* ev : CommandEvents(progress, id, wire::EventBody::Progress)) {
    if (ev->body_as_Progress()->percent() < 10.0) ++starts;
  }
  EXPECT_EQ(starts, 1) << "the interrupted command was executed again after the restart";
}

TEST_F(CommandBusTest, BrokerKilledAndRestartedLosesNoEventAndAgentsReconnect) {
  LK_ASSERT_OK(cluster_->StartAll());
  LK_ASSERT_OK(cluster_->PingAllOk());
  LK_ASSERT_OK(cluster_->PingAllOk());
  EventDump before;
  {
    LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
    LK_ASSERT_OK_AND_ASSIGN(before, FetchAllEvents(*client));
  }
  LK_ASSERT_OK(CheckDenseFromOne(before));
  ASSERT_GT(before.head_seq, 10u);

  const pid_t first_pid = cluster_->broker_process()->pid();
  LK_ASSERT_OK(cluster_->KillBroker(SIGKILL));
  LK_ASSERT_OK(cluster_->StartBroker());
  ASSERT_NE(cluster_->broker_process()->pid(), first_pid);

  LK_ASSERT_OK(cluster_->WaitAllAlive(15s));
  LK_ASSERT_OK(cluster_->PingAllOk());
  for (const auto& node : cluster_->AgentNodes()) {
    EXPECT_TRUE(cluster_->agent_process(node)->IsRunning()) << node << " died instead of reconnecting";
  }

  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  LK_ASSERT_OK_AND_ASSIGN(auto after, FetchAllEvents(*client));
  LK_ASSERT_OK(CheckDenseFromOne(after));
  ASSERT_GT(after.head_seq, before.head_seq);
  for (size_t i = 0; i < before.events.size(); ++i) {
    ASSERT_EQ(before.events[i].bytes(), after.events[i].bytes())
        << "event seq " << EventOf(before.events[i]).seq() << " changed across the broker restart";
  }
}

TEST_F(CommandBusTest, CommandInFlightWhenBrokerIsKilledFinishesAfterRestart) {
  LK_ASSERT_OK(cluster_->StartAll());
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  wire::TargetT all;
  all.all = true;
  LK_ASSERT_OK_AND_ASSIGN(auto issued, client->Issue(all, PingBody(1500), 30'000));
  const uint64_t id = issued.cmd_id;
  const size_t n = cluster_->AgentNodes().size();
  ASSERT_TRUE(WaitForEvents(
      *client, "command",
      [&](const EventDump& d) { return CommandEvents(d, id, wire::EventBody::Ack).size() == n; }, 10s))
      << "not every agent accepted the command";

  LK_ASSERT_OK(cluster_->KillBroker(SIGKILL));
  LK_ASSERT_OK(cluster_->StartBroker());

  LK_ASSERT_OK_AND_ASSIGN(auto client2, cluster_->ConnectOperator());
  LK_ASSERT_OK_AND_ASSIGN(auto done, client2->Wait(id, 20'000, nullptr));
  LK_ASSERT_OK(AllTargetsOk(done));
  ASSERT_EQ(done.targets.size(), n);

  LK_ASSERT_OK_AND_ASSIGN(auto events, FetchAllEvents(*client2, "command"));
  EXPECT_EQ(CommandEvents(events, id, wire::EventBody::CommandResult).size(), n)
      << "one result per agent, none lost or duplicated by the restart";
  EXPECT_EQ(CommandEvents(events, id, wire::EventBody::CommandFinished).size(), 1u);
}

}  // namespace
// More than 16 targets travel as a bitmap of node indexes instead of a list
// of ids (Command.target_bits): every target must still run the command
// exactly once, and a node outside the bitmap must not run it at all.
TEST(CommandBusBitmapTest, LargeTargetSetReachesExactlyItsTargets) {
  TestClusterOptions o;
  o.replicas = 18;
  o.clients = 1;
  o.heartbeat_ms = 200;
  LK_ASSERT_OK_AND_ASSIGN(auto cluster, TestCluster::Create(o));
  LK_ASSERT_OK(cluster->StartAll(std::chrono::milliseconds(30'000)));
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster->ConnectOperator());
  wire::TargetT replicas;
  replicas.role = wire::Role::Replica;
  for (int round = 0; round < 2; ++round) {
    LK_ASSERT_OK_AND_ASSIGN(auto issued, client->Issue(replicas, PingBody(0), 30'000));
    LK_ASSERT_OK_AND_ASSIGN(auto done, client->Wait(issued.cmd_id, 30'000, nullptr));
    LK_EXPECT_OK(AllTargetsOk(done));
    ASSERT_EQ(done.targets.size(), 18u);
    LK_ASSERT_OK_AND_ASSIGN(auto dump, FetchAllEvents(*client, "command."));
    std::map<std::string, int> results;
    for (const auto* ev : CommandEvents(dump, issued.cmd_id, wire::EventBody::CommandResult)) {
      ++results[ev->node()->str()];
    }
    EXPECT_EQ(results.size(), 18u);
    for (int i = 1; i <= 18; ++i) EXPECT_EQ(results["r" + std::to_string(i)], 1) << "r" << i;
    EXPECT_EQ(results.count("c1"), 0u) << "c1 is not a replica but ran the command";
    // Second round: an agent restarted in between must still find its bit.
    if (round == 0) {
      LK_ASSERT_OK(cluster->KillAgent("r17"));
      LK_ASSERT_OK(cluster->StartAgent("r17"));
    }
  }
}

}  // namespace ledgerkeep::test
