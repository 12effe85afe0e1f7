// The broker's HTTP side through a real cluster (issue 16): the token, the
// JSON API, the event stream resumed after a cut connection, /metrics
// (checked by promtool) changing after a backup and a maintenance run, what
// it shows surviving a broker restart, and bad requests (including a seeded
// mutation loop) that get a 4xx while the broker keeps serving.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "tests/integration/maintenance_fixture.h"
#include "tests/support/http_test_client.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The value of one series in a Prometheus text exposition ("name{labels}"
// exactly as printed), or nullopt when it is not there.
std::optional<double> Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

class BrokerHttpTest : public ::testing::Test {
 protected:
  void StartCluster() {
    TestClusterOptions o;
    o.replicas = 1;
    o.clients = 0;
    o.with_ledger = true;
    o.ledger_blocks_per_sec = 200;
    o.ledger_payload_bytes = 512;
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
    LK_ASSERT_OK(cluster_->StartAll());
    port_ = cluster_->BrokerHttpPort();
    ASSERT_TRUE(WaitUntil([&] { return cluster_->BrokerHttpToken().ok(); }, 10s));
    token_ = *cluster_->BrokerHttpToken();
  }
  std::map<std::string, std::string> Auth() const { return {{"Authorization", "Bearer " + token_}}; }
  HttpReply Get(const std::string& target, bool auth = true) {
    auto r = HttpRequest(port_, "GET", target, auth ? Auth() : std::map<std::string, std::string>{});
    EXPECT_TRUE(r.ok()) << target << ": " << r.status().ToString();
    return r.ok() ? *r : HttpReply{};
  }
  nlohmann::json GetJson(const std::string& target) {
    HttpReply r = Get(target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << target << " is not JSON: " << r.body;
    return j;
  }
  RunResult Cli(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"--json"};
    full.insert(full.end(), args.begin(), args.end());
    return cluster_->RunCli(full, 120s);
  }
  void BackupNow() {
    RunResult r = Cli({"backup", "run-now", "--node", "r1", "--destination", cluster_->dir() + "/backups/r1"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }
  // promtool's verdict on a metrics text: "" when it parses, else why not;
  // nullopt when promtool is not installed.
  std::optional<std::string> Promtool(const std::string& metrics) {
    if (!fs::exists("/usr/bin/promtool")) return std::nullopt;
    const std::string file = cluster_->dir() + "/metrics.txt";
    std::ofstream(file) << metrics;
    ProcessSpec spec;
    // A fixed script; the file name is an argument, never part of it.
    spec.argv = {"/bin/sh", "-c", "exec /usr/bin/promtool check metrics < \"$1\"", "sh", file};
    spec.stdout_path = cluster_->dir() + "/promtool.out";
    RunResult r = RunToCompletion(spec, 30s);
    return r.exit_code == 0 ? "" : r.Describe();
  }

  std::unique_ptr<TestCluster> cluster_;
  int port_ = 0;
  std::string token_;
};

TEST_F(BrokerHttpTest, HealthAndMetricsAreOpenTheApiNeedsTheTokenFromAPrivateFile) {
  StartCluster();
  struct stat st{};
  ASSERT_EQ(::stat((cluster_->dir() + "/keys/http.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the broker creates its token file private";

  HttpReply health = Get("/healthz", /*auth=*/false);
  EXPECT_EQ(health.status, 200) << health.body;
  auto h = nlohmann::json::parse(health.body);
  EXPECT_EQ(h["status"], "ok");
  EXPECT_EQ(h["nodes"], 1);
  EXPECT_EQ(Get("/metrics", false).status, 200);

  for (const std::string path : {"/api/nodes", "/api/backups", "/api/maintenance/latest", "/api/events"}) {
    HttpReply none = Get(path, /*auth=*/false);
    EXPECT_EQ(none.status, 401) << path;
    EXPECT_EQ(none.headers["www-authenticate"].rfind("Bearer", 0), 0u) << path;
    EXPECT_NE(none.body.find("Authorization: Bearer"), std::string::npos) << "says what is needed: " << none.body;
    auto wrong = HttpRequest(port_, "GET", path, {{"Authorization", "Bearer " + token_ + "x"}});
    ASSERT_TRUE(wrong.ok());
    EXPECT_EQ(wrong->status, 401) << path << " with a wrong token";
    auto basic = HttpRequest(port_, "GET", path, {{"Authorization", "Basic " + token_}});
    ASSERT_TRUE(basic.ok());
    EXPECT_EQ(basic->status, 401) << path << " with another scheme";
  }
  nlohmann::json nodes = GetJson("/api/nodes");
  ASSERT_EQ(nodes["nodes"].size(), 1u) << nodes.dump();
  EXPECT_EQ(nodes["nodes"][0]["node"], "r1");
  EXPECT_EQ(nodes["nodes"][0]["role"], "replica");
  EXPECT_EQ(nodes["nodes"][0]["state"], "alive");

  // The page is served without the token (it asks for it).
  HttpReply page = Get("/", false);
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.headers["content-type"].find("text/html"), std::string::npos);
  EXPECT_NE(page.headers["content-security-policy"].find("default-src 'none'"), std::string::npos);
}

TEST_F(BrokerHttpTest, AGroupReadableTokenFileStopsTheBrokerSayingHowToFixIt) {
  StartCluster();
  LK_ASSERT_OK(cluster_->KillBroker(SIGTERM));
  const std::string token_file = cluster_->dir() + "/keys/http.token";
  ASSERT_EQ(::chmod(token_file.c_str(), 0640), 0);
  Status started = cluster_->StartBroker();
  ASSERT_FALSE(started.ok()) << "a broker with a readable token file must not serve";
  EXPECT_NE(started.message().find("exited with code 2"), std::string::npos) << started.ToString();
  EXPECT_NE(started.message().find("chmod 600 " + token_file), std::string::npos) << started.ToString();
}

TEST_F(BrokerHttpTest, EventStreamCutMidwayResumesWithLastEventIdWithNoGapAndNoDuplicate) {
  StartCluster();
  // Some history, then a stream from the start.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Cli({"ping", "--node", "r1"}).exit_code, 0);
  LK_ASSERT_OK_AND_ASSIGN(SseReader first, SseReader::Open(port_, "/api/events?since=0", Auth()));
  ASSERT_EQ(first.status(), 200);
  std::vector<uint64_t> seen;
  std::string first_data;
  while (seen.size() < 5) {
    LK_ASSERT_OK_AND_ASSIGN(auto ev, first.Next(10s));
    ASSERT_TRUE(ev.has_value()) << "no event within 10 s after " << seen.size();
    if (seen.empty()) first_data = ev->data;
    seen.push_back(ev->id);
  }
  auto j = nlohmann::json::parse(first_data, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << "each message's data is one JSON object: " << first_data;
  EXPECT_EQ(j["seq"], seen[0]);
  first.Close();  // cut mid-stream, as a dying client would

  // The log moves on while nobody listens.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Cli({"ping", "--node", "r1"}).exit_code, 0);
  auto head = nlohmann::json::parse(Get("/healthz", false).body)["event_log_head"].get<uint64_t>();
  ASSERT_TRUE(WaitUntil(
      [&] {
        head = nlohmann::json::parse(Get("/healthz", false).body)["event_log_head"].get<uint64_t>();
        return head > seen.back() + 6;
      },
      10s));

  auto headers = Auth();
  headers["Last-Event-ID"] = std::to_string(seen.back());
  LK_ASSERT_OK_AND_ASSIGN(SseReader second, SseReader::Open(port_, "/api/events?since=0", headers));
  ASSERT_EQ(second.status(), 200);
  while (seen.back() < head) {
    LK_ASSERT_OK_AND_ASSIGN(auto ev, second.Next(10s));
    ASSERT_TRUE(ev.has_value()) << "stream stalled at " << seen.back() << " (head " << head << ")";
    seen.push_back(ev->id);
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_EQ(seen[i], i + 1) << "event ids must run 1, 2, 3, ... with no gap and no duplicate";
  }

  // A live event reaches an open stream.
  ASSERT_EQ(Cli({"ping", "--node", "r1"}).exit_code, 0);
  LK_ASSERT_OK_AND_ASSIGN(auto live, second.Next(10s));
  ASSERT_TRUE(live.has_value()) << "a new event did not reach the open stream";
  EXPECT_EQ(live->id, seen.back() + 1);
}

TEST_F(BrokerHttpTest, MetricsParseAndChangeAfterABackupAndTheApiShowsItAfterABrokerRestart) {
  StartCluster();
  const std::string before = Get("/metrics", false).body;
  if (auto verdict = Promtool(before)) {
    EXPECT_EQ(*verdict, "") << "promtool check metrics refused the broker's metrics:\n" << before;
  }
  EXPECT_EQ(Sample(before, "ledgerkeep_node_up{node=\"r1\",role=\"replica\"}"), 1.0) << before;
  EXPECT_EQ(Sample(before, "ledgerkeep_backup_last_success_timestamp_seconds{node=\"r1\"}"), std::nullopt)
      << "no backup series before the node's first run";

  const double t0 = static_cast<double>(Clock::System()->NowMs()) / 1000.0;
  BackupNow();
  std::string after;
  ASSERT_TRUE(WaitUntil(
      [&] {
        after = Get("/metrics", false).body;
        return Sample(after, "ledgerkeep_backup_last_success_timestamp_seconds{node=\"r1\"}").has_value();
      },
      10s))
      << after;
  if (auto verdict = Promtool(after)) {
    EXPECT_EQ(*verdict, "") << after;
  }
  EXPECT_GE(Sample(after, "ledgerkeep_backup_last_success_timestamp_seconds{node=\"r1\"}").value_or(-1), t0 - 1);
  EXPECT_EQ(Sample(after, "ledgerkeep_backup_last_run_success{node=\"r1\"}"), 1.0);
  EXPECT_EQ(Sample(after, "ledgerkeep_backup_runs_total{node=\"r1\",result=\"success\"}"), 1.0);
  EXPECT_GT(Sample(after, "ledgerkeep_backup_sent_bytes_total{node=\"r1\"}").value_or(-1), 0.0);
  EXPECT_EQ(Sample(after, "ledgerkeep_backup_duration_seconds_count{node=\"r1\"}"), 1.0);
  EXPECT_GT(Sample(after, "ledgerkeep_event_log_head_sequence").value_or(-1),
            Sample(before, "ledgerkeep_event_log_head_sequence").value_or(-1));
  EXPECT_GE(Sample(after, "ledgerkeep_commands_total{kind=\"backup-run\",result=\"ok\"}").value_or(0), 1.0) << after;

  nlohmann::json backups = GetJson("/api/backups");
  ASSERT_EQ(backups["nodes"].size(), 1u) << backups.dump();
  const nlohmann::json& r1 = backups["nodes"][0];
  EXPECT_EQ(r1["node"], "r1");
  EXPECT_TRUE(r1["last"]["ok"].get<bool>());
  const std::string snapshot = r1["last"]["snapshot_id"];
  EXPECT_FALSE(snapshot.empty());

  // What the HTTP side shows comes from the durable log: a new broker
  // process shows the same.
  LK_ASSERT_OK(cluster_->KillBroker(SIGKILL));
  LK_ASSERT_OK(cluster_->StartBroker());
  nlohmann::json again;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = HttpRequest(port_, "GET", "/api/backups", Auth());
        if (!r.ok() || r->status != 200) return false;
        again = nlohmann::json::parse(r->body, nullptr, false);
        return !again.is_discarded() && again["nodes"].size() == 1 && !again["nodes"][0]["last"].is_null();
      },
      15s))
      << again.dump();
  EXPECT_EQ(again["nodes"][0]["last"]["snapshot_id"], snapshot);
  const std::string restarted = Get("/metrics", false).body;
  EXPECT_EQ(Sample(restarted, "ledgerkeep_backup_runs_total{node=\"r1\",result=\"success\"}"), 1.0) << restarted;
}

TEST_F(BrokerHttpTest, BadRequestsGetA4xxWithAMessageAndTheBrokerKeepsServing) {
  StartCluster();
  struct Case {
    std::string method, target, body;
    bool auth;
    int want;
  };
  const std::vector<Case> cases = {
      {"GET", "/nope", "", true, 404},
      {"GET", "/api/../../etc/passwd", "", true, 404},
      {"GET", "/api/nodes/../../../etc/passwd", "", true, 404},
      {"POST", "/api/nodes", "{}", true, 405},
      {"DELETE", "/metrics", "", false, 405},
      {"GET", "/api/maintenance/abc", "", true, 400},
      {"GET", "/api/maintenance/;rm%20-rf%20~", "", true, 400},
      {"GET", "/api/maintenance/99999", "", true, 404},
      {"GET", "/api/events?since=-1", "", true, 400},
      {"GET", "/api/events?since=1e9", "", true, 400},
      {"GET", "/api/events?since=99999999999999999999999", "", true, 400},
      {"GET", "/api/events?since=0&prefix=$(reboot)", "", true, 400},
      {"POST", "/api/backups", std::string(1 << 20, 'x'), true, 413},
  };
  for (const auto& c : cases) {
    auto r = HttpRequest(port_, c.method, c.target, c.auth ? Auth() : std::map<std::string, std::string>{}, c.body);
    ASSERT_TRUE(r.ok()) << c.method << " " << c.target << ": " << r.status().ToString();
    EXPECT_EQ(r->status, c.want) << c.method << " " << c.target << ": " << r->body;
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << c.method << " " << c.target << " did not answer JSON: " << r->body;
    EXPECT_FALSE(j.value("error", "").empty()) << "a 4xx says why: " << r->body;
  }
  // Not HTTP at all, and a request line far too long.
  auto garbage = HttpRaw(port_, std::string("\x16\x03\x01\x02\x00 hello\r\n\r\n", 16), 5s);
  if (garbage.ok()) {
    EXPECT_GE(garbage->status, 400);
  }
  auto long_line = HttpRaw(port_, "GET /" + std::string(100'000, 'a') + " HTTP/1.1\r\n\r\n", 5s);
  if (long_line.ok()) {
    EXPECT_GE(long_line->status, 400);
  }

  // Slow clients (half a request, then nothing) hold connections; others
  // are served meanwhile, and the stalled ones are dropped after the read
  // timeout.
  std::vector<StalledConnection> stalled;
  for (int i = 0; i < 6; ++i) {
    LK_ASSERT_OK_AND_ASSIGN(auto c, StalledConnection::Open(port_, "GET /api/nod"));
    stalled.push_back(std::move(c));
  }
  auto during = HttpRequest(port_, "GET", "/healthz", {}, "", 2s);
  ASSERT_TRUE(during.ok()) << during.status().ToString();
  EXPECT_EQ(during->status, 200);
  EXPECT_EQ(Get("/api/nodes").status, 200);
  EXPECT_TRUE(WaitUntil([&] { return stalled[0].ClosedByServer(); }, 15s))
      << "a client that never finishes its request is dropped";
}

// A seeded loop of mutated requests: every answer is an HTTP reply with a
// JSON body (or the event stream), none is a 5xx, and the broker still
// serves afterwards. The seed is printed so a failure can be replayed.
TEST_F(BrokerHttpTest, MutatedRequestsNeverGetA5xxAndTheBrokerKeepsServing) {
  StartCluster();
  const uint32_t seed = 20261207;
  std::mt19937 rng(seed);
  std::printf("mutation loop seed %u\n", seed);
  const std::vector<std::string> methods = {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "G\x01T", ""};
  const std::vector<std::string> paths = {
      "/healthz", "/metrics", "/api/nodes", "/api/backups", "/api/maintenance/latest", "/api/maintenance/1",
      "/api/events?since=999999999", "/", "/api/", "/api/maintenance/", "/%2e%2e/%2e%2e/etc/passwd",
      "/api/nodes?x=" + std::string(3000, 'y'), "/api/maintenance/18446744073709551616", "/api/events?since=&prefix="};
  auto pick = [&](const auto& v) { return v[rng() % v.size()]; };
  auto mutate = [&](std::string s) {
    if (s.empty()) return s;
    switch (rng() % 5) {
      case 0: s[rng() % s.size()] = static_cast<char>(rng() % 256); break;
      case 1: s.resize(rng() % s.size()); break;
      case 2: s.insert(rng() % s.size(), pick(std::vector<std::string>{"%00", "..", "\xe2\x80\x9d", "\r\n", "'\";"})); break;
      case 3: s += s; break;
      default: break;
    }
    return s;
  };
  int answered = 0, no_answer = 0;
  std::map<int, int> codes;
  for (int i = 0; i < 300; ++i) {
    std::string req = mutate(pick(methods)) + " " + mutate(pick(paths)) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    if (rng() % 2) req += "Authorization: " + mutate("Bearer " + token_) + "\r\n";
    if (rng() % 3 == 0) req += mutate("Content-Length: 12") + "\r\n";
    if (rng() % 4 == 0) req += mutate("Last-Event-ID: 5") + "\r\n";
    req += "\r\n";
    if (rng() % 3 == 0) req += mutate("{\"a\": [1,2]}");
    auto r = HttpRaw(port_, req, 600ms);
    if (!r.ok()) {
      ++no_answer;  // e.g. a body announced and never sent: the server waits for it
      continue;
    }
    ++answered;
    codes[r->status]++;
    ASSERT_LT(r->status, 500) << "request " << i << " (seed " << seed << "): " << req << "\n-> " << r->body;
  }
  std::string summary;
  for (auto [c, n] : codes) summary += std::to_string(c) + ":" + std::to_string(n) + " ";
  std::printf("answered %d (%s), no answer %d\n", answered, summary.c_str(), no_answer);
  EXPECT_GT(answered, 200);
  EXPECT_TRUE(cluster_->broker_process()->IsRunning());
  EXPECT_EQ(Get("/healthz", false).status, 200);
  EXPECT_EQ(Get("/api/nodes").status, 200);
}

// A maintenance run through the HTTP side: /api/maintenance/latest and by
// id, and its outcome and pause in /metrics.
class BrokerHttpMaintenanceTest : public MaintenanceTest {};

TEST_F(BrokerHttpMaintenanceTest, AMaintenanceRunShowsByIdAndAsLatestAndItsFiguresReachTheMetrics) {
  StartCluster();
  ConfigureAll();
  ASSERT_TRUE(WaitUntil([&] { return cluster_->BrokerHttpToken().ok(); }, 10s));
  const std::string token = *cluster_->BrokerHttpToken();
  const int port = cluster_->BrokerHttpPort();
  const std::map<std::string, std::string> auth = {{"Authorization", "Bearer " + token}};
  auto none = HttpRequest(port, "GET", "/api/maintenance/latest", auth);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->status, 404) << none->body;

  RunResult run = Cli(RunArgs({"--archive", "http-test"}), 180s);
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  nlohmann::json latest;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = HttpRequest(port, "GET", "/api/maintenance/latest", auth);
        if (!r.ok() || r->status != 200) return false;
        latest = nlohmann::json::parse(r->body, nullptr, false);
        return !latest.is_discarded() && latest.value("finished", false);
      },
      20s))
      << latest.dump();
  EXPECT_EQ(latest["kind"], "maintenance");
  EXPECT_EQ(latest["state"], "succeeded");
  ASSERT_TRUE(latest["report"].contains("pause_s")) << latest.dump();
  const uint64_t run_id = latest["run_id"];
  auto by_id = HttpRequest(port, "GET", "/api/maintenance/" + std::to_string(run_id), auth);
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->status, 200);
  EXPECT_EQ(nlohmann::json::parse(by_id->body)["run_id"], run_id);

  std::string metrics;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto r = HttpRequest(port, "GET", "/metrics");
        metrics = r.ok() ? r->body : "";
        return Sample(metrics, "ledgerkeep_maintenance_runs_total{outcome=\"succeeded\"}") == 1.0;
      },
      20s))
      << metrics;
  EXPECT_EQ(Sample(metrics, "ledgerkeep_maintenance_running"), 0.0);
  EXPECT_NEAR(Sample(metrics, "ledgerkeep_maintenance_last_pause_seconds").value_or(-1), latest["report"]["pause_s"].get<double>(),
              1e-6);
  for (const auto& r : kReplicas) {
    EXPECT_TRUE(Sample(metrics, "ledgerkeep_backup_last_success_timestamp_seconds{node=\"" + r + "\"}").has_value())
        << "the run's shipped snapshot counts as " << r << "'s backup";
  }
}

}  // namespace
}  // namespace ledgerkeep::test
