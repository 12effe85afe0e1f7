// The agent's side of liveness, against a scripted broker: real CURVE
// sockets on loopback (ROUTER `ctl`, PUB `cmd`) driven by the test, and a
// real Agent. A busy agent sends no heartbeats (its reports show it is
// alive), an idle one does, and a ReportAck from another broker instance
// makes it say Hello again.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "agents/agent.h"
#include "agents/ping_handler.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/curve_keys.h"
#include "common/zmq_util.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"

namespace ledgerkeep::test {
namespace {

using Clock = std::chrono::steady_clock;

class ScriptedBroker {
 public:
  ScriptedBroker(const CurveKeyPair& key, int ctl_port, int cmd_port) {
    for (zmq::socket_t* s : {&ctl_, &pub_}) {
      s->set(zmq::sockopt::curve_server, 1);
      s->set(zmq::sockopt::curve_secretkey, key.secret_z85);
      s->set(zmq::sockopt::linger, 0);
    }
    ctl_.bind("tcp://127.0.0.1:" + std::to_string(ctl_port));
    pub_.bind("tcp://127.0.0.1:" + std::to_string(cmd_port));
  }

  // Receives for `ms`, answering Hello with Welcome and Reports with a
  // ReportAck from `instance`; counts what arrived by body type.
  std::map<wire::Body, int> Serve(int ms, const std::string& instance, bool send_pings = false) {
    std::map<wire::Body, int> seen;
    const auto end = Clock::now() + std::chrono::milliseconds(ms);
    auto next_ping = Clock::now();
    while (Clock::now() < end) {
      if (send_pings && !agent_rid_.empty() && Clock::now() >= next_ping) {
        SendPing();
        next_ping = Clock::now() + std::chrono::milliseconds(50);
      }
      zmq::pollitem_t item{ctl_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(10));
      while (auto frames = RecvMultipartNoWait(ctl_)) {
        if (frames->size() != 2) continue;
        auto env = DecodeEnvelope((*frames)[1].data(), (*frames)[1].size());
        if (!env.ok()) continue;
        const wire::Body type = (*env)->body_type();
        ++seen[type];
        agent_rid_ = (*frames)[0].to_string();
        if (type == wire::Body::Hello) {
          wire::WelcomeT w;
          w.broker_instance = instance;
          w.node_index = 1;
          w.stored_report_seq = last_seq_;
          Send(std::move(w));
        } else if (type == wire::Body::Heartbeat) {
          wire::HeartbeatAckT a;
          a.broker_instance = instance;
          Send(std::move(a));
        } else if (type == wire::Body::Report) {
          last_seq_ = std::max(last_seq_, (*env)->body_as_Report()->seq());
          wire::ReportAckT a;
          a.upto_seq = last_seq_;
          a.broker_instance = instance;
          Send(std::move(a));
        }
      }
    }
    return seen;
  }

 private:
  template <typename T>
  void Send(T body) {
    EnvelopeHeader h;
    h.sender = "broker";
    h.msg_id = next_msg_id_++;
    wire::BodyUnion b;
    b.Set(std::move(body));
    SendFramesNoWait(ctl_, {agent_rid_, BuildEnvelope(h, std::move(b))});
  }

  // A Ping addressed to the agent, delivered directly over ctl.
  void SendPing() {
    wire::CommandT cmd;
    cmd.cmd_id = next_cmd_id_++;
    cmd.issued_at_ms = MonotonicMs();
    cmd.deadline_ms = INT64_MAX;
    cmd.targets = {"r1"};
    cmd.issuer = "test";
    cmd.body.Set(wire::PingT{});
    Send(std::move(cmd));
  }

  zmq::context_t ctx_{1};
  zmq::socket_t ctl_{ctx_, zmq::socket_type::router};
  zmq::socket_t pub_{ctx_, zmq::socket_type::pub};
  std::string agent_rid_;
  uint64_t last_seq_ = 0;
  uint64_t next_msg_id_ = 1;
  uint64_t next_cmd_id_ = 1;
};

TEST(AgentLivenessTest, BusyAgentSendsNoHeartbeatsIdleOneDoesAndANewBrokerInstanceGetsAHello) {
  LK_ASSERT_OK_AND_ASSIGN(auto broker_key, GenerateCurveKeyPair("broker"));
  LK_ASSERT_OK_AND_ASSIGN(auto agent_key, GenerateCurveKeyPair("r1"));
  LK_ASSERT_OK_AND_ASSIGN(auto ports, PickFreeLoopbackPorts(2));
  ScriptedBroker broker(broker_key, ports[0], ports[1]);

  AgentOptions o;
  o.config.ctl_port = ports[0];
  o.config.cmd_port = ports[1];
  o.config.broker_public_key = broker_key.public_z85;
  o.config.heartbeat_ms = 400;
  o.config.allow = {{"r1", wire::Role::Replica, agent_key.public_z85}};
  o.key = agent_key;
  o.node_id = "r1";
  o.journal = AgentJournal::InMemory();
  LK_ASSERT_OK_AND_ASSIGN(auto agent, Agent::Start(std::move(o), DefaultHandlers(wire::Role::Replica)));

  // Welcomed, then idle: a heartbeat every 400 ms.
  auto connecting = broker.Serve(1500, "A");
  ASSERT_GE(connecting[wire::Body::Hello], 1) << "the agent never said hello";
  auto idle = broker.Serve(1600, "A");
  EXPECT_GE(idle[wire::Body::Heartbeat], 2) << "an idle agent must heartbeat";

  // Busy: a Ping every 50 ms, each answered with a Report. No heartbeat is
  // needed (the first 450 ms may still hold one from the idle time).
  broker.Serve(450, "A", /*send_pings=*/true);
  auto busy = broker.Serve(1000, "A", /*send_pings=*/true);
  EXPECT_GE(busy[wire::Body::Report], 10) << "the pings were not answered";
  EXPECT_EQ(busy[wire::Body::Heartbeat], 0) << "a busy agent sent heartbeats";

  // A report ack from a restarted broker (another instance): Hello again,
  // even though the agent is busy and sends no heartbeats.
  auto restarted = broker.Serve(1000, "B", /*send_pings=*/true);
  EXPECT_GE(restarted[wire::Body::Hello], 1) << "the agent did not notice the new broker instance";
  agent->Stop();
}

}  // namespace
}  // namespace ledgerkeep::test
