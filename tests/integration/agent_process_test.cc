// The agent process and what it stands on (issue 13): one live connection
// per node identity — a second ledgerkeep-agent with a node's key is refused
// and stops, runs none of the node's commands, and the first keeps serving;
// an agent SIGKILLed and started again at once is accepted; a frozen agent
// that another process replaced is fenced when it resumes.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

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

class AgentProcessTest : public ::testing::Test {
 protected:
  void SetUp() override { LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create({})); }

  // Another ledgerkeep-agent for `node`, with the node's key and a data dir
  // of its own (data/<node>-second), logging to logs/<node>-second.log.
  Result<std::unique_ptr<ChildProcess>> StartSecondAgent(const std::string& node) {
    ProcessSpec spec;
    spec.argv = {BinPath("ledgerkeep-agent"),
                 "--config",
                 cluster_->config_path(),
                 "--key",
                 cluster_->KeyPath(node),
                 "--role",
                 "replica",
                 "--node-id",
                 node,
                 "--data-dir",
                 cluster_->DataDir(node + "-second"),
                 // The first agent of the node serves the HTTP API.
                 "--http-listen",
                 "off"};
    spec.stdout_path = cluster_->LogPath(node + "-second");
    return ChildProcess::Start(std::move(spec));
  }

  // The warn notes about refused second agents in `node`'s status events.
  std::vector<std::string> Refusals(BrokerClient& client, const std::string& node) {
    std::vector<std::string> out;
    auto dump = FetchAllEvents(client, "status." + node);
    if (!dump.ok()) return out;
    for (const auto& env : dump->events) {
      const auto* note = EventOf(env).body_as_Note();
      if (note == nullptr || note->text() == nullptr || note->level() == nullptr) continue;
      if (note->level()->str() == "warn" &&
          note->text()->str().find("refused a second agent") != std::string::npos) {
        out.push_back(note->text()->str());
      }
    }
    return out;
  }

  // Results of command `cmd_id` from `node` in the event log.
  size_t ResultsFrom(BrokerClient& client, const std::string& node, uint64_t cmd_id) {
    auto dump = FetchAllEvents(client, "command." + node);
    size_t n = 0;
    if (!dump.ok()) return 0;
    for (const auto& env : dump->events) {
      const auto* r = EventOf(env).body_as_CommandResult();
      if (r != nullptr && r->cmd_id() == cmd_id) ++n;
    }
    return n;
  }

  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(AgentProcessTest, ASecondAgentWithTheSameKeyIsRefusedRunsNothingAndStopsWhileTheFirstKeepsServing) {
  LK_ASSERT_OK(cluster_->StartAll());
  const pid_t first = cluster_->agent_process("r1")->pid();
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  LK_ASSERT_OK_AND_ASSIGN(auto second, StartSecondAgent("r1"));

  // Refused, loudly: an event says so.
  ASSERT_TRUE(WaitUntil([&] { return !Refusals(*client, "r1").empty(); }, 10s, 50ms))
      << "no refusal in the event log; second agent's log:\n"
      << second->StdoutTail(30);
  EXPECT_NE(Refusals(*client, "r1").front().find("already connected from pid " + std::to_string(first)),
            std::string::npos)
      << Refusals(*client, "r1").front();

  // Commands for r1 while both run (the second one receives them on PUB
  // too): each runs once, on the first.
  std::vector<uint64_t> ids;
  for (int i = 0; i < 3; ++i) {
    LK_ASSERT_OK_AND_ASSIGN(auto done, cluster_->Ping(Node("r1")));
    LK_ASSERT_OK(AllTargetsOk(done));
    ids.push_back(done.cmd_id);
  }
  for (uint64_t id : ids) {
    EXPECT_EQ(ResultsFrom(*client, "r1", id), 1u) << "command " << id << " ran more than once";
    EXPECT_EQ(second->ReadStdout().find("command " + std::to_string(id) + " "), std::string::npos)
        << "the refused agent ran command " << id << ":\n"
        << second->StdoutTail(30);
  }

  // The second stops with the reason; the first is untouched.
  auto code = second->WaitExit(15s);
  ASSERT_TRUE(code.has_value()) << "the refused agent still runs:\n" << second->StdoutTail(30);
  EXPECT_NE(*code, 0);
  const std::string log = second->ReadStdout();
  EXPECT_NE(log.find("node r1 is already connected from another process (pid " + std::to_string(first) +
                     ", since "),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("stop it, or use this node's own key"), std::string::npos) << log;
  ASSERT_TRUE(cluster_->agent_process("r1")->IsRunning());
  EXPECT_EQ(cluster_->agent_process("r1")->pid(), first);
  LK_ASSERT_OK_AND_ASSIGN(auto after, cluster_->Ping(Node("r1")));
  LK_EXPECT_OK(AllTargetsOk(after));
  EXPECT_EQ(cluster_->agent_process("r1")->ReadStdout().find("refused"), std::string::npos);
}

TEST_F(AgentProcessTest, AnAgentKilledAndStartedAgainAtOnceIsAccepted) {
  LK_ASSERT_OK(cluster_->StartAll());
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  for (int round = 0; round < 3; ++round) {
    LK_ASSERT_OK(cluster_->RestartAgent("r1"));  // SIGKILL, reaped, started at once
    LK_ASSERT_OK_AND_ASSIGN(auto done, cluster_->Ping(Node("r1")));
    ASSERT_TRUE(AllTargetsOk(done).ok()) << "round " << round << ": " << AllTargetsOk(done).ToString();
    ASSERT_TRUE(cluster_->agent_process("r1")->IsRunning()) << "round " << round;
  }
  EXPECT_TRUE(Refusals(*client, "r1").empty()) << Refusals(*client, "r1").front();
}

// A SIGSTOPped agent goes silent; once the broker suspects it, a new process
// with its key takes the node over. When the frozen one resumes, it is the
// second connection: refused, and it stops instead of running commands.
TEST_F(AgentProcessTest, AFrozenAgentThatANewProcessReplacedIsFencedWhenItResumes) {
  LK_ASSERT_OK(cluster_->StartAll());
  ChildProcess* frozen = cluster_->agent_process("r1");
  frozen->Kill(SIGSTOP);
  LK_ASSERT_OK(cluster_->WaitNodeState("r1", "suspect", 10s));
  LK_ASSERT_OK_AND_ASSIGN(auto second, StartSecondAgent("r1"));
  LK_ASSERT_OK_AND_ASSIGN(auto served, cluster_->Ping(Node("r1")));
  LK_ASSERT_OK(AllTargetsOk(served));

  frozen->Kill(SIGCONT);
  auto code = frozen->WaitExit(15s);
  ASSERT_TRUE(code.has_value()) << "the resumed agent still runs:\n" << frozen->StdoutTail(30);
  EXPECT_NE(*code, 0);
  EXPECT_NE(frozen->ReadStdout().find("node r1 is already connected from another process (pid " +
                                      std::to_string(second->pid())),
            std::string::npos)
      << frozen->StdoutTail(30);
  ASSERT_TRUE(second->IsRunning()) << second->StdoutTail(30);
  LK_ASSERT_OK_AND_ASSIGN(auto after, cluster_->Ping(Node("r1")));
  LK_EXPECT_OK(AllTargetsOk(after));
}

// Whether, within 5 s, the broker's event log holds a Note on `topic` whose
// text contains `text`.
template <class Client>
bool BrokerHeardNote(Client& client, const std::string& topic, const std::string& text) {
  return WaitUntil(
      [&] {
        auto dump = FetchAllEvents(client, topic);
        if (!dump.ok()) return false;
        for (const auto& env : dump->events) {
          const auto* note = EventOf(env).body_as_Note();
          if (note != nullptr && note->text() != nullptr && note->text()->str().find(text) != std::string::npos)
            return true;
        }
        return false;
      },
      5s, 50ms);
}

// A data directory deleted (or swapped) under a running agent: RocksDB would
// go on writing into deleted files, and every command state and report it
// journals would be gone at the next start. The agent notices within a
// heartbeat or two, says why, tells the broker, and stops.
TEST_F(AgentProcessTest, AnAgentWhoseDataDirectoryIsDeletedStopsAndSaysWhy) {
  LK_ASSERT_OK(cluster_->StartAll());
  ChildProcess* r1 = cluster_->agent_process("r1");
  const std::string dir = cluster_->DataDir("r1");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  ASSERT_FALSE(ec) << ec.message();
  auto code = r1->WaitExit(10s);
  ASSERT_TRUE(code.has_value()) << "the agent runs on without its data directory:\n" << r1->StdoutTail(30);
  EXPECT_NE(*code, 0);
  EXPECT_NE(r1->ReadStdout().find("data directory " + dir + " was deleted while the agent ran"),
            std::string::npos)
      << r1->StdoutTail(30);
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  bool told = BrokerHeardNote(*client, "note.r1", "was deleted");
  EXPECT_TRUE(told) << "the broker was not told";
  // The others are not affected.
  LK_ASSERT_OK_AND_ASSIGN(auto r2, cluster_->Ping(Node("r2")));
  LK_EXPECT_OK(AllTargetsOk(r2));
}

// Regression (CI of 2026-12-07): a data directory deleted while the agent
// was not welcomed (connecting, or the broker away) stopped the agent at
// once; the note could not leave before the Welcome, so the broker was never
// told. The agent now waits for the Welcome (up to 10 heartbeats, at least
// 10 s), runs nothing meanwhile, sends the note, then stops.
TEST_F(AgentProcessTest, ADataDirectoryDeletedWhileTheBrokerIsAwayIsReportedWhenItReturns) {
  LK_ASSERT_OK(cluster_->StartAll());
  ChildProcess* r1 = cluster_->agent_process("r1");
  LK_ASSERT_OK(cluster_->KillBroker());
  std::this_thread::sleep_for(1500ms);  // r1 notices the broker is gone (10 heartbeats) and reconnects
  const std::string dir = cluster_->DataDir("r1");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  ASSERT_FALSE(ec) << ec.message();
  std::this_thread::sleep_for(500ms);  // noticed (each heartbeat), nobody to tell
  LK_ASSERT_OK(cluster_->StartBroker());
  auto code = r1->WaitExit(20s);
  ASSERT_TRUE(code.has_value()) << "the agent runs on without its data directory:\n" << r1->StdoutTail(30);
  EXPECT_NE(*code, 0);
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  bool told = BrokerHeardNote(*client, "note.r1", "was deleted");
  EXPECT_TRUE(told) << "the broker was not told:\n" << r1->StdoutTail(30);
}

TEST_F(AgentProcessTest, AnAgentWhoseDataDirectoryIsReplacedStopsAndSaysWhy) {
  LK_ASSERT_OK(cluster_->StartAll());
  ChildProcess* r1 = cluster_->agent_process("r1");
  const std::string dir = cluster_->DataDir("r1");
  std::filesystem::rename(dir, dir + "-moved");
  std::filesystem::create_directories(dir);
  auto code = r1->WaitExit(10s);
  ASSERT_TRUE(code.has_value()) << "the agent runs on in a directory that is not its own:\n"
                                << r1->StdoutTail(30);
  EXPECT_NE(*code, 0);
  EXPECT_NE(r1->ReadStdout().find("data directory " + dir + " was replaced by another directory"),
            std::string::npos)
      << r1->StdoutTail(30);
}

}  // namespace
}  // namespace ledgerkeep::test
