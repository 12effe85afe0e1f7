// The runbook's curl lines against a real agent on 127.0.0.1:8546 (issue 16):
// the text of each line is the runbook's, byte for byte
// (data/runbook_api_calls.txt, the typographic quote of step 2 included);
// only the destination address is the test's SSH backup host. Each line runs
// as /usr/bin/curl (argv split from the text, no shell), and its effect is
// checked through the CLI: the schedule in `backup status`, the node
// stopped and started in `blocks` and `node status`, the snapshot in
// `backup list`, and the requester in `events`.
//
// Port 8546 is the runbook's: ctest runs this with RESOURCE_LOCK
// agent_port_8546, and the test fails at once, saying so, if something else
// holds the port.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/common/sshd_fixture.h"
#include "tests/integration/agent_http_fixture.h"
#include "tests/support/cli_json.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

using namespace std::chrono_literals;

constexpr int kRunbookPort = 8546;

// The runbook's calls: "%% <what>" starts a block, its lines are the call.
std::vector<std::pair<std::string, std::string>> RunbookCalls() {
  std::ifstream in(std::string(LEDGERKEEP_SOURCE_DIR) + "/tests/integration/data/runbook_api_calls.txt",
                   std::ios::binary);
  std::vector<std::pair<std::string, std::string>> calls;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("%% ", 0) == 0) {
      calls.emplace_back(line.substr(3), "");
    } else if (!calls.empty()) {
      calls.back().second += (calls.back().second.empty() ? "" : "\n") + line;
    }
  }
  return calls;
}

std::string CallText(const std::string& what) {
  for (const auto& [w, text] : RunbookCalls()) {
    if (w.rfind(what, 0) == 0) return text;
  }
  ADD_FAILURE() << "no runbook call '" << what << "' in data/runbook_api_calls.txt";
  return "";
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

// 8546 free right now (bind and release), else what to do about it.
Status RunbookPortFree() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(kRunbookPort);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  const int err = errno;
  ::close(fd);
  if (ok) return Status::OK();
  return Status::Unavailable("127.0.0.1:8546 is taken by another process (" + std::string(std::strerror(err)) +
                             "; `ss -ltnp 'sport = :8546'` shows which). This test runs the runbook's curl lines "
                             "as printed, so its agent must listen on 8546: stop that process and run again");
}

class AgentRunbookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
    ASSERT_EQ(::access("/usr/bin/curl", X_OK), 0) << "the runbook's lines need /usr/bin/curl";
    LK_ASSERT_OK(RunbookPortFree());
    LK_ASSERT_OK(sshd_.Start());
    TestClusterOptions o;
    o.replicas = 1;
    o.clients = 0;
    o.with_ledger = true;
    o.agent_http_listen = {{"r1", "127.0.0.1:8546"}};
    // The node's SSH settings for every backup of this node (the runbook's
    // step 1, "SSH without a password"): the key, the pinned host key, and
    // the port of the test's sshd, which is not 22.
    o.node_config_extra = "[backup]\nssh_options = [\"-o\", \"Port=" + std::to_string(sshd_.port()) +
                          "\", \"-i\", \"" + sshd_.client_key() + "\", \"-o\", \"IdentitiesOnly=yes\", \"-o\", " +
                          "\"UserKnownHostsFile=" + sshd_.pinned_known_hosts() + "\"]\n";
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
    LK_ASSERT_OK(cluster_->StartAll());
    ASSERT_EQ(cluster_->AgentHttpPort("r1"), kRunbookPort);
    ASSERT_TRUE(WaitUntil([&] { return testing::PortAccepts(kRunbookPort); }, 10s))
        << "the agent does not listen on 8546\n" << cluster_->DumpLogs(40);
    // The runbook's address, with the test's backup host in its place.
    // root@: the sshd lets root in with the node's key; the runbook's
    // rsync_user_name stays "vmbc" and user@ in the destination wins.
    dest_ = cluster_->dir() + "/backup-server/r1";
  }

  // Runs one runbook call (with the destination replaced) as /usr/bin/curl.
  RunResult Curl(const std::string& what) {
    std::string text = CallText(what);
    text = Replace(text, "10.72.216.118:/<backup_dir_name>", "root@127.0.0.1:" + dest_);
    text = Replace(text, "10.72.216.118:/backup_dir_name", "root@127.0.0.1:" + dest_);
    std::vector<std::string> argv = ShellWords(text);
    EXPECT_FALSE(argv.empty()) << what;
    if (argv.empty()) return {};
    EXPECT_EQ(argv[0], "curl");
    argv[0] = "/usr/bin/curl";
    ProcessSpec spec;
    spec.argv = argv;
    const std::string base = cluster_->dir() + "/logs/curl-" + std::to_string(++curls_);
    spec.stdout_path = base + ".out";
    spec.stderr_path = base + ".err";
    // Nothing of the developer's environment between curl and the agent.
    spec.env = {{"http_proxy", ""}, {"HTTP_PROXY", ""}, {"no_proxy", "*"}, {"NO_PROXY", "*"},
                {"CURL_HOME", cluster_->dir()}, {"HOME", cluster_->dir()}};
    return RunToCompletion(spec, 120s);
  }

  // The HTTP status curl -v printed ("< HTTP/1.1 200 OK").
  static int VerboseStatus(const RunResult& r) {
    const auto at = r.err.find("< HTTP/1.1 ");
    return at == std::string::npos ? 0 : std::atoi(r.err.c_str() + at + 11);
  }

  RunResult Cli(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"--json"};
    full.insert(full.end(), args.begin(), args.end());
    return cluster_->RunCli(full, 60s);
  }

  testing::SshdServer sshd_;
  std::unique_ptr<TestCluster> cluster_;
  std::string dest_;
  int curls_ = 0;
};

TEST_F(AgentRunbookTest, TheRunbooksCurlLinesWorkAsPrinted) {
  // The data file is the runbook's text: step 2 has its U+201D after the key.
  ASSERT_NE(CallText("step 2").find("\"backup_destination\xE2\x80\x9D: "), std::string::npos);

  // Step 2: schedule.
  RunResult schedule = Curl("step 2");
  ASSERT_EQ(schedule.exit_code, 0) << schedule.Describe();
  ASSERT_EQ(VerboseStatus(schedule), 200) << schedule.Describe() << cluster_->DumpLogs(30);
  auto sj = nlohmann::json::parse(schedule.out, nullptr, false);
  ASSERT_TRUE(sj.is_object()) << schedule.Describe();
  EXPECT_TRUE(sj.value("ok", false)) << sj.dump();
  const std::string warnings = sj["warnings"].dump();
  EXPECT_NE(warnings.find("U+201D"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("placeholder"), std::string::npos) << warnings;
  RunResult status = Cli({"backup", "status", "--node", "r1"});
  ASSERT_EQ(status.exit_code, 0) << status.Describe();
  auto st = Json(status)["r1"];
  EXPECT_EQ(st.value("schedule", ""), "hourly (UTC)") << st.dump();
  EXPECT_EQ(st.value("destination", ""), "root@127.0.0.1:" + dest_) << st.dump();
  EXPECT_EQ(st.value("mode", ""), "rsync") << st.dump();

  // Steps 4 and 9: stop. The node's ledgerd stops.
  for (const char* step : {"step 4", "step 9"}) {
    SCOPED_TRACE(step);
    RunResult stop = Curl(step);
    ASSERT_EQ(stop.exit_code, 0) << stop.Describe();
    auto j = nlohmann::json::parse(stop.out, nullptr, false);
    ASSERT_TRUE(j.is_object()) << stop.Describe();
    EXPECT_TRUE(j.value("ok", false)) << j.dump();
    RunResult blocks = Cli({"blocks", "--node", "r1"});
    ASSERT_EQ(blocks.exit_code, 0) << blocks.Describe();
    EXPECT_FALSE(Json(blocks)["replicas"]["r1"].value("running", true)) << blocks.out;
  }
  RunResult node = Cli({"node", "status", "--node", "r1"});
  EXPECT_NE(node.out.find("\"running\":false"), std::string::npos) << node.Describe();

  // Step 15: run_now, on the stopped node (the runbook's final copy).
  RunResult before = Cli({"backup", "list", "--node", "r1"});
  const size_t snapshots_before = before.exit_code == 0 ? Json(before).value("snapshots", nlohmann::json::array()).size() : 0;
  RunResult run = Curl("step 15");
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  ASSERT_EQ(VerboseStatus(run), 200) << run.Describe() << "\nsshd log:\n" << sshd_.log();
  auto rj = nlohmann::json::parse(run.out, nullptr, false);
  ASSERT_TRUE(rj.is_object()) << run.Describe();
  const std::string snapshot = rj["result"].value("snapshot_id", "");
  EXPECT_FALSE(snapshot.empty()) << rj.dump();
  RunResult list = Cli({"backup", "list", "--node", "r1"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  auto snaps = Json(list)["snapshots"];
  EXPECT_EQ(snaps.size(), snapshots_before + 1) << snaps.dump();
  bool found = false;
  for (const auto& s : snaps) found = found || (s.value("snapshot_id", "") == snapshot && s.value("complete", false));
  EXPECT_TRUE(found) << "no complete snapshot " << snapshot << " in " << snaps.dump();
  EXPECT_TRUE(std::filesystem::exists(dest_ + "/snapshots/" + snapshot + "/DONE"));

  // Steps 16 and 18: start. Running again.
  for (const char* step : {"step 16", "step 18"}) {
    SCOPED_TRACE(step);
    RunResult start = Curl(step);
    ASSERT_EQ(start.exit_code, 0) << start.Describe();
    auto j = nlohmann::json::parse(start.out, nullptr, false);
    ASSERT_TRUE(j.is_object()) << start.Describe();
    EXPECT_TRUE(j.value("ok", false)) << j.dump();
    RunResult blocks = Cli({"blocks", "--node", "r1"});
    ASSERT_EQ(blocks.exit_code, 0) << blocks.Describe();
    EXPECT_TRUE(Json(blocks)["replicas"]["r1"].value("running", false)) << blocks.out;
  }

  // The event log says who asked: the agent, for its HTTP API's caller.
  RunResult events = Cli({"events", "--filter", "command", "--last", "200"});
  ASSERT_EQ(events.exit_code, 0) << events.Describe();
  std::map<std::string, int> by_kind;
  std::istringstream lines(events.out);
  for (std::string line; std::getline(lines, line);) {
    auto e = nlohmann::json::parse(line, nullptr, false);
    if (!e.is_object() || !e.contains("issuer")) continue;
    const std::string issuer = e.value("issuer", "");
    if (issuer.rfind("r1 (agent HTTP API, 127.0.0.1:", 0) == 0) by_kind[e.value("command", "")]++;
  }
  EXPECT_EQ(by_kind["backup-schedule"], 1) << events.out;
  EXPECT_EQ(by_kind["node"], 4) << events.out;
  EXPECT_EQ(by_kind["backup-run"], 1) << events.out;
}

}  // namespace
}  // namespace ledgerkeep::test
