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
#include "tests/support/scripted_broker.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"

namespace ledgerkeep::test {
namespace {

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
