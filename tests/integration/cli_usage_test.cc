// Hostile and careless values for the `ledgerkeep` CLI against a live
// cluster: every one is a usage error (exit 2) that names the option and what
// it accepts, and nothing reaches the broker (no command, no workflow event);
// the agent checks a schedule's numbers again when a command skips the CLI.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "backup/backup_schedule.h"
#include "backup/retention.h"
#include "backup/rsync.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"

namespace ledgerkeep::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class CliUsageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create({}));
    LK_ASSERT_OK(cluster_->StartAll());
    LK_ASSERT_OK_AND_ASSIGN(client_, cluster_->ConnectOperator());
    sent_before_ = Sent();
  }

  // Command and workflow events in the broker's log: what the CLI sent.
  size_t Sent() {
    size_t n = 0;
    for (const char* prefix : {"command", "runbook"}) {
      auto dump = FetchAllEvents(*client_, prefix);
      EXPECT_TRUE(dump.ok()) << dump.status().ToString();
      if (dump.ok()) n += dump->events.size();
    }
    return n;
  }

  // Runs the CLI and expects a usage error whose message holds `expect`.
  void ExpectUsageError(const std::vector<std::string>& args, const std::string& expect) {
    RunResult r = cluster_->RunCli(args, 20s);
    std::string line;
    for (const auto& a : args) line += " " + a.substr(0, 40);
    EXPECT_EQ(r.exit_code, 2) << "ledgerkeep" << line << "\n" << r.Describe();
    EXPECT_NE(r.err.find(expect), std::string::npos) << "ledgerkeep" << line << "\n" << r.Describe();
  }

  void ExpectNothingSent() { EXPECT_EQ(Sent(), sent_before_) << "a refused invocation reached the broker"; }

  std::unique_ptr<TestCluster> cluster_;
  std::unique_ptr<BrokerClient> client_;
  size_t sent_before_ = 0;
};

TEST_F(CliUsageTest, NegativeHugeAndMalformedNumbersOfEveryCommandAreUsageErrorsAndNothingIsSent) {
  const std::string dest = cluster_->dir() + "/backups/{node}";
  const std::vector<std::string> schedule = {"backup", "schedule",    "--destination",
                                             dest,     "--frequency", "hourly"};
  auto with = [](std::vector<std::string> base, std::vector<std::string> more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
  };
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  const std::vector<Case> cases = {
      // Issue 13 point 3: this value deleted every snapshot but the newest.
      {with(schedule, {"--max-age-days", "999999999999999"}),
       "--max-age-days: must be a whole number from 0 to 36500"},
      {with(schedule, {"--max-age-days", "-1"}), "--max-age-days"},
      {with(schedule, {"--max-age-days", "36501"}), "--max-age-days"},
      {with(schedule, {"--keep", "-1"}), "--keep: must be a whole number from 0 to 100000"},
      {with(schedule, {"--keep", "4294967296"}), "--keep"},
      {with(schedule, {"--min-free-mb", "17592186044416"}), "--min-free-mb"},  // << 20 overflowed
      {with(schedule, {"--min-free-mb", "1e3"}), "--min-free-mb"},
      {with(schedule, {"--ssh-port", "0"}), "--ssh-port: must be a whole number from 1 to 65535"},
      {with(schedule, {"--ssh-port", "65536"}), "--ssh-port"},
      {with(schedule, {"--ssh-port", "-22"}), "--ssh-port"},
      {{"backup", "run-now", "--wait-s", "0"}, "--wait-s: must be a whole number from 1 to 604800"},
      {{"backup", "run-now", "--ssh-port", "0x16", "--destination", dest}, "--ssh-port"},
      {{"backup", "configure", "--destination", dest, "--ssh-port", "99999"}, "--ssh-port"},
      {{"backup", "client", "--name", "x", "--wait-s", "-1"}, "--wait-s"},
      {{"backup", "verify", "--node", "r1", "--wait-s", "18446744073709551616"}, "--wait-s"},
      {{"restore", "--node", "r1", "--to-dir", cluster_->dir() + "/restored", "--wait-s", "-5"}, "--wait-s"},
      {{"ping", "--delay-ms", "-1"}, "--delay-ms: must be a whole number from 0 to 3600000"},
      {{"ping", "--wait-s", " 5"}, "--wait-s"},
      {{"ping", "--wait-s", "3.5"}, "--wait-s"},
      {{"--timeout-ms", "-5", "nodes"}, "--timeout-ms: must be a whole number from 1 to 3600000"},
      {{"nodes", "--timeout-ms", "0"}, "--timeout-ms"},
      {{"node", "status", "--wait-s", "99999999999999999999"}, "--wait-s"},
      {{"blocks", "--wait-s", "+5"}, "--wait-s"},
      {{"health", "--wait-s", "0"}, "--wait-s"},
      {{"wedge", "stop", "--timeout-s", "0"}, "--timeout-s: must be a whole number from 1 to 86400"},
      {{"wedge", "status", "--wait-s", "-1"}, "--wait-s"},
      {{"maintenance", "run", "--wedge-timeout-s", "-1"}, "--wedge-timeout-s"},
      {{"maintenance", "run", "--backup-timeout-s", "18446744073709551616"}, "--backup-timeout-s"},
      {{"maintenance", "run", "--dry-run", "--backup-timeout-s", "604801"}, "--backup-timeout-s"},
  };
  for (const auto& c : cases) ExpectUsageError(c.args, c.expect);
  ExpectNothingSent();
  EXPECT_FALSE(fs::exists(cluster_->dir() + "/backups")) << "a refused schedule claimed its destination";
}

TEST_F(CliUsageTest, EventsLastAndSinceRefuseNegativeZeroAndOverflowingValues) {
  // Issue 13 point 14: --last -3 printed every event, --since -1 nothing
  // with exit 0, --since 2^64 was taken.
  ExpectUsageError({"events", "--last", "-3"}, "--last: must be a whole number from 1 to 1000000, got '-3'");
  ExpectUsageError({"events", "--last", "0"}, "--last");
  ExpectUsageError({"events", "--since", "-1"},
                   "--since: must be a whole number from 1 to 9223372036854775807");
  ExpectUsageError({"events", "--since", "18446744073709551616"}, "--since");
  ExpectUsageError({"events", "--since", "0"}, "--since");
  // A good value still works.
  RunResult three = cluster_->RunCli({"events", "--last", "3", "--json"});
  ASSERT_EQ(three.exit_code, 0) << three.Describe();
  std::istringstream in(three.out);
  size_t lines = 0;
  for (std::string line; std::getline(in, line);) lines += line.empty() ? 0 : 1;
  EXPECT_EQ(lines, 3u) << three.out;
}

TEST_F(CliUsageTest, UnknownTimeZoneAndZeroFrequencyAreUsageErrorsAndNothingIsSent) {
  // Issue 13 point 18: both exited 1 after the agents refused them.
  const std::string dest = cluster_->dir() + "/backups/{node}";
  ExpectUsageError(
      {"backup", "schedule", "--destination", dest, "--frequency", "hourly", "--time-zone", "Nowhere/Else"},
      "Nowhere/Else");
  ExpectUsageError({"backup", "schedule", "--destination", dest, "--frequency", "0m"}, "0m");
  ExpectUsageError({"backup", "schedule", "--destination", dest, "--frequency", "daily@24:00"},
                   "daily@24:00");
  ExpectNothingSent();
  EXPECT_FALSE(fs::exists(cluster_->dir() + "/backups"));
}

TEST_F(CliUsageTest, ClientBackupWithAnUnsafeNameIsAUsageErrorAndNothingIsWritten) {
  // Issue 13 point 8: 'ünï😀' was written, reported missing, then overwritten.
  const std::string dest = cluster_->dir() + "/client-backups";
  fs::create_directories(cluster_->dir() + "/client-files");
  for (const std::string name : {"ünï😀", "a b", "../up", "-rf", "$(id)"}) {
    ExpectUsageError({"backup", "client", "--node", "c1", "--name", name, "--destination", dest, "--path",
                      cluster_->dir() + "/client-files"},
                     "archive name");
  }
  ExpectUsageError({"maintenance", "run", "--archive", "ünï😀"}, "archive name");
  ExpectNothingSent();
  EXPECT_FALSE(fs::exists(dest));
}

// Found by HostileCliTest: options that were silently ignored are usage
// errors now (an operator who typed them meant something).
TEST_F(CliUsageTest, OptionsThatWouldBeIgnoredAreUsageErrors) {
  const std::string dest = cluster_->dir() + "/backups/{node}";
  // SSH settings describe a --destination.
  ExpectUsageError({"backup", "run-now", "--node", "r1", "--ssh-key", "/k/id"}, "give the destination too");
  ExpectUsageError({"backup", "client", "--node", "c1", "--name", "x", "--rsync-user", "backup"},
                   "give the destination too");
  ExpectUsageError({"backup", "run-now", "--known-hosts", "/k/known_hosts"}, "give the destination too");
  // A login that ssh would take for an option, even when the destination names one.
  ExpectUsageError({"backup", "run-now", "--destination", "root@backup:/b/{node}", "--rsync-user", "-oX=y"},
                   "--rsync-user");
  // --archive belongs to a client restore.
  ExpectUsageError({"restore", "--node", "r1", "--to-dir", cluster_->dir() + "/x", "--archive", "a"}, "--client");
  ExpectNothingSent();
  EXPECT_FALSE(fs::exists(cluster_->dir() + "/x"));
  EXPECT_FALSE(fs::exists(cluster_->dir() + "/backups"));
  // The status of a component a node does not have is an error, not an empty table.
  RunResult status = cluster_->RunCli({"node", "status", "--node", "c1", "--component", "no-such"}, 20s);
  EXPECT_EQ(status.exit_code, 1) << status.Describe();
  EXPECT_NE(status.out.find("no component 'no-such'"), std::string::npos) << status.Describe();
}

TEST_F(CliUsageTest, AgentRefusesOutOfRangeScheduleNumbersSentPastTheCli) {
  struct Case {
    uint32_t keep_last;
    uint64_t max_age_s;
    uint64_t min_free_bytes;
    std::string expect;
    uint64_t bwlimit_bytes_per_s = 0;
  };
  const uint64_t days = 999'999'999'999'999;
  const std::vector<Case> cases = {
      {0, days * 86'400, 0, "max_age_s"},  // what the unchecked CLI sent (wrapped)
      {0, kMaxRetentionAgeS + 1, 0, "max_age_s"},
      {kMaxKeepLast + 1, 0, 0, "keep_last"},
      {0, 0, kMaxMinFreeBytes + 1, "min_free_bytes"},
      {0, 0, 0, "bwlimit", kMaxBwlimitBytesPerS + 1},  // issue 15 point 5
  };
  for (const auto& c : cases) {
    wire::ScheduleBackupT s;
    s.target = std::make_unique<wire::BackupTargetT>();
    s.target->destination = cluster_->dir() + "/backups/{node}";
    s.frequency = "hourly";
    s.time_zone = "UTC";
    s.retention = std::make_unique<wire::RetentionT>();
    s.retention->keep_last = c.keep_last;
    s.retention->max_age_s = c.max_age_s;
    s.min_free_bytes = c.min_free_bytes;
    s.bwlimit_bytes_per_s = c.bwlimit_bytes_per_s;
    wire::CommandBodyUnion body;
    body.Set(std::move(s));
    wire::TargetT r1;
    r1.node_id = "r1";
    LK_ASSERT_OK_AND_ASSIGN(auto issued, client_->Issue(r1, std::move(body), 20'000));
    LK_ASSERT_OK_AND_ASSIGN(auto st, client_->Wait(issued.cmd_id, 20'000, nullptr));
    ASSERT_EQ(st.targets.size(), 1u);
    const auto& t = *st.targets[0];
    ASSERT_TRUE(t.result) << DescribeCommandStatus(st);
    EXPECT_EQ(t.result->status, wire::ResultStatus::Failed) << DescribeCommandStatus(st);
    EXPECT_EQ(t.result->error_code, static_cast<uint16_t>(StatusCode::kInvalidArgument))
        << DescribeCommandStatus(st);
    EXPECT_NE(t.result->message.find(c.expect), std::string::npos) << t.result->message;
    EXPECT_NE(t.result->message.find("out of range"), std::string::npos) << t.result->message;
  }
  // Nothing was scheduled or claimed.
  RunResult status = cluster_->RunCli({"--json", "backup", "status", "--node", "r1"});
  ASSERT_EQ(status.exit_code, 0) << status.Describe();
  auto j = nlohmann::json::parse(status.out, nullptr, false);
  EXPECT_EQ(j["r1"].value("schedule", ""), "") << status.out;
  EXPECT_FALSE(fs::exists(cluster_->dir() + "/backups"));
}

// Issue 15 point 5: --bwlimit takes a size per second; anything else is a
// usage error before anything is sent (the agent's own check is a case of
// AgentRefusesOutOfRangeScheduleNumbersSentPastTheCli).
TEST_F(CliUsageTest, BandwidthLimitsThatAreNoSizeAreUsageErrorsAndNothingIsSent) {
  const std::string dest = cluster_->dir() + "/backups/{node}";
  const std::vector<std::string> schedule = {"backup", "schedule", "--destination", dest, "--frequency", "hourly"};
  auto with = [](std::vector<std::string> base, std::vector<std::string> more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
  };
  for (const auto& args : {with(schedule, {"--bwlimit", "20MB"}), with(schedule, {"--bwlimit", "0"}),
                           with(schedule, {"--bwlimit", "-5M"}), with(schedule, {"--bwlimit", "2T"}),
                           std::vector<std::string>{"backup", "run-now", "--bwlimit", "1.5M"},
                           std::vector<std::string>{"backup", "run-now", "--bwlimit", "20M; rm -rf /"}}) {
    ExpectUsageError(args, "--bwlimit");
  }
  ExpectNothingSent();
  EXPECT_FALSE(fs::exists(cluster_->dir() + "/backups")) << "a refused schedule claimed its destination";
}

}  // namespace
}  // namespace ledgerkeep::test
