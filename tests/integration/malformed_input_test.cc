// Hostile bytes on every endpoint (DESIGN.md §3): random buffers, truncated
// and out-of-range envelopes, oversized messages, garbage subscriptions and
// raw non-ZMTP TCP leave the broker and the agents serving. On ctl every
// single-frame message that is not a valid envelope gets an ErrorReply.
// Random data comes from a fixed seed, so a failure reproduces.
#include <gtest/gtest.h>

#include <random>

#include "common/clock.h"
#include "common/codec.h"
#include "tests/support/child_process.h"
#include "tests/support/raw_peer.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kSeed = 20240611;

std::string RandomBytes(std::mt19937& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

std::string ListNodesEnvelope(const std::string& sender, uint64_t msg_id) {
  wire::BodyUnion b;
  b.Set(wire::ListNodesT{});
  return MakeEnvelope(sender, msg_id, std::move(b));
}

std::string IssuePingEnvelope(const std::string& sender, uint64_t msg_id) {
  wire::IssueCommandT ic;
  ic.target = std::make_unique<wire::TargetT>();
  ic.target->all = true;
  ic.timeout_ms = 10'000;
  wire::PingT p;
  p.note = "truncate me";
  ic.body.Set(std::move(p));
  wire::BodyUnion b;
  b.Set(std::move(ic));
  return MakeEnvelope(sender, msg_id, std::move(b));
}

std::string Finished(flatbuffers::FlatBufferBuilder& fbb) {
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

// Envelopes no product code would build: each must be refused by the codec.
std::vector<std::pair<std::string, std::string>> HostileEnvelopes(const std::string& sender) {
  std::vector<std::pair<std::string, std::string>> out;
  {  // Envelope.body type far beyond the union.
    flatbuffers::FlatBufferBuilder fbb;
    auto s = fbb.CreateString(sender);
    auto body = wire::CreateListNodes(fbb);
    wire::EnvelopeBuilder eb(fbb);
    eb.add_msg_id(7);
    eb.add_sender(s);
    eb.add_body_type(static_cast<wire::Body>(200));
    eb.add_body(body.Union());
    fbb.Finish(eb.Finish(), wire::EnvelopeIdentifier());
    out.emplace_back("body type 200", Finished(fbb));
  }
  {  // IssueCommand with an unknown command body and target role.
    flatbuffers::FlatBufferBuilder fbb;
    auto s = fbb.CreateString(sender);
    auto target = wire::CreateTarget(fbb, 0, static_cast<wire::Role>(77), false);
    auto ping = wire::CreatePing(fbb, uint32_t{0}, flatbuffers::Offset<flatbuffers::String>());
    auto ic = wire::CreateIssueCommand(fbb, target, 1000, static_cast<wire::CommandBody>(99), ping.Union());
    wire::EnvelopeBuilder eb(fbb);
    eb.add_msg_id(8);
    eb.add_sender(s);
    eb.add_body_type(wire::Body::IssueCommand);
    eb.add_body(ic.Union());
    fbb.Finish(eb.Finish(), wire::EnvelopeIdentifier());
    out.emplace_back("command body 99", Finished(fbb));
  }
  {  // A known body type whose table is a different table.
    flatbuffers::FlatBufferBuilder fbb;
    auto s = fbb.CreateString(sender);
    auto role_only = wire::CreateTarget(fbb, 0, static_cast<wire::Role>(250), true);
    wire::EnvelopeBuilder eb(fbb);
    eb.add_msg_id(9);
    eb.add_sender(s);
    eb.add_body_type(wire::Body::IssueCommand);
    eb.add_body(role_only.Union());
    fbb.Finish(eb.Finish(), wire::EnvelopeIdentifier());
    out.emplace_back("IssueCommand that is a Target", Finished(fbb));
  }
  {  // Unsupported wire version.
    flatbuffers::FlatBufferBuilder fbb;
    auto s = fbb.CreateString(sender);
    auto body = wire::CreateListNodes(fbb);
    wire::EnvelopeBuilder eb(fbb);
    eb.add_version(2);
    eb.add_msg_id(10);
    eb.add_sender(s);
    eb.add_body_type(wire::Body::ListNodes);
    eb.add_body(body.Union());
    fbb.Finish(eb.Finish(), wire::EnvelopeIdentifier());
    out.emplace_back("version 2", Finished(fbb));
  }
  {  // No body at all.
    flatbuffers::FlatBufferBuilder fbb;
    auto s = fbb.CreateString(sender);
    wire::EnvelopeBuilder eb(fbb);
    eb.add_msg_id(11);
    eb.add_sender(s);
    fbb.Finish(eb.Finish(), wire::EnvelopeIdentifier());
    out.emplace_back("no body", Finished(fbb));
  }
  {  // A valid envelope with the root offset pointing outside the buffer.
    std::string e = ListNodesEnvelope(sender, 12);
    e[0] = static_cast<char>(0xf0);
    e[1] = static_cast<char>(0xff);
    out.emplace_back("root offset out of range", e);
  }
  return out;
}

class MalformedInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create({}));
    LK_ASSERT_OK(cluster_->StartAll());
  }

  Result<std::unique_ptr<RawPeer>> Peer(const std::string& key, int port, zmq::socket_type type) {
    RawPeerOptions po;
    po.type = type;
    po.endpoint = cluster_->Config().ConnectEndpoint(port);
    po.key = cluster_->Key(key);
    po.server_public_z85 = cluster_->Config().broker_public_key;
    return RawPeer::Connect(po);
  }

  // Sends one single-frame message on ctl and expects an answer: an
  // ErrorReply whenever our own codec refuses the bytes too.
  void ExpectAnswered(RawPeer& peer, const std::string& what, const std::string& bytes) {
    ASSERT_TRUE(peer.Send(bytes)) << what << ": send would block";
    // Skip status pushes of commands that earlier mutations happened to
    // issue validly (those carry reply_to 0 and are not answers).
    auto reply = peer.ReceiveEnvelope(5s);
    while (reply.ok() && (*reply)->reply_to() == 0 && (*reply)->body_as_CommandStatus() != nullptr) {
      reply = peer.ReceiveEnvelope(5s);
    }
    ASSERT_TRUE(reply.ok()) << what << " (" << bytes.size()
                            << " bytes) got no well-formed answer: " << reply.status().ToString();
    if (!DecodeEnvelope(bytes).ok()) {
      const auto* err = (*reply)->body_as_ErrorReply();
      ASSERT_NE(err, nullptr) << what << " was answered with " << BodyName((*reply)->body_type());
      EXPECT_TRUE(err->code() == static_cast<uint16_t>(StatusCode::kInvalidArgument) ||
                  err->code() == static_cast<uint16_t>(StatusCode::kCorruption))
          << what << ": error code " << err->code();
    }
  }

  // A ListNodes round trip on `peer` (retried: a peer the broker dropped
  // reconnects on its own, and a request sent meanwhile is lost).
  bool StillAnswers(RawPeer& peer) {
    uint64_t msg_id = 1'000'000;
    return WaitUntil(
        [&] {
          const uint64_t id = ++msg_id;
          if (!peer.Send(ListNodesEnvelope("operator", id))) return false;
          for (auto r = peer.ReceiveEnvelope(500ms); r.ok(); r = peer.ReceiveEnvelope(100ms)) {
            if ((*r)->reply_to() == id && (*r)->body_as_NodeList() != nullptr) return true;
          }
          return false;
        },
        15s, 1ms);
  }

  void ExpectClusterServing() {
    ASSERT_TRUE(cluster_->broker_process()->IsRunning()) << "the broker died";
    for (const auto& n : cluster_->AgentNodes()) {
      ASSERT_TRUE(cluster_->agent_process(n)->IsRunning()) << "agent " << n << " died";
    }
    LK_EXPECT_OK(cluster_->WaitAllAlive(10s));
    LK_EXPECT_OK(cluster_->PingAllOk());
  }

  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(MalformedInputTest, GarbageOnCtlIsAnsweredWithErrorsAndTheBrokerKeepsServing) {
  std::mt19937 rng(kSeed);
  LK_ASSERT_OK_AND_ASSIGN(auto op, Peer("operator", cluster_->Config().ctl_port, zmq::socket_type::dealer));
  LK_ASSERT_OK(op->WaitHandshake(5s));

  ExpectAnswered(*op, "empty message", "");
  for (int i = 0; i < 100; ++i) {
    ExpectAnswered(*op, "random buffer " + std::to_string(i), RandomBytes(rng, rng() % 2048));
  }
  // Random bodies behind a valid file identifier reach the Verifier.
  for (int i = 0; i < 100; ++i) {
    std::string b = RandomBytes(rng, 8 + rng() % 512);
    b.replace(4, 4, "LKW1");
    ExpectAnswered(*op, "random LKW1 buffer " + std::to_string(i), b);
  }
  // Every truncation of two valid envelopes.
  for (const std::string& valid : {ListNodesEnvelope("operator", 1), IssuePingEnvelope("operator", 2)}) {
    for (size_t len = 0; len < valid.size(); ++len) {
      ExpectAnswered(*op, "truncated to " + std::to_string(len), valid.substr(0, len));
      if (HasFatalFailure()) return;
    }
  }
  // Bit flips in a valid envelope.
  const std::string valid = IssuePingEnvelope("operator", 3);
  for (int i = 0; i < 100; ++i) {
    std::string b = valid;
    b[rng() % b.size()] ^= static_cast<char>(1 + rng() % 255);
    ExpectAnswered(*op, "bit flip " + std::to_string(i), b);
    if (HasFatalFailure()) return;
  }
  for (const auto& [what, bytes] : HostileEnvelopes("operator")) {
    ASSERT_FALSE(DecodeEnvelope(bytes).ok()) << what << " is not hostile";
    ExpectAnswered(*op, what, bytes);
  }
  // Just under the size cap: accepted by the transport, refused by the
  // codec. (libzmq applies ZMQ_MAXMSGSIZE to the CURVE-encrypted frame,
  // which is ~33 bytes longer than the payload.)
  ExpectAnswered(*op, "~1 MiB of random bytes", RandomBytes(rng, kMaxMessageBytes - 64));
  // Multi-frame messages are dropped (no payload frame to answer).
  ASSERT_TRUE(op->Send({ListNodesEnvelope("operator", 4), "trailing frame"}));
  ASSERT_TRUE(op->Send({"", "", ""}));
  ASSERT_TRUE(StillAnswers(*op)) << "ctl stopped answering after malformed messages";

  // Over the cap: libzmq drops the connection; the peer reconnects.
  LK_ASSERT_OK_AND_ASSIGN(auto big, Peer("operator", cluster_->Config().ctl_port, zmq::socket_type::dealer));
  LK_ASSERT_OK(big->WaitHandshake(5s));
  ASSERT_TRUE(big->Send(RandomBytes(rng, kMaxMessageBytes + 1)));
  ASSERT_TRUE(big->Send(std::string(3 * kMaxMessageBytes, 'x')));
  EXPECT_TRUE(StillAnswers(*big)) << "an oversized message's sender could not reconnect";
  EXPECT_TRUE(StillAnswers(*op)) << "an oversized message disturbed another peer";

  ExpectClusterServing();
}

TEST_F(MalformedInputTest, GarbageAgentMessagesAreRefusedAndTheAgentKeepsItsNode) {
  std::mt19937 rng(kSeed + 1);
  // r1's own key, from a second connection: reports and hellos that do not
  // decode are refused without touching r1's state.
  LK_ASSERT_OK_AND_ASSIGN(auto fake_r1, Peer("r1", cluster_->Config().ctl_port, zmq::socket_type::dealer));
  LK_ASSERT_OK(fake_r1->WaitHandshake(5s));
  for (int i = 0; i < 50; ++i) {
    ExpectAnswered(*fake_r1, "random from r1's key " + std::to_string(i), RandomBytes(rng, rng() % 1024));
  }
  {  // Hello with an out-of-range role.
    flatbuffers::FlatBufferBuilder fbb;
    auto s = fbb.CreateString("r1");
    auto node = fbb.CreateString("r1");
    auto hello = wire::CreateHello(fbb, node, static_cast<wire::Role>(99));
    wire::EnvelopeBuilder eb(fbb);
    eb.add_msg_id(1);
    eb.add_sender(s);
    eb.add_body_type(wire::Body::Hello);
    eb.add_body(hello.Union());
    fbb.Finish(eb.Finish(), wire::EnvelopeIdentifier());
    ExpectAnswered(*fake_r1, "Hello with role 99", Finished(fbb));
  }
  {  // A Report whose result has an out-of-range status.
    flatbuffers::FlatBufferBuilder fbb;
    auto s = fbb.CreateString("r1");
    auto res = wire::CreateCommandResult(fbb, 1, static_cast<wire::ResultStatus>(42));
    auto rep = wire::CreateReport(fbb, 999'999, 0, wire::ReportBody::CommandResult, res.Union());
    wire::EnvelopeBuilder eb(fbb);
    eb.add_msg_id(2);
    eb.add_sender(s);
    eb.add_body_type(wire::Body::Report);
    eb.add_body(rep.Union());
    fbb.Finish(eb.Finish(), wire::EnvelopeIdentifier());
    ExpectAnswered(*fake_r1, "Report with result status 42", Finished(fbb));
  }
  fake_r1.reset();
  ExpectClusterServing();
}

// Flatbuffers strings are not checked for UTF-8, and the broker persists
// some of them as JSON (a node's version, its destination), which throws on
// bytes that are not UTF-8: the broker thread died on the next commit.
TEST_F(MalformedInputTest, AHelloWhoseVersionIsNotUtf8LeavesTheBrokerServing) {
  LK_ASSERT_OK(cluster_->KillAgent("r2", SIGKILL));  // its connection is gone: a new Hello is taken
  {
    LK_ASSERT_OK_AND_ASSIGN(auto r2, Peer("r2", cluster_->Config().ctl_port, zmq::socket_type::dealer));
    LK_ASSERT_OK(r2->WaitHandshake(5s));
    wire::HelloT hello;
    hello.node_id = "r2";
    hello.role = wire::Role::Replica;
    hello.version = "0.1\xff\xfe\xc3(";
    hello.pid = 1;
    wire::BodyUnion b;
    b.Set(std::move(hello));
    ASSERT_TRUE(r2->Send(MakeEnvelope("r2", 1, std::move(b))));
    auto welcome = r2->ReceiveEnvelope(5s);
    ASSERT_TRUE(welcome.ok()) << "no answer to the Hello: " << welcome.status().ToString();
    EXPECT_NE((*welcome)->body_as_Welcome(), nullptr) << BodyName((*welcome)->body_type());
    LK_ASSERT_OK_AND_ASSIGN(auto op, Peer("operator", cluster_->Config().ctl_port, zmq::socket_type::dealer));
    ASSERT_TRUE(StillAnswers(*op)) << "the broker stopped answering after storing the version";
  }
  LK_ASSERT_OK(cluster_->StartAgent("r2"));
  ExpectClusterServing();
}

// A workflow parameter of the wrong type makes nlohmann::json throw inside
// the workflow's thread; std::terminate took the broker down with it.
TEST_F(MalformedInputTest, AWorkflowParameterOfTheWrongTypeFailsTheRunAndTheBrokerKeepsServing) {
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  auto started = client->StartWorkflow("wedge", R"({"timeout_s": "soon"})");
  if (started.ok()) {  // refused up front is fine too; a crash is not
    wire::WorkflowStatusT st;
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto s = client->GetWorkflowStatus(started->run_id);
          if (s.ok()) st = *s;
          return s.ok() && s->finished;
        },
        15s, 20ms))
        << "the run did not finish (broker running: " << cluster_->broker_process()->IsRunning() << ")";
    EXPECT_EQ(st.state, "failed");
    EXPECT_TRUE(st.error.find("internal error in workflow wedge: ") != std::string::npos ||
                st.error.find("timeout_s") != std::string::npos)
        << st.error;
  } else {
    EXPECT_EQ(started.status().code(), StatusCode::kInvalidArgument) << started.status().ToString();
  }
  ExpectClusterServing();
}

TEST_F(MalformedInputTest, GarbageOnTheCmdAndEventsEndpointsLeavesTheBrokerServing) {
  std::mt19937 rng(kSeed + 2);
  const auto& c = cluster_->Config();
  // XSUB can send anything upstream: subscriptions, cancels, user messages.
  LK_ASSERT_OK_AND_ASSIGN(auto on_cmd, Peer("r1", c.cmd_port, zmq::socket_type::xsub));
  LK_ASSERT_OK(on_cmd->WaitHandshake(5s));
  LK_ASSERT_OK_AND_ASSIGN(auto on_events, Peer("operator", c.events_port, zmq::socket_type::xsub));
  LK_ASSERT_OK(on_events->WaitHandshake(5s));
  for (RawPeer* p : {on_cmd.get(), on_events.get()}) {
    for (int i = 0; i < 300; ++i) {
      std::string m = RandomBytes(rng, rng() % 256);
      if (i % 3 == 0 && !m.empty()) m[0] = '\x01';  // subscribe to random bytes
      if (i % 3 == 1 && !m.empty()) m[0] = '\x00';  // cancel what was never subscribed
      p->Send(m);
    }
    // A long subscription. (Not hundreds of KiB: libzmq's own XSUB trie
    // would overflow this test's stack when the socket is closed.)
    p->Send(std::string("\x01", 1) + std::string(8 * 1024, 'y'));
    p->Send({ListNodesEnvelope("operator", 1), "second frame", "third"});
    p->Send(RandomBytes(rng, kMaxMessageBytes + 10));  // over the cap: dropped connection
  }
  // Events still flow to a proper follower, commands still reach agents.
  LK_ASSERT_OK_AND_ASSIGN(auto follower, EventFollower::Start(cluster_->OperatorOptions(), 1, ""));
  ExpectClusterServing();
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  LK_ASSERT_OK_AND_ASSIGN(auto head, client->FetchEvents(UINT64_MAX, 1, ""));
  uint64_t expect = 1;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto ev = follower->Next(100);
        if (!ev.ok() || !*ev) return false;
        EXPECT_EQ(EventOf(**ev).seq(), expect);
        ++expect;
        return expect > head.head_seq;
      },
      15s, 1ms));
}

TEST_F(MalformedInputTest, RawTcpGarbageOnEveryPortLeavesTheBrokerServing) {
  std::mt19937 rng(kSeed + 3);
  const auto& c = cluster_->Config();
  // A ZMTP 3.0 greeting (signature, version, mechanism, as-server, filler).
  auto greeting = [](const std::string& mechanism) {
    std::string g("\xff\0\0\0\0\0\0\0\0\x7f", 10);
    g += '\x03';
    g += '\x00';
    std::string mech = mechanism;
    mech.resize(20, '\0');
    g += mech;
    g += '\x00';
    g += std::string(31, '\0');
    return g;
  };
  std::vector<std::unique_ptr<RawTcpConnection>> idle;
  for (int port : {c.cmd_port, c.ctl_port, c.events_port}) {
    SCOPED_TRACE("port " + std::to_string(port));
    LK_ASSERT_OK(SendRawTcp(port, ""));                                      // connect + close
    LK_ASSERT_OK(SendRawTcp(port, RandomBytes(rng, 64 * 1024)));             // not ZMTP at all
    LK_ASSERT_OK(SendRawTcp(port, greeting("NULL") + RandomBytes(rng, 4096)));   // wrong mechanism
    LK_ASSERT_OK(SendRawTcp(port, greeting("CURVE") + RandomBytes(rng, 4096)));  // bad HELLO
    LK_ASSERT_OK(SendRawTcp(port, greeting("CURVE") + std::string("\x04\xff", 2)));  // cut short
    LK_ASSERT_OK(SendRawTcp(port, std::string("\xff\0\0\0\0\0\0\0\x01\x7f\x01", 11)));  // ZMTP 1.0
    // Connections that never finish a handshake stay open while we check.
    LK_ASSERT_OK_AND_ASSIGN(auto hold, RawTcpConnection::Open(port));
    idle.push_back(std::move(hold));
    LK_ASSERT_OK_AND_ASSIGN(auto half, RawTcpConnection::Open(port));
    half->Write(greeting("CURVE").substr(0, 20));
    idle.push_back(std::move(half));
  }
  ExpectClusterServing();
}

// An allowlisted subscriber (or agent, on cmd) can send one subscription
// of almost ZMQ_MAXMSGSIZE. The broker's XPUB/PUB keep subscriptions in a
// trie one level per byte; dropping that subscriber, and stopping the
// broker, must not crash it.
TEST_F(MalformedInputTest, VeryLongSubscriptionDoesNotCrashTheBroker) {
  const auto& c = cluster_->Config();
  struct Target {
    int port;
    std::string key;
    std::string prefix;
  };
  for (const Target& t : {Target{c.events_port, "operator", "evt."}, Target{c.cmd_port, "r1", "cmd."}}) {
    SCOPED_TRACE("port " + std::to_string(t.port));
    ProcessSpec spec;
    spec.argv = {BinPath("itest_deep_subscriber"), c.ConnectEndpoint(t.port), c.broker_public_key,
                 cluster_->Key(t.key).public_z85, cluster_->Key(t.key).secret_z85,
                 std::to_string(kMaxMessageBytes - 4096), t.prefix};
    spec.stdout_path = cluster_->LogPath("deep-subscriber");
    LK_ASSERT_OK_AND_ASSIGN(auto helper, ChildProcess::Start(spec));
    // Events (and commands on cmd) flow until the helper has seen one.
    ASSERT_TRUE(WaitUntil(
        [&] {
          if (!helper->IsRunning()) return true;
          (void)cluster_->PingAllOk(5s);
          return !helper->IsRunning();
        },
        30s, 50ms));
    ASSERT_EQ(helper->exit_code(), 0) << helper->ReadStdout();
    // The broker has dropped the helper's connection (and its trie branch).
    ASSERT_TRUE(WaitUntil([&] { return !cluster_->broker_process()->IsRunning() || cluster_->PingAllOk(5s).ok(); }, 10s));
    ASSERT_TRUE(cluster_->broker_process()->IsRunning())
        << "the broker died after a subscriber with a very long topic left";
  }
  ExpectClusterServing();
  LK_ASSERT_OK(cluster_->KillBroker(SIGTERM));
  EXPECT_EQ(cluster_->broker_process()->exit_code(), 0)
      << "the broker did not stop cleanly after a very long subscription";
}

}  // namespace
}  // namespace ledgerkeep::test
