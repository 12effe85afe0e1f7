// The agent's dispatch path against a scripted broker (real CURVE sockets on
// loopback, tests/support/scripted_broker.h) and a real Agent with a real
// journal: a command whose handler throws is a Failed result and the agent
// answers the next one (issue 13 point 4); a command delivered again, also
// after the agent restarted on the same journal, runs once and is answered
// with the result it already has (DESIGN.md §2, "agents dedupe by cmd_id").
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "agents/agent.h"
#include "agents/agent_journal.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/curve_keys.h"
#include "tests/support/scripted_broker.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_cluster.h"

namespace ledgerkeep::test {
namespace {

using namespace std::chrono_literals;

// Answers a Ping, counting its executions; a Ping whose note is "throw"
// throws what a local destination path over 4096 bytes makes
// std::filesystem throw.
class ProbeHandler final : public CommandHandler {
 public:
  explicit ProbeHandler(std::string lane) : lane_(std::move(lane)) {}
  std::string Lane(const wire::Command&) const override { return lane_; }
  CommandOutcome Execute(const CommandContext& ctx) override {
    ++executions;
    const auto* ping = ctx.command().body_as_Ping();
    if (ping != nullptr && ping->note() != nullptr && ping->note()->str() == "throw") {
      throw std::filesystem::filesystem_error("cannot check the destination", std::string(5000, 'd'),
                                              std::make_error_code(std::errc::filename_too_long));
    }
    wire::PongT pong;
    pong.note = "pong";
    CommandOutcome out;
    out.detail.Set(std::move(pong));
    return out;
  }
  std::atomic<int> executions{0};

 private:
  std::string lane_;
};

wire::CommandBodyUnion Ping(const std::string& note) {
  wire::PingT p;
  p.note = note;
  wire::CommandBodyUnion b;
  b.Set(std::move(p));
  return b;
}

class AgentDispatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LK_ASSERT_OK_AND_ASSIGN(broker_key_, GenerateCurveKeyPair("broker"));
    LK_ASSERT_OK_AND_ASSIGN(agent_key_, GenerateCurveKeyPair("r1"));
    LK_ASSERT_OK_AND_ASSIGN(ports_, PickFreeLoopbackPorts(2));
    broker_ = std::make_unique<ScriptedBroker>(broker_key_, ports_[0], ports_[1]);
  }

  // Starts an agent on the journal in dir_/journal (a restart reopens it)
  // and waits until the scripted broker welcomed it.
  void StartAgent(const std::shared_ptr<ProbeHandler>& handler) {
    AgentOptions o;
    o.config.ctl_port = ports_[0];
    o.config.cmd_port = ports_[1];
    o.config.broker_public_key = broker_key_.public_z85;
    o.config.allow = {{"r1", wire::Role::Replica, agent_key_.public_z85}};
    o.key = agent_key_;
    o.node_id = "r1";
    o.clock = &clock_;  // the test decides when a duplicate may trigger a resend
    LK_ASSERT_OK_AND_ASSIGN(o.journal, AgentJournal::OpenDurable(dir_ / "journal"));
    HandlerMap handlers;
    handlers[wire::CommandBody::Ping] = handler;
    const int hellos = broker_->hellos();
    LK_ASSERT_OK_AND_ASSIGN(agent_, Agent::Start(std::move(o), std::move(handlers)));
    ASSERT_TRUE(broker_->ServeUntil([&] { return broker_->hellos() > hellos; }, 10s)) << "no hello";
  }

  // Sends `cmd` and serves until `n` CommandResult reports about it arrived.
  void SendAndAwaitResults(const wire::CommandT& cmd, size_t n) {
    ASSERT_TRUE(broker_->SendCommand(cmd));
    ASSERT_TRUE(broker_->ServeUntil([&] { return broker_->ResultsFor(cmd.cmd_id).size() >= n; }, 10s))
        << "command " << cmd.cmd_id << ": " << broker_->ResultsFor(cmd.cmd_id).size() << " of " << n
        << " results arrived";
  }

  // A Ping with id `id`, answered: everything sent before it was handled
  // (ctl is in order, and so is the lane).
  void Barrier(uint64_t id) {
    ASSERT_NO_FATAL_FAILURE(SendAndAwaitResults(ScriptedBroker::MakeCommand(id, "r1", Ping("barrier")), 1));
  }

  static const wire::CommandResultT& ResultOf(const wire::ReportT* r) { return *r->body.AsCommandResult(); }

  TempDir dir_{"lk-dispatch-"};
  ManualClock clock_;
  CurveKeyPair broker_key_, agent_key_;
  std::vector<int> ports_;
  std::unique_ptr<ScriptedBroker> broker_;
  std::unique_ptr<Agent> agent_;
};

// ------------------------------------------------------------ exceptions

void ExpectThrowIsAFailedResultAndTheNextCommandIsAnswered(ScriptedBroker& broker, Agent& agent,
                                                           ProbeHandler& handler) {
  const wire::CommandT boom = ScriptedBroker::MakeCommand(1, "r1", Ping("throw"));
  ASSERT_TRUE(broker.SendCommand(boom));
  ASSERT_TRUE(broker.ServeUntil([&] { return !broker.ResultsFor(1).empty(); }, 10s))
      << "no result for the command whose handler threw (agent exited: " << agent.Exited() << ")";
  const wire::CommandResultT& failed = *broker.ResultsFor(1).front()->body.AsCommandResult();
  EXPECT_EQ(failed.status, wire::ResultStatus::Failed);
  EXPECT_EQ(failed.error_code, static_cast<uint16_t>(StatusCode::kInternal));
  EXPECT_NE(failed.message.find("internal error in ping: "), std::string::npos) << failed.message;
  EXPECT_NE(failed.message.find("File name too long"), std::string::npos) << failed.message;
  EXPECT_NE(failed.message.find("; the agent keeps serving"), std::string::npos) << failed.message;

  const wire::CommandT next = ScriptedBroker::MakeCommand(2, "r1", Ping("after"));
  ASSERT_TRUE(broker.SendCommand(next));
  ASSERT_TRUE(broker.ServeUntil([&] { return !broker.ResultsFor(2).empty(); }, 10s))
      << "the agent did not answer the command after the one that threw";
  EXPECT_EQ(broker.ResultsFor(2).front()->body.AsCommandResult()->status, wire::ResultStatus::Ok);
  EXPECT_EQ(handler.executions.load(), 2);
  EXPECT_FALSE(agent.Exited());
}

TEST_F(AgentDispatchTest, AHandlerThatThrowsOnALaneIsAFailedResultAndTheAgentAnswersTheNextCommand) {
  auto handler = std::make_shared<ProbeHandler>("control");
  ASSERT_NO_FATAL_FAILURE(StartAgent(handler));
  ExpectThrowIsAFailedResultAndTheNextCommandIsAnswered(*broker_, *agent_, *handler);
}

TEST_F(AgentDispatchTest, AnInstantHandlerThatThrowsIsAFailedResultAndTheAgentAnswersTheNextCommand) {
  auto handler = std::make_shared<ProbeHandler>("");  // runs on the agent thread itself
  ASSERT_NO_FATAL_FAILURE(StartAgent(handler));
  ExpectThrowIsAFailedResultAndTheNextCommandIsAnswered(*broker_, *agent_, *handler);
}

// ------------------------------------------------------------ exactly once

// The broker has not acknowledged the result yet (it may have lost it), so
// the agent still holds it in its outbox and answers a duplicate with it.
TEST_F(AgentDispatchTest, TheSameCommandDeliveredTwiceRunsOnceAndTheDuplicateIsAnsweredWithTheStoredResult) {
  broker_->set_ack_reports(false);
  auto handler = std::make_shared<ProbeHandler>("control");
  ASSERT_NO_FATAL_FAILURE(StartAgent(handler));
  const wire::CommandT cmd = ScriptedBroker::MakeCommand(42, "r1", Ping("once"));
  ASSERT_NO_FATAL_FAILURE(SendAndAwaitResults(cmd, 1));
  ASSERT_EQ(handler->executions.load(), 1);

  clock_.Advance(1000);  // past the agent's resend pacing, so the duplicate is answered at once
  ASSERT_NO_FATAL_FAILURE(SendAndAwaitResults(cmd, 2));
  ASSERT_NO_FATAL_FAILURE(Barrier(100));
  EXPECT_EQ(handler->executions.load(), 2) << "the duplicate was executed again (want 42 once, then 100)";
  const auto results = broker_->ResultsFor(42);
  for (const auto* r : results) {
    EXPECT_EQ(r->seq, results.front()->seq) << "a second result, not the stored one resent";
    EXPECT_EQ(ResultOf(r).status, wire::ResultStatus::Ok);
    ASSERT_NE(ResultOf(r).detail.AsPong(), nullptr);
    EXPECT_EQ(ResultOf(r).detail.AsPong()->note, "pong");
  }
}

TEST_F(AgentDispatchTest, TheSameCommandAfterAnAgentRestartRunsOnceAndIsAnsweredWithTheStoredResult) {
  broker_->set_ack_reports(false);
  auto handler = std::make_shared<ProbeHandler>("control");
  ASSERT_NO_FATAL_FAILURE(StartAgent(handler));
  const wire::CommandT cmd = ScriptedBroker::MakeCommand(43, "r1", Ping("once"));
  ASSERT_NO_FATAL_FAILURE(SendAndAwaitResults(cmd, 1));
  const uint64_t first_seq = broker_->ResultsFor(43).front()->seq;

  // The agent restarts on the same journal: only what it persisted is left.
  agent_->Stop();
  agent_.reset();
  ASSERT_NO_FATAL_FAILURE(StartAgent(handler));
  // Welcomed, it resends what the broker has not acknowledged: the result.
  ASSERT_TRUE(broker_->ServeUntil([&] { return broker_->ResultsFor(43).size() >= 2; }, 10s));
  clock_.Advance(1000);  // past the agent's resend pacing, so the duplicate is answered at once
  ASSERT_NO_FATAL_FAILURE(SendAndAwaitResults(cmd, 3));
  ASSERT_NO_FATAL_FAILURE(Barrier(100));
  EXPECT_EQ(handler->executions.load(), 2)
      << "the command ran again after the restart (want 43 once, then 100)";
  for (const auto* r : broker_->ResultsFor(43)) {
    EXPECT_EQ(r->seq, first_seq) << "a second result, not the stored one resent";
    EXPECT_EQ(ResultOf(r).status, wire::ResultStatus::Ok);
  }

  // Acknowledged by now, the result leaves the outbox: a late duplicate
  // (a slow PUB copy) is still not executed.
  broker_->set_ack_reports(true);
  const wire::CommandT other = ScriptedBroker::MakeCommand(44, "r1", Ping("ack me"));
  ASSERT_NO_FATAL_FAILURE(SendAndAwaitResults(other, 1));
  ASSERT_TRUE(broker_->SendCommand(cmd));
  ASSERT_NO_FATAL_FAILURE(Barrier(101));
  EXPECT_EQ(handler->executions.load(), 4) << "43 once, then 100, 44 and 101; not 43 again";
}

}  // namespace
}  // namespace ledgerkeep::test
