#include "backup/backup_schedule.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace ledgerkeep {
namespace {

using namespace std::chrono;  // NOLINT: calendar literals keep the instants readable

// "2026-03-08T07:00:00Z" <-> Unix ms. Every expected instant below is written
// in UTC; the local reading it stands for is in the comment beside it.
int64_t Ms(std::string_view iso) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (std::sscanf(std::string(iso).c_str(), "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s) != 6) {
    ADD_FAILURE() << "bad ISO instant in test: " << iso;
    return 0;
  }
  const sys_seconds t = sys_days{year{y} / mo / d} + hours{h} + minutes{mi} + seconds{s};
  return duration_cast<milliseconds>(t.time_since_epoch()).count();
}

std::string Iso(int64_t ms) {
  const sys_time<milliseconds> t{milliseconds{ms}};
  const sys_days day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> tod{t - day};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(tod.hours().count()), static_cast<int>(tod.minutes().count()),
                static_cast<int>(tod.seconds().count()));
  std::string out = buf;
  if (tod.subseconds().count() != 0) out += " +" + std::to_string(tod.subseconds().count()) + "ms";
  return out;
}

BackupSchedule Parsed(const std::string& frequency, const std::string& zone) {
  auto s = ParseSchedule(frequency, zone);
  EXPECT_TRUE(s.ok()) << frequency << " / " << zone << ": " << s.status().ToString();
  return s.ok() ? *s : BackupSchedule{};
}

std::string NextIso(const BackupSchedule& s, std::string_view after) {
  auto next = NextRunMs(s, Ms(after));
  return next.ok() ? Iso(*next) : next.status().ToString();
}

// `n` consecutive runs, each the next one strictly after the previous.
std::vector<std::string> Runs(const BackupSchedule& s, std::string_view after, int n) {
  std::vector<std::string> out;
  int64_t t = Ms(after);
  for (int i = 0; i < n; ++i) {
    auto next = NextRunMs(s, t);
    if (!next.ok()) {
      out.push_back(next.status().ToString());
      break;
    }
    t = *next;
    out.push_back(Iso(t));
  }
  return out;
}

int64_t HoursBetween(std::string_view a, std::string_view b) { return (Ms(b) - Ms(a)) / 3'600'000; }

using Instants = std::vector<std::string>;

// ------------------------------------------------------------------ hourly

TEST(BackupScheduleTest, HourlyInUtcRunsOnEachHourStrictlyAfter) {
  const BackupSchedule s = Parsed("hourly", "UTC");
  EXPECT_EQ(Runs(s, "2026-01-15T10:20:00Z", 3),
            (Instants{"2026-01-15T11:00:00Z", "2026-01-15T12:00:00Z", "2026-01-15T13:00:00Z"}));
  EXPECT_EQ(NextIso(s, "2026-01-15T11:00:00Z"), "2026-01-15T12:00:00Z");  // strictly after
  auto just_before = NextRunMs(s, Ms("2026-01-15T11:00:00Z") - 1);
  ASSERT_TRUE(just_before.ok());
  EXPECT_EQ(Iso(*just_before), "2026-01-15T11:00:00Z");
}

TEST(BackupScheduleTest, HourlyInKolkataRunsAtHalfPastTheUtcHour) {
  // IST = UTC+05:30: local 16:00, 17:00, 18:00.
  EXPECT_EQ(Runs(Parsed("hourly", "Asia/Kolkata"), "2026-01-15T10:20:00Z", 3),
            (Instants{"2026-01-15T10:30:00Z", "2026-01-15T11:30:00Z", "2026-01-15T12:30:00Z"}));
}

TEST(BackupScheduleTest, HourlyInKathmanduRunsAtQuarterPastTheUtcHour) {
  // NPT = UTC+05:45: 10:20Z is 16:05 local, so the next run is 17:00 local.
  EXPECT_EQ(Runs(Parsed("hourly", "Asia/Kathmandu"), "2026-01-15T10:20:00Z", 2),
            (Instants{"2026-01-15T11:15:00Z", "2026-01-15T12:15:00Z"}));
}

TEST(BackupScheduleTest, HourlyAcrossNewYorkFallBackRunsBothOneOClocks) {
  // 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00Z.
  EXPECT_EQ(Runs(Parsed("hourly", "America/New_York"), "2026-11-01T04:30:00Z", 3),
            (Instants{"2026-11-01T05:00:00Z",     // 01:00 EDT
                      "2026-11-01T06:00:00Z",     // 01:00 EST
                      "2026-11-01T07:00:00Z"}));  // 02:00 EST
}

TEST(BackupScheduleTest, HourlyAcrossNewYorkSpringForwardSkipsTheMissingHour) {
  // 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00Z; 02:00 never happens.
  EXPECT_EQ(Runs(Parsed("hourly", "America/New_York"), "2026-03-08T05:30:00Z", 3),
            (Instants{"2026-03-08T06:00:00Z",     // 01:00 EST
                      "2026-03-08T07:00:00Z",     // 03:00 EDT
                      "2026-03-08T08:00:00Z"}));  // 04:00 EDT
}

// ------------------------------------------------------------------- daily

TEST(BackupScheduleTest, DailyMidnightInBerlinIs23HoursApartOverSpringForward) {
  // 2026-03-29: 02:00 CET becomes 03:00 CEST, so that local day has 23 hours.
  const Instants runs = Runs(Parsed("daily", "Europe/Berlin"), "2026-03-27T12:00:00Z", 3);
  EXPECT_EQ(runs, (Instants{"2026-03-27T23:00:00Z",     // 03-28 00:00 CET
                            "2026-03-28T23:00:00Z",     // 03-29 00:00 CET
                            "2026-03-29T22:00:00Z"}));  // 03-30 00:00 CEST
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(HoursBetween(runs[0], runs[1]), 24);
  EXPECT_EQ(HoursBetween(runs[1], runs[2]), 23);
}

TEST(BackupScheduleTest, DailyMidnightInBerlinIs25HoursApartOverFallBack) {
  // 2026-10-25: 03:00 CEST becomes 02:00 CET, so that local day has 25 hours.
  const Instants runs = Runs(Parsed("daily", "Europe/Berlin"), "2026-10-24T12:00:00Z", 3);
  EXPECT_EQ(runs, (Instants{"2026-10-24T22:00:00Z",     // 10-25 00:00 CEST
                            "2026-10-25T23:00:00Z",     // 10-26 00:00 CET
                            "2026-10-26T23:00:00Z"}));  // 10-27 00:00 CET
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(HoursBetween(runs[0], runs[1]), 25);
  EXPECT_EQ(HoursBetween(runs[1], runs[2]), 24);
}

TEST(BackupScheduleTest, DailyAtFourInBerlinKeepsLocalTimeAcrossBothChanges) {
  const BackupSchedule s = Parsed("daily@04:00", "Europe/Berlin");
  const Instants spring = Runs(s, "2026-03-28T00:00:00Z", 3);
  EXPECT_EQ(spring, (Instants{"2026-03-28T03:00:00Z",     // 04:00 CET
                              "2026-03-29T02:00:00Z",     // 04:00 CEST
                              "2026-03-30T02:00:00Z"}));
  ASSERT_EQ(spring.size(), 3u);
  EXPECT_EQ(HoursBetween(spring[0], spring[1]), 23);

  const Instants fall = Runs(s, "2026-10-24T00:00:00Z", 3);
  EXPECT_EQ(fall, (Instants{"2026-10-24T02:00:00Z",     // 04:00 CEST
                            "2026-10-25T03:00:00Z",     // 04:00 CET
                            "2026-10-26T03:00:00Z"}));
  ASSERT_EQ(fall.size(), 3u);
  EXPECT_EQ(HoursBetween(fall[0], fall[1]), 25);
}

TEST(BackupScheduleTest, DailyAtTimeInSpringForwardGapRunsWhenTheGapEnds) {
  // New York 2026-03-08 has no 02:00-02:59: run at 03:00 EDT.
  EXPECT_EQ(Runs(Parsed("daily@02:30", "America/New_York"), "2026-03-07T00:00:00Z", 3),
            (Instants{"2026-03-07T07:30:00Z",     // 03-07 02:30 EST
                      "2026-03-08T07:00:00Z",     // 03-08 03:00 EDT (02:30 does not exist)
                      "2026-03-09T06:30:00Z"}));  // 03-09 02:30 EDT
}

TEST(BackupScheduleTest, DailyAtRepeatedTimeRunsOnlyAtTheFirstOccurrence) {
  // New York 2026-11-01 shows 01:30 twice: 05:30Z (EDT) and 06:30Z (EST).
  const BackupSchedule s = Parsed("daily@01:30", "America/New_York");
  EXPECT_EQ(Runs(s, "2026-10-31T00:00:00Z", 3),
            (Instants{"2026-10-31T05:30:00Z",     // 10-31 01:30 EDT
                      "2026-11-01T05:30:00Z",     // 11-01 01:30 EDT, the first one
                      "2026-11-02T06:30:00Z"}));  // 11-02 01:30 EST
  // Between the two 01:30s the day's run is already done.
  EXPECT_EQ(NextIso(s, "2026-11-01T05:45:00Z"), "2026-11-02T06:30:00Z");
}

TEST(BackupScheduleTest, DailyMidnightInHavanaRunsAtOneWhenMidnightIsSkipped) {
  // Cuba springs forward at midnight: 2026-03-08 starts at 01:00 CDT.
  EXPECT_EQ(Runs(Parsed("daily", "America/Havana"), "2026-03-07T00:00:00Z", 3),
            (Instants{"2026-03-07T05:00:00Z",     // 03-07 00:00 CST
                      "2026-03-08T05:00:00Z",     // 03-08 01:00 CDT (00:00 does not exist)
                      "2026-03-09T04:00:00Z"}));  // 03-09 00:00 CDT
}

TEST(BackupScheduleTest, DailyHasNoRunOnADayTheZoneSkipped) {
  // Samoa went from 2011-12-29 24:00 (-10) straight to 2011-12-31 00:00 (+14).
  // Regression: the skipped 30th used to add a run at the jump, 30 min before
  // the 31st's own run.
  EXPECT_EQ(Runs(Parsed("daily@00:30", "Pacific/Apia"), "2011-12-29T00:00:00Z", 3),
            (Instants{"2011-12-29T10:30:00Z",     // 12-29 00:30 -10
                      "2011-12-30T10:30:00Z",     // 12-31 00:30 +14
                      "2011-12-31T10:30:00Z"}));  // 2012-01-01 00:30 +14
}

// ---------------------------------------------------------- every N minutes

TEST(BackupScheduleTest, Every15MinutesInUtcRunsOnTheQuarterHours) {
  const BackupSchedule s = Parsed("15m", "UTC");
  EXPECT_EQ(Runs(s, "2026-01-15T10:07:00Z", 4),
            (Instants{"2026-01-15T10:15:00Z", "2026-01-15T10:30:00Z", "2026-01-15T10:45:00Z",
                      "2026-01-15T11:00:00Z"}));
  EXPECT_EQ(NextIso(s, "2026-12-31T23:50:00Z"), "2027-01-01T00:00:00Z");
}

TEST(BackupScheduleTest, Every15MinutesInLordHoweStaysEvenAcrossHalfHourShifts) {
  // Lord Howe shifts by 30 minutes: +11:00 -> +10:30 at 2026-04-04T15:00Z
  // (02:00 -> 01:30 local), and back at 2026-10-03T15:30Z (02:00 -> 02:30).
  const BackupSchedule s = Parsed("15m", "Australia/Lord_Howe");
  EXPECT_EQ(Runs(s, "2026-04-04T14:40:00Z", 5),
            (Instants{"2026-04-04T14:45:00Z",     // 01:45 +11:00
                      "2026-04-04T15:00:00Z",     // 01:30 +10:30 (repeated half hour)
                      "2026-04-04T15:15:00Z",     // 01:45 +10:30
                      "2026-04-04T15:30:00Z",     // 02:00 +10:30
                      "2026-04-04T15:45:00Z"}));  // 02:15 +10:30
  EXPECT_EQ(Runs(s, "2026-10-03T15:10:00Z", 3),
            (Instants{"2026-10-03T15:15:00Z",     // 01:45 +10:30
                      "2026-10-03T15:30:00Z",     // 02:30 +11:00 (02:00-02:29 skipped)
                      "2026-10-03T15:45:00Z"}));  // 02:45 +11:00
}

TEST(BackupScheduleTest, Every45MinutesInLordHoweRerunsAnAlignedReadingAfterFallBack) {
  // 45 does not divide the 30-minute shift: local 01:30 occurs twice, and both
  // instants run, 30 real minutes apart; then the sequence continues locally.
  EXPECT_EQ(Runs(Parsed("45m", "Australia/Lord_Howe"), "2026-04-04T14:00:00Z", 3),
            (Instants{"2026-04-04T14:30:00Z",     // 01:30 +11:00
                      "2026-04-04T15:00:00Z",     // 01:30 +10:30
                      "2026-04-04T15:45:00Z"}));  // 02:15 +10:30
}

TEST(BackupScheduleTest, EveryNMinutesRestartsAtLocalMidnightWhenNDoesNotDivideADay) {
  // 1435 = 205 * 7, so 23:55 is aligned and the next run is midnight.
  EXPECT_EQ(Runs(Parsed("7m", "UTC"), "2026-01-15T23:47:00Z", 4),
            (Instants{"2026-01-15T23:48:00Z", "2026-01-15T23:55:00Z", "2026-01-16T00:00:00Z",
                      "2026-01-16T00:07:00Z"}));
}

TEST(BackupScheduleTest, EveryNMinutesSkipsReadingsInAMidnightGap) {
  // Unlike daily, a 1440m schedule runs only at a local 00:00 that exists.
  EXPECT_EQ(Runs(Parsed("1440m", "America/Havana"), "2026-03-07T00:00:00Z", 2),
            (Instants{"2026-03-07T05:00:00Z",     // 03-07 00:00 CST
                      "2026-03-09T04:00:00Z"}));  // 03-09 00:00 CDT
  EXPECT_EQ(Runs(Parsed("15m", "America/Havana"), "2026-03-08T04:40:00Z", 2),
            (Instants{"2026-03-08T04:45:00Z",     // 03-07 23:45 CST
                      "2026-03-08T05:00:00Z"}));  // 03-08 01:00 CDT
}

TEST(BackupScheduleTest, HourlyIsTheSameScheduleAsSixtyMinutes) {
  const BackupSchedule hourly = Parsed("hourly", "America/New_York");
  const BackupSchedule sixty = Parsed("60m", "America/New_York");
  EXPECT_EQ(Runs(hourly, "2026-11-01T03:10:00Z", 6), Runs(sixty, "2026-11-01T03:10:00Z", 6));
}

// ------------------------------------------------------------------ parsing

TEST(BackupScheduleTest, ParseAcceptsEveryFormCaseInsensitively) {
  auto hourly = ParseSchedule("HOURLY", "Europe/Berlin");
  ASSERT_TRUE(hourly.ok()) << hourly.status().ToString();
  EXPECT_EQ(hourly->frequency, BackupSchedule::Frequency::kHourly);
  EXPECT_EQ(hourly->time_zone, "Europe/Berlin");

  auto daily = ParseSchedule("Daily", "UTC");
  ASSERT_TRUE(daily.ok());
  EXPECT_EQ(daily->frequency, BackupSchedule::Frequency::kDaily);
  EXPECT_EQ(daily->daily_at_minute, 0);

  auto at = ParseSchedule("DAILY@23:59", "UTC");
  ASSERT_TRUE(at.ok());
  EXPECT_EQ(at->daily_at_minute, 23 * 60 + 59);

  auto every = ParseSchedule("15M", "UTC");
  ASSERT_TRUE(every.ok());
  EXPECT_EQ(every->frequency, BackupSchedule::Frequency::kEveryMinutes);
  EXPECT_EQ(every->every_minutes, 15);

  EXPECT_TRUE(ParseSchedule("1m", "UTC").ok());
  EXPECT_TRUE(ParseSchedule("1440m", "UTC").ok());
}

TEST(BackupScheduleTest, ParseDefaultsAnEmptyZoneToUtc) {
  auto s = ParseSchedule("hourly", "");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->time_zone, "UTC");
}

TEST(BackupScheduleTest, ParseRejectsAnUnknownZoneNamingIt) {
  auto s = ParseSchedule("hourly", "Mars/Olympus_Mons");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("Mars/Olympus_Mons"), std::string::npos) << s.status().message();
}

TEST(BackupScheduleTest, ParseRejectsBadFrequenciesListingTheAcceptedForms) {
  for (const std::string bad : {"7x", "0m", "2000m", "1441m", "m", "", "-5m", "weekly", "hourly ",
                                "daily@24:00", "daily@02:60", "daily@2:30", "daily@", "daily02:30"}) {
    auto s = ParseSchedule(bad, "UTC");
    ASSERT_FALSE(s.ok()) << "accepted \"" << bad << "\"";
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << bad;
    const std::string& m = s.status().message();
    EXPECT_NE(m.find("\"" + bad + "\""), std::string::npos) << m;
    EXPECT_NE(m.find("hourly, daily, daily@HH:MM"), std::string::npos) << m;
    EXPECT_NE(m.find("<N>m (N = 1..1440)"), std::string::npos) << m;
  }
}

TEST(BackupScheduleTest, NextRunRejectsHandBuiltSchedulesOutOfRange) {
  BackupSchedule every;
  every.frequency = BackupSchedule::Frequency::kEveryMinutes;
  every.every_minutes = 0;
  EXPECT_EQ(NextRunMs(every, 0).status().code(), StatusCode::kInvalidArgument);

  BackupSchedule daily;
  daily.daily_at_minute = 24 * 60;
  EXPECT_EQ(NextRunMs(daily, 0).status().code(), StatusCode::kInvalidArgument);

  BackupSchedule nowhere;
  nowhere.time_zone = "Nowhere/City";
  auto r = NextRunMs(nowhere, 0);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("Nowhere/City"), std::string::npos);

  EXPECT_EQ(NextRunMs(BackupSchedule{}, -1).status().code(), StatusCode::kInvalidArgument);
}

// ------------------------------------------------------ describe and persist

TEST(BackupScheduleTest, DescribesScheduleForOperators) {
  EXPECT_EQ(DescribeSchedule(Parsed("hourly", "Europe/Berlin")), "hourly (Europe/Berlin)");
  EXPECT_EQ(DescribeSchedule(Parsed("daily@02:30", "America/New_York")),
            "daily at 02:30 (America/New_York)");
  EXPECT_EQ(DescribeSchedule(Parsed("daily", "UTC")), "daily at 00:00 (UTC)");
  EXPECT_EQ(DescribeSchedule(Parsed("15m", "UTC")), "every 15 min (UTC)");
}

TEST(BackupScheduleTest, JsonRoundTripKeepsEverySchedule) {
  EXPECT_EQ(Parsed("Daily@02:30", "America/New_York").ToJson(),
            (nlohmann::json{{"frequency", "daily@02:30"}, {"time_zone", "America/New_York"}}));
  for (const auto& [frequency, zone] : std::vector<std::pair<std::string, std::string>>{
           {"hourly", "Asia/Kolkata"}, {"daily", "Europe/Berlin"}, {"daily@23:45", "UTC"},
           {"15m", "Australia/Lord_Howe"}, {"1440m", "Asia/Kathmandu"}}) {
    const BackupSchedule s = Parsed(frequency, zone);
    const nlohmann::json stored = nlohmann::json::parse(s.ToJson().dump());
    auto back = BackupSchedule::FromJson(stored);
    ASSERT_TRUE(back.ok()) << stored.dump() << ": " << back.status().ToString();
    EXPECT_EQ(*back, s) << stored.dump();
  }
}

TEST(BackupScheduleTest, FromJsonRejectsMalformedRecords) {
  for (const char* text : {R"([])", R"({"time_zone": "UTC"})", R"({"frequency": "hourly"})",
                           R"({"frequency": 60, "time_zone": "UTC"})",
                           R"({"frequency": "hourly", "time_zone": "Mars/Olympus_Mons"})",
                           R"({"frequency": "weekly", "time_zone": "UTC"})"}) {
    auto s = BackupSchedule::FromJson(nlohmann::json::parse(text));
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << text;
  }
}

}  // namespace
}  // namespace ledgerkeep
