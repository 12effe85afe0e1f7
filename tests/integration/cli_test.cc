// The real `ledgerkeep` binary against a real cluster: JSON output parses,
// global flags work on either side of the subcommand, and the exit codes of
// cli/cli_app.h (0 ok, 1 failed, 2 usage, 3 unreachable) hold.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <sstream>

#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Every non-empty line of `text` as JSON (a parse failure is a test failure).
std::vector<json> JsonLines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create({}));
    LK_ASSERT_OK(cluster_->StartAll());
  }

  void ExpectPingJsonOk(const RunResult& r) {
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    json j = json::parse(r.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.Describe();
    EXPECT_EQ(j.value("ok", false), true) << r.out;
    EXPECT_EQ(j.value("finished", false), true) << r.out;
    ASSERT_TRUE(j.contains("targets")) << r.out;
    for (const auto& n : cluster_->AgentNodes()) {
      ASSERT_TRUE(j["targets"].contains(n)) << n << " missing from " << r.out;
      EXPECT_EQ(j["targets"][n].value("result", ""), "Ok") << r.out;
    }
  }

  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(CliTest, NodesJsonListsEveryNodeAlive) {
  RunResult r = cluster_->RunCli({"nodes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  json j = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(j.is_array()) << r.Describe();
  std::set<std::string> seen;
  for (const auto& n : j) {
    seen.insert(n.value("node", ""));
    EXPECT_EQ(n.value("state", ""), "alive") << n.dump();
  }
  EXPECT_EQ(seen, std::set<std::string>(cluster_->AgentNodes().begin(), cluster_->AgentNodes().end()));
}

TEST_F(CliTest, JsonFlagWorksBeforeAndAfterTheSubcommand) {
  ExpectPingJsonOk(cluster_->RunCli({"--json", "ping"}));
  ExpectPingJsonOk(cluster_->RunCli({"ping", "--json"}));
}

TEST_F(CliTest, PingToAnUnknownNodeExitsWithUsageError) {
  RunResult r = cluster_->RunCli({"ping", "--node", "nosuch"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_NE(r.err.find("nosuch"), std::string::npos) << r.Describe();
}

TEST_F(CliTest, BadFlagOrSubcommandExitsWithUsageError) {
  RunResult bad_flag = cluster_->RunCli({"nodes", "--no-such-flag"});
  EXPECT_EQ(bad_flag.exit_code, 2) << bad_flag.Describe();
  RunResult bad_sub = cluster_->RunCli({"frobnicate"});
  EXPECT_EQ(bad_sub.exit_code, 2) << bad_sub.Describe();
  RunResult bad_value = cluster_->RunCli({"ping", "--role", "janitor"});
  EXPECT_EQ(bad_value.exit_code, 2) << bad_value.Describe();
}

TEST_F(CliTest, StoppedBrokerExitsUnreachable) {
  LK_ASSERT_OK(cluster_->KillBroker(SIGTERM));
  EXPECT_EQ(cluster_->broker_process()->exit_code(), 0) << "the broker did not stop cleanly on SIGTERM";
  const auto start = std::chrono::steady_clock::now();
  RunResult r = cluster_->RunCli({"nodes", "--timeout-ms", "1000"});
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.exit_code, 3) << r.Describe();
  EXPECT_LT(took, 10s) << "--timeout-ms 1000 was not honoured";
  RunResult ping = cluster_->RunCli({"--timeout-ms", "1000", "ping"});
  EXPECT_EQ(ping.exit_code, 3) << ping.Describe();
}

TEST_F(CliTest, EventsFromStartJsonPrintsDenseSequence) {
  LK_ASSERT_OK(cluster_->PingAllOk());
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  LK_ASSERT_OK_AND_ASSIGN(auto head, client->FetchEvents(UINT64_MAX, 1, ""));
  RunResult r = cluster_->RunCli({"events", "--from-start", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  auto lines = JsonLines(r.out);
  ASSERT_GE(lines.size(), head.head_seq) << r.out;
  for (size_t i = 0; i < lines.size(); ++i) {
    ASSERT_EQ(lines[i].value("seq", uint64_t{0}), i + 1) << lines[i].dump();
  }
}

TEST_F(CliTest, EventsFilterShowsTheLastMatchingEventsBehindManyNewerOnes) {
  // `events --filter command.r4` was empty: the filter was applied to the
  // last N events of the whole log, here all about r2.
  wire::TargetT r1;
  r1.node_id = "r1";
  for (int i = 0; i < 2; ++i) {
    LK_ASSERT_OK_AND_ASSIGN(auto st, cluster_->Ping(r1));
    LK_ASSERT_OK(AllTargetsOk(st));
  }
  wire::TargetT r2;
  r2.node_id = "r2";
  for (int i = 0; i < 5; ++i) {
    LK_ASSERT_OK_AND_ASSIGN(auto st, cluster_->Ping(r2));
    LK_ASSERT_OK(AllTargetsOk(st));
  }
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  LK_ASSERT_OK_AND_ASSIGN(auto matching, FetchAllEvents(*client, "command.r1"));
  ASSERT_GE(matching.events.size(), 2u);
  std::vector<uint64_t> want;
  for (size_t i = matching.events.size() - 2; i < matching.events.size(); ++i)
    want.push_back(EventOf(matching.events[i]).seq());
  ASSERT_GT(matching.head_seq, want.back() + 2) << "the newest events must not be r1's";

  RunResult r = cluster_->RunCli({"events", "--filter", "command.r1", "--last", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::vector<uint64_t> got;
  for (const auto& j : JsonLines(r.out)) got.push_back(j.value("seq", uint64_t{0}));
  EXPECT_EQ(got, want) << r.out;
}

TEST_F(CliTest, EventsFollowShowsAnEventProducedAfterItStarted) {
  LK_ASSERT_OK_AND_ASSIGN(auto follow,
                          cluster_->StartCli({"events", "--follow", "--json", "--filter", "command"}, "follow"));
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator());
  wire::TargetT all;
  all.all = true;
  wire::PingT ping;
  ping.note = "follow me";
  wire::CommandBodyUnion body;
  body.Set(std::move(ping));
  LK_ASSERT_OK_AND_ASSIGN(auto issued, client->Issue(all, std::move(body), 10'000));
  LK_ASSERT_OK_AND_ASSIGN(auto done, client->Wait(issued.cmd_id, 10'000, nullptr));
  LK_ASSERT_OK(AllTargetsOk(done));

  // The follower prints every event of that command the log holds:
  // CommandIssued, the results (an instant ping has no separate ack) and
  // CommandFinished.
  LK_ASSERT_OK_AND_ASSIGN(auto logged, FetchAllEvents(*client, "command"));
  size_t want = 0;
  for (const auto& ev : logged.events) {
    const wire::Event* e = ev->body_as_Event();
    uint64_t id = 0;
    if (const auto* c = e->body_as_CommandIssued()) id = c->cmd_id();
    if (const auto* c = e->body_as_CommandResult()) id = c->cmd_id();
    if (const auto* c = e->body_as_Ack()) id = c->cmd_id();
    if (const auto* c = e->body_as_CommandFinished()) id = c->cmd_id();
    if (id == issued.cmd_id) ++want;
  }
  ASSERT_EQ(want, 2 + cluster_->AgentNodes().size());
  std::vector<json> mine;
  const bool shown = WaitUntil(
      [&] {
        mine.clear();
        for (auto& j : JsonLines(follow->ReadStdout())) {
          if (j.value("cmd_id", uint64_t{0}) == issued.cmd_id) mine.push_back(j);
        }
        return mine.size() >= want;
      },
      10s, 20ms);
  EXPECT_TRUE(shown) << "events --follow showed " << mine.size() << " of " << want
                     << " events of command " << issued.cmd_id << "\n--- stdout ---\n"
                     << follow->ReadStdout() << "--- stderr ---\n"
                     << ReadFile(follow->spec().stderr_path);
  EXPECT_TRUE(follow->IsRunning()) << "events --follow exited";
  for (size_t i = 1; i < mine.size(); ++i) {
    EXPECT_LT(mine[i - 1].value("seq", uint64_t{0}), mine[i].value("seq", uint64_t{0}));
  }
  follow->Kill(SIGINT);
  EXPECT_TRUE(follow->WaitExit(5s).has_value()) << "events --follow ignored SIGINT";
}

}  // namespace
}  // namespace ledgerkeep::test
