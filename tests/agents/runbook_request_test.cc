// The runbook's HTTP requests as the agent reads them (agents/runbook_request.h):
// what the runbook prints is accepted (its typographic quote and its zone
// placeholder with a warning), everything else that is wrong is refused by
// name before anything is issued.
#include "agents/runbook_request.h"

#include <gtest/gtest.h>

namespace ledgerkeep {
namespace {

QueryParams Action(const std::string& a) { return {{"action", a}}; }

// Step 2's body, byte for byte (the runbook's line breaks and indentation in it).
const std::string kRunbookSchedule =
    "{\"backup_destination\xE2\x80\x9D: \"10.72.216.118:/<backup_dir_name>\", \n"
    "    \"schedule_frequency\": \"HOURLY\", \"rsync_user_name\": \"vmbc\", \"backup_time_zone\": \"time_zone\"}";

std::string Joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& w : v) s += w + "\n";
  return s;
}

TEST(RunbookRequestTest, TheRunbooksScheduleBodyIsReadWithItsTypographicQuote) {
  auto j = ParseLenientJson(kRunbookSchedule);
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(j->value.at("backup_destination"), "10.72.216.118:/<backup_dir_name>");
  ASSERT_EQ(j->warnings.size(), 1u);
  EXPECT_NE(j->warnings[0].find("U+201D at byte 20"), std::string::npos) << j->warnings[0];

  // As a request: the placeholder directory name is refused ('<' is no
  // directory character), with the real one it is a schedule.
  auto bad = ParseBackupRequest(Action("schedule"), kRunbookSchedule, "r1");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'<'"), std::string::npos) << bad.status().ToString();
  std::string body = kRunbookSchedule;
  body.replace(body.find("<backup_dir_name>"), 17, "backups/{node}");
  auto r = ParseBackupRequest(Action("schedule"), body, "r1");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->action, BackupRequest::Action::kSchedule);
  EXPECT_EQ(*r->destination, "10.72.216.118:/backups/{node}");
  EXPECT_EQ(r->rsync_user, "vmbc");
  EXPECT_EQ(r->frequency, "hourly");
  EXPECT_EQ(r->time_zone, "UTC");
  EXPECT_EQ(r->wait_s, kDefaultWaitS);
  const std::string w = Joined(r->warnings);
  EXPECT_NE(w.find("U+201D"), std::string::npos) << w;
  EXPECT_NE(w.find("placeholder"), std::string::npos) << w;
}

TEST(RunbookRequestTest, OpeningAndClosingTypographicQuotesAroundKeysAndValuesAreRead) {
  auto j = ParseLenientJson("{\xE2\x80\x9C" "a\xE2\x80\x9D: \xE2\x80\x9C" "b\xE2\x80\x9D}");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(j->value, nlohmann::json({{"a", "b"}}));
  EXPECT_EQ(j->warnings.size(), 4u);
}

TEST(RunbookRequestTest, ATypographicQuoteInsideAStringValueStaysAndTheDestinationCheckRefusesIt) {
  // Valid JSON as sent: nothing is rewritten, even before a ','.
  const std::string body = "{\"backup_destination\": \"10.0.0.1:/b\xE2\x80\x9D, x\"}";
  auto j = ParseLenientJson(body);
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_TRUE(j->warnings.empty());
  EXPECT_EQ(j->value.at("backup_destination"), "10.0.0.1:/b\xE2\x80\x9D, x");
  auto r = ParseBackupRequest(Action("run_now"), "{\"backup_destination\": \"10.0.0.1:/b\xE2\x80\x9D\"}", "r1");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("typographic quote"), std::string::npos) << r.status().ToString();
}

TEST(RunbookRequestTest, MalformedJsonNamesTheByteOffsetOfTheBodyAsSent) {
  auto j = ParseLenientJson("{\"a\": 1,, \"b\": 2}");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(j.status().message().find("at byte 8"), std::string::npos) << j.status().ToString();
  // A typographic quote that does not make it JSON: the original error.
  auto k = ParseLenientJson("{\"a\xE2\x80\x9D 1}");
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("at byte"), std::string::npos) << k.status().ToString();
  // Invalid UTF-8 in a string.
  EXPECT_FALSE(ParseLenientJson("{\"a\": \"\xC3\x28\"}").ok());
}

TEST(RunbookRequestTest, AFieldGivenTwiceIsRefused) {
  auto j = ParseLenientJson(R"({"backup_destination": "/a", "backup_destination": "/b"})");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("more than once"), std::string::npos) << j.status().ToString();
  // The same key in two objects is no repeat.
  EXPECT_TRUE(ParseLenientJson(R"([{"a": 1}, {"a": 2}])").ok());
}

TEST(RunbookRequestTest, FrequenciesOfTheRunbookAndOfTheCli) {
  for (const auto& [given, canonical] : std::vector<std::pair<std::string, std::string>>{
           {"HOURLY", "hourly"}, {"Hourly", "hourly"}, {"DAILY", "daily@00:00"}, {"daily@02:30", "daily@02:30"},
           {"15m", "15m"}}) {
    SCOPED_TRACE(given);
    auto r = ParseBackupRequest(Action("schedule"),
                                R"({"backup_destination": "/srv/b/{node}", "schedule_frequency": ")" + given + "\"}",
                                "r1");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->frequency, canonical);
  }
  for (const std::string bad : {"weekly", "0m", "daily@25:00", "", " hourly"}) {
    SCOPED_TRACE(bad);
    auto r = ParseBackupRequest(Action("schedule"),
                                R"({"backup_destination": "/srv/b", "schedule_frequency": ")" + bad + "\"}", "r1");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("schedule_frequency"), std::string::npos) << r.status().ToString();
  }
}

TEST(RunbookRequestTest, ZonesAreIanaNamesAndTheRunbooksPlaceholderIsUtc) {
  auto berlin = ParseBackupRequest(
      Action("schedule"),
      R"({"backup_destination": "/srv/b", "schedule_frequency": "DAILY", "backup_time_zone": "Europe/Berlin"})", "r1");
  ASSERT_TRUE(berlin.ok()) << berlin.status().ToString();
  EXPECT_EQ(berlin->time_zone, "Europe/Berlin");
  EXPECT_TRUE(berlin->warnings.empty());
  for (const std::string bad : {"Mars/Olympus", "europe/berlin", "../../etc/passwd", "TIME_ZONE"}) {
    SCOPED_TRACE(bad);
    auto r = ParseBackupRequest(
        Action("run_now"), R"({"backup_destination": "/srv/b", "backup_time_zone": ")" + bad + "\"}", "r1");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("IANA"), std::string::npos) << r.status().ToString();
  }
}

TEST(RunbookRequestTest, UnknownFieldsActionsAndParametersAreNamed) {
  struct Case {
    QueryParams query;
    std::string body, says;
  };
  for (const auto& c : std::vector<Case>{
           {Action("schedule"), R"({"backup_destinaton": "/b"})", "backup_destinaton"},
           {Action("explode"), "", "unknown action \"explode\""},
           {{}, "", "no action"},
           {{{"action", "run_now"}, {"force", "1"}}, "", "force"},
           {{{"action", "run_now"}, {"action", "schedule"}}, "", "more than once"},
           {{{"action", "run_now"}, {"wait_s", "86401"}}, "", "wait_s"},
           {{{"action", "run_now"}, {"wait_s", "1e3"}}, "", "wait_s"},
           {Action("run_now"), R"({"schedule_frequency": "HOURLY"})", "action=schedule only"},
           {Action("unschedule"), R"({"backup_destination": "/b"})", "no fields"},
           {Action("run_now"), R"({"rsync_user_name": "vmbc"})", "give the destination too"},
           {Action("run_now"), R"({"backup_destination": "/b", "rsync_user_name": "-oProxyCommand=x"})",
            "not a user name"},
           {Action("run_now"), R"({"backup_destination": 17})", "must be a string"},
           {Action("run_now"), R"(["backup_destination"])", "JSON object"},
           {Action("schedule"), R"({"backup_destination": "/b"})", "needs schedule_frequency"},
           {Action("schedule"), R"({"schedule_frequency": "HOURLY"})", "needs backup_destination"},
       }) {
    SCOPED_TRACE(c.body + " " + c.says);
    auto r = ParseBackupRequest(c.query, c.body, "r1");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.says), std::string::npos) << r.status().ToString();
  }
  // run_now without a destination: the node's configured one.
  auto plain = ParseBackupRequest({{"action", "run_now"}, {"wait_s", "0"}}, "", "r1");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_FALSE(plain->destination.has_value());
  EXPECT_EQ(plain->wait_s, 0);
}

TEST(RunbookRequestTest, ShellMetacharactersTraversalAndControlCharactersInDestinationsAreRefused) {
  for (const std::string d : {"10.72.216.118:/backups; rm -rf /", "10.72.216.118:/b/$(reboot)", "host:/b/`id`",
                              "host:/b|nc evil 1", "host:/b&", "host:/b>x", "host:/b\\x", "host:/b'x", "host:/b x",
                              "host:/b*", "host:/b?", "host:/b{x}", "host:/b\n", "host:/b\x7f", "host:/b\xC3\xA9",
                              "host:/backups/../etc", "/backups/..", "../b", "host:..", "rsync://h/m/../../etc", ""}) {
    SCOPED_TRACE(d);
    Status s = CheckDestinationText(d);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  }
  EXPECT_NE(CheckDestinationText("host:/b; rm").message().find("';' (a shell metacharacter)"), std::string::npos);
  EXPECT_NE(CheckDestinationText("host:/a/../b").message().find("'..'"), std::string::npos);
  for (const std::string d : {"10.72.216.118:/backups", "vmbc@backup-1.example:/srv/b/{node}", "/srv/backups/{node}",
                              "rsync://backup.example:873/module/r1", "host:/b/..hidden/x", "host:/b/a.b-c_d+e,f=g"}) {
    SCOPED_TRACE(d);
    EXPECT_TRUE(CheckDestinationText(d).ok()) << CheckDestinationText(d).ToString();
  }
  // The library's own check still applies after this one.
  auto r = ParseBackupRequest(Action("run_now"), R"({"backup_destination": "-oProxyCommand=sh:/b"})", "r1");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("host"), std::string::npos) << r.status().ToString();
}

TEST(RunbookRequestTest, NodeManagementTakesAnActionAndNoFields) {
  auto stop = ParseNodeManagementRequest(Action("stop"), "");
  ASSERT_TRUE(stop.ok()) << stop.status().ToString();
  EXPECT_FALSE(stop->start);
  auto start = ParseNodeManagementRequest(Action("start"), " {} \n");
  ASSERT_TRUE(start.ok()) << start.status().ToString();
  EXPECT_TRUE(start->start);
  EXPECT_FALSE(ParseNodeManagementRequest(Action("reboot"), "").ok());
  auto field = ParseNodeManagementRequest(Action("stop"), R"({"components": ["ledgerd"]})");
  ASSERT_FALSE(field.ok());
  EXPECT_NE(field.status().message().find("no fields"), std::string::npos) << field.status().ToString();
}

}  // namespace
}  // namespace ledgerkeep
