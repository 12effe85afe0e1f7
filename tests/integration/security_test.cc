// CURVE + ZAP allowlist + role checks (DESIGN.md §4), against the real broker
// binary: unknown keys are refused, a key speaks only for its own node, and
// only operator keys command.
#include <gtest/gtest.h>

#include "tests/support/raw_peer.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

using namespace std::chrono_literals;

wire::CommandBodyUnion PingBody() {
  wire::PingT p;
  p.note = "security-test";
  wire::CommandBodyUnion b;
  b.Set(std::move(p));
  return b;
}

wire::TargetT All() {
  wire::TargetT t;
  t.all = true;
  return t;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestClusterOptions o;
    o.extra_keys = {{"watcher", wire::Role::Subscriber}, {"operator2", wire::Role::Operator}};
    o.unlisted_keys = {"stranger"};
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
  }

  Result<std::unique_ptr<RawPeer>> Peer(const std::string& key, int port,
                                       zmq::socket_type type = zmq::socket_type::dealer) {
    RawPeerOptions po;
    po.type = type;
    po.endpoint = cluster_->Config().ConnectEndpoint(port);
    po.key = cluster_->Key(key);
    po.server_public_z85 = cluster_->Config().broker_public_key;
    if (type == zmq::socket_type::sub) po.subscribe = {""};
    return RawPeer::Connect(po);
  }

  // The broker's view of `node` ("alive", "unknown", ...).
  std::string StateOf(const std::string& node) {
    auto client = cluster_->ConnectOperator();
    if (!client.ok()) return client.status().ToString();
    auto list = (*client)->ListNodes();
    if (!list.ok()) return list.status().ToString();
    for (const auto& n : list->nodes)
      if (n->node_id == node) return NodeStateName(n->state);
    return "(not listed)";
  }

  static StatusCode ErrorCode(const DecodedEnvelope& env) {
    const auto* e = env->body_as_ErrorReply();
    return e == nullptr ? StatusCode::kOk : static_cast<StatusCode>(e->code());
  }

  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(SecurityTest, UnknownKeyIsRefused) {
  LK_ASSERT_OK(cluster_->StartAll());
  LK_ASSERT_OK_AND_ASSIGN(auto client, BrokerClient::Connect(cluster_->ClientOptionsFor("stranger", 2000)));
  auto list = client->ListNodes();
  ASSERT_FALSE(list.ok()) << "a key that is not in the allowlist was served";
  EXPECT_TRUE(list.status().code() == StatusCode::kUnavailable ||
              list.status().code() == StatusCode::kPermissionDenied)
      << list.status().ToString();

  auto issued = client->Issue(All(), PingBody(), 5000);
  EXPECT_FALSE(issued.ok()) << "a stranger issued a command";

  RunResult cli = cluster_->RunCli({"--key", cluster_->KeyPath("stranger"), "nodes", "--timeout-ms", "2000"});
  EXPECT_EQ(cli.exit_code, 3) << cli.Describe();

  // The handshake itself is refused (not merely ignored).
  LK_ASSERT_OK_AND_ASSIGN(auto raw, Peer("stranger", cluster_->Config().ctl_port));
  EXPECT_EQ(raw->WaitHandshake(5s).code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(cluster_->broker_process()->IsRunning());
  LK_EXPECT_OK(cluster_->PingAllOk());
}

TEST_F(SecurityTest, AgentKeyClaimingAnotherNodeIdIsRefused) {
  LK_ASSERT_OK(cluster_->StartBroker());
  LK_ASSERT_OK_AND_ASSIGN(auto r1, Peer("r1", cluster_->Config().ctl_port));
  LK_ASSERT_OK(r1->WaitHandshake(5s));

  // Envelope sender "r2" on r1's key.
  wire::HeartbeatT hb;
  hb.state = "ready";
  wire::BodyUnion b;
  b.Set(std::move(hb));
  ASSERT_TRUE(r1->Send(MakeEnvelope("r2", 1, std::move(b))));
  LK_ASSERT_OK_AND_ASSIGN(auto reply, r1->ReceiveEnvelope(5s));
  EXPECT_EQ(ErrorCode(reply), StatusCode::kPermissionDenied);
  EXPECT_EQ(reply->reply_to(), 1u);

  // A Hello from "r1" that claims node r2.
  wire::HelloT hello;
  hello.node_id = "r2";
  hello.role = wire::Role::Replica;
  hello.version = "forged";
  wire::BodyUnion hb2;
  hb2.Set(std::move(hello));
  ASSERT_TRUE(r1->Send(MakeEnvelope("r1", 2, std::move(hb2))));
  LK_ASSERT_OK_AND_ASSIGN(auto reply2, r1->ReceiveEnvelope(5s));
  EXPECT_EQ(ErrorCode(reply2), StatusCode::kPermissionDenied);
  EXPECT_EQ(reply2->reply_to(), 2u);

  EXPECT_EQ(StateOf("r2"), "unknown") << "r2 was impersonated";
}

// A Hello the broker refuses is not a sign of life: the node it came from
// must not be reported alive (nor its routing id taken over).
TEST_F(SecurityTest, RefusedHelloDoesNotMarkTheSenderAlive) {
  LK_ASSERT_OK(cluster_->StartBroker());
  LK_ASSERT_OK_AND_ASSIGN(auto r1, Peer("r1", cluster_->Config().ctl_port));
  LK_ASSERT_OK(r1->WaitHandshake(5s));
  wire::HelloT hello;
  hello.node_id = "r2";
  hello.role = wire::Role::Replica;
  wire::BodyUnion b;
  b.Set(std::move(hello));
  ASSERT_TRUE(r1->Send(MakeEnvelope("r1", 1, std::move(b))));
  LK_ASSERT_OK_AND_ASSIGN(auto reply, r1->ReceiveEnvelope(5s));
  ASSERT_EQ(ErrorCode(reply), StatusCode::kPermissionDenied);
  EXPECT_EQ(StateOf("r1"), "unknown")
      << "the broker marked r1 alive on a Hello it refused (broker.cc HandleAgent calls "
         "MarkSeen before HandleHello checks the claim)";
}

TEST_F(SecurityTest, AgentKeyCannotIssueCommands) {
  LK_ASSERT_OK(cluster_->StartAll());
  LK_ASSERT_OK_AND_ASSIGN(auto as_agent, BrokerClient::Connect(cluster_->ClientOptionsFor("r1")));
  auto issued = as_agent->Issue(All(), PingBody(), 5000);
  ASSERT_FALSE(issued.ok()) << "a replica key issued command " << issued->cmd_id;
  EXPECT_EQ(issued.status().code(), StatusCode::kPermissionDenied) << issued.status().ToString();
  auto list = as_agent->ListNodes();
  EXPECT_EQ(list.status().code(), StatusCode::kPermissionDenied);

  // The refusal did not disturb the real r1.
  LK_EXPECT_OK(cluster_->PingAllOk());
}

TEST_F(SecurityTest, SubscriberKeyCannotIssueCommandsButCanFetchEvents) {
  LK_ASSERT_OK(cluster_->StartAll());
  LK_ASSERT_OK_AND_ASSIGN(auto watcher, BrokerClient::Connect(cluster_->ClientOptionsFor("watcher")));
  auto issued = watcher->Issue(All(), PingBody(), 5000);
  ASSERT_FALSE(issued.ok()) << "a subscriber key issued command " << issued->cmd_id;
  EXPECT_EQ(issued.status().code(), StatusCode::kPermissionDenied) << issued.status().ToString();

  LK_ASSERT_OK_AND_ASSIGN(auto dump, FetchAllEvents(*watcher));
  LK_EXPECT_OK(CheckDenseFromOne(dump));
  EXPECT_GT(dump.head_seq, 0u);

  // ... and may follow the live stream.
  LK_ASSERT_OK_AND_ASSIGN(auto follower,
                          EventFollower::Start(cluster_->ClientOptionsFor("watcher"), dump.head_seq + 1, "command"));
  LK_ASSERT_OK(cluster_->PingAllOk());
  LK_ASSERT_OK_AND_ASSIGN(auto ev, follower->Next(5000));
  ASSERT_TRUE(ev.has_value()) << "the subscriber saw no live command event";
  EXPECT_EQ(EventOf(*ev).kind()->str(), "command");
}

TEST_F(SecurityTest, SecondOperatorKeyMayCommand) {
  LK_ASSERT_OK(cluster_->StartAll());
  LK_ASSERT_OK_AND_ASSIGN(auto op2, BrokerClient::Connect(cluster_->ClientOptionsFor("operator2")));
  LK_ASSERT_OK_AND_ASSIGN(auto issued, op2->Issue(All(), PingBody(), 10'000));
  LK_ASSERT_OK_AND_ASSIGN(auto done, op2->Wait(issued.cmd_id, 10'000, nullptr));
  LK_EXPECT_OK(AllTargetsOk(done));
}

TEST_F(SecurityTest, EndpointsAdmitOnlyTheirRoles) {
  LK_ASSERT_OK(cluster_->StartBroker());
  const auto& c = cluster_->Config();
  // cmd carries commands: agents only.
  LK_ASSERT_OK_AND_ASSIGN(auto op_on_cmd, Peer("operator", c.cmd_port, zmq::socket_type::sub));
  EXPECT_EQ(op_on_cmd->WaitHandshake(5s).code(), StatusCode::kPermissionDenied);
  LK_ASSERT_OK_AND_ASSIGN(auto watcher_on_cmd, Peer("watcher", c.cmd_port, zmq::socket_type::sub));
  EXPECT_EQ(watcher_on_cmd->WaitHandshake(5s).code(), StatusCode::kPermissionDenied);
  LK_ASSERT_OK_AND_ASSIGN(auto r1_on_cmd, Peer("r1", c.cmd_port, zmq::socket_type::sub));
  LK_EXPECT_OK(r1_on_cmd->WaitHandshake(5s));
  // events: operators and subscribers only.
  LK_ASSERT_OK_AND_ASSIGN(auto r1_on_events, Peer("r1", c.events_port, zmq::socket_type::sub));
  EXPECT_EQ(r1_on_events->WaitHandshake(5s).code(), StatusCode::kPermissionDenied);
  LK_ASSERT_OK_AND_ASSIGN(auto watcher_on_events, Peer("watcher", c.events_port, zmq::socket_type::sub));
  LK_EXPECT_OK(watcher_on_events->WaitHandshake(5s));
  LK_ASSERT_OK_AND_ASSIGN(auto stranger_on_events, Peer("stranger", c.events_port, zmq::socket_type::sub));
  EXPECT_EQ(stranger_on_events->WaitHandshake(5s).code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace ledgerkeep::test
