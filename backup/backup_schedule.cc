#include "backup/backup_schedule.h"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>

namespace ledgerkeep {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr const char* kAcceptedForms =
    "expected hourly, daily, daily@HH:MM (00:00..23:59) or <N>m (N = 1..1440), case-insensitive";
constexpr int kMaxEveryMinutes = 24 * 60;
// 9999-12-31T23:59:59.999Z: keeps every computed instant far inside both
// int64 milliseconds and date's year range.
constexpr int64_t kMaxAfterMs = 253'402'300'799'999;

Status BadFrequency(const std::string& frequency) {
  return Status::InvalidArgument("invalid schedule frequency \"" + frequency + "\": " + kAcceptedForms);
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// date::locate_zone throws; convert at the edge. A missing or unreadable tz
// database is an IOError, a name that is not in it is the caller's mistake.
Result<const date::time_zone*> LocateZone(const std::string& name) {
  try {
    (void)date::get_tzdb();
  } catch (const std::exception& e) {
    return Status::IOError(std::string("loading the tz database: ") + e.what());
  }
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return Status::InvalidArgument("unknown time zone \"" + name +
                                   "\": expected an IANA name such as \"Europe/Berlin\" or \"UTC\"");
  }
}

Status Validate(const BackupSchedule& s) {
  switch (s.frequency) {
    case BackupSchedule::Frequency::kHourly:
      return Status::OK();
    case BackupSchedule::Frequency::kDaily:
      if (s.daily_at_minute < 0 || s.daily_at_minute >= kMaxEveryMinutes) {
        return Status::InvalidArgument("daily_at_minute " + std::to_string(s.daily_at_minute) +
                                       " is outside 0..1439");
      }
      return Status::OK();
    case BackupSchedule::Frequency::kEveryMinutes:
      if (s.every_minutes < 1 || s.every_minutes > kMaxEveryMinutes) {
        return Status::InvalidArgument("every_minutes " + std::to_string(s.every_minutes) +
                                       " is outside 1..1440");
      }
      return Status::OK();
  }
  return Status::InvalidArgument("unknown schedule frequency value");
}

// The first instant >= `from` whose local reading is a multiple of `period`
// after local midnight. Inside one of the zone's constant-offset intervals
// local = utc + offset, so the candidate is plain arithmetic; if it falls past
// the interval's end, the search continues from the transition with the new
// offset. Each interval is visited once, and a candidate is never more than a
// day away, so this ends after a handful of intervals.
Result<date::sys_seconds> NextAlignedReading(const date::time_zone& zone, date::sys_seconds from,
                                             seconds period) {
  for (;;) {
    const date::sys_info info = zone.get_info(from);
    if (info.end <= from) return Status::Internal("time zone interval does not advance");
    const seconds local = from.time_since_epoch() + info.offset;
    const seconds midnight = date::floor<date::days>(local);
    const seconds into_day = local - midnight;
    const seconds aligned = ((into_day + period - seconds{1}) / period) * period;
    // The next local midnight is always aligned, even if period does not divide a day.
    const seconds next_local = midnight + std::min<seconds>(aligned, date::days{1});
    const date::sys_seconds candidate{next_local - info.offset};
    if (candidate < info.end) return candidate;
    from = info.end;
  }
}

// The run instant of local calendar day `day` at `at` after midnight, or none
// if the whole day was skipped (Pacific/Apia jumped over 2011-12-30).
std::optional<date::sys_seconds> DailyRun(const date::time_zone& zone, date::local_days day,
                                          minutes at) {
  const date::local_seconds wanted = day + at;
  const date::local_info li = zone.get_info(wanted);
  if (li.result == date::local_info::nonexistent) {
    // The clocks jump from gap_start to gap_end at li.first.end.
    const date::local_seconds gap_start{li.first.end.time_since_epoch() + li.first.offset};
    const date::local_seconds gap_end{li.first.end.time_since_epoch() + li.second.offset};
    if (gap_start <= day && gap_end >= day + date::days{1}) return std::nullopt;
    return li.first.end;  // the first instant after the gap
  }
  // unique, or ambiguous where `first` is the interval before the fall back:
  // either way the earliest instant showing `wanted`.
  return date::sys_seconds{wanted.time_since_epoch() - li.first.offset};
}

Result<int64_t> NextRunMsIn(const BackupSchedule& s, const date::time_zone& zone, int64_t after_ms) {
  const date::sys_time<milliseconds> after{milliseconds{after_ms}};
  const auto to_ms = [](date::sys_seconds t) {
    return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
  };

  if (s.frequency == BackupSchedule::Frequency::kDaily) {
    const date::local_days today = date::floor<date::days>(zone.to_local(after));
    // Day runs are monotonic in the day, so the first one past `after` wins;
    // starting a day early covers a run pushed past midnight by a gap.
    for (date::local_days day = today - date::days{1}; day <= today + date::days{3}; day += date::days{1}) {
      const std::optional<date::sys_seconds> run = DailyRun(zone, day, minutes{s.daily_at_minute});
      if (run && to_ms(*run) > after_ms) return to_ms(*run);
    }
    return Status::Internal("no daily run found within three days of " + std::to_string(after_ms));
  }

  const seconds period = s.frequency == BackupSchedule::Frequency::kHourly
                             ? seconds{std::chrono::hours{1}}
                             : seconds{minutes{s.every_minutes}};
  // Runs are whole seconds: the first whole second strictly after `after`.
  const date::sys_seconds from = date::floor<seconds>(after) + seconds{1};
  LK_ASSIGN_OR_RETURN(date::sys_seconds run, NextAlignedReading(zone, from, period));
  return to_ms(run);
}

std::string HhMm(int minute_of_day) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%02d:%02d", minute_of_day / 60, minute_of_day % 60);
  return buf;
}

// ParseSchedule's canonical form of the frequency.
std::string FrequencySpec(const BackupSchedule& s) {
  switch (s.frequency) {
    case BackupSchedule::Frequency::kHourly:
      return "hourly";
    case BackupSchedule::Frequency::kDaily:
      return "daily@" + HhMm(s.daily_at_minute);
    case BackupSchedule::Frequency::kEveryMinutes:
      return std::to_string(s.every_minutes) + "m";
  }
  return "?";
}

}  // namespace

Result<BackupSchedule> ParseSchedule(const std::string& frequency, const std::string& time_zone) {
  std::string f = frequency;
  std::transform(f.begin(), f.end(), f.begin(), [](unsigned char c) { return std::tolower(c); });

  BackupSchedule s;
  if (f == "hourly") {
    s.frequency = BackupSchedule::Frequency::kHourly;
  } else if (f == "daily") {
    s.frequency = BackupSchedule::Frequency::kDaily;
  } else if (f.starts_with("daily@")) {
    const std::string_view hhmm = std::string_view(f).substr(6);
    if (hhmm.size() != 5 || hhmm[2] != ':' || !AllDigits(hhmm.substr(0, 2)) || !AllDigits(hhmm.substr(3))) {
      return BadFrequency(frequency);
    }
    const int hh = (hhmm[0] - '0') * 10 + (hhmm[1] - '0');
    const int mm = (hhmm[3] - '0') * 10 + (hhmm[4] - '0');
    if (hh > 23 || mm > 59) return BadFrequency(frequency);
    s.frequency = BackupSchedule::Frequency::kDaily;
    s.daily_at_minute = hh * 60 + mm;
  } else if (f.size() >= 2 && f.back() == 'm') {
    const std::string_view digits = std::string_view(f).substr(0, f.size() - 1);
    if (!AllDigits(digits) || digits.size() > 4) return BadFrequency(frequency);
    const int n = std::stoi(std::string(digits));
    if (n < 1 || n > kMaxEveryMinutes) return BadFrequency(frequency);
    s.frequency = BackupSchedule::Frequency::kEveryMinutes;
    s.every_minutes = n;
  } else {
    return BadFrequency(frequency);
  }

  s.time_zone = time_zone.empty() ? "UTC" : time_zone;
  LK_RETURN_IF_ERROR(LocateZone(s.time_zone).status());
  return s;
}

Result<int64_t> NextRunMs(const BackupSchedule& s, int64_t after_ms) {
  LK_RETURN_IF_ERROR(Validate(s));
  if (after_ms < 0 || after_ms > kMaxAfterMs) {
    return Status::InvalidArgument("after_ms " + std::to_string(after_ms) +
                                   " is outside 1970-01-01..9999-12-31");
  }
  LK_ASSIGN_OR_RETURN(const date::time_zone* zone, LocateZone(s.time_zone));
  try {
    // get_info reads the zone file on first use and throws if it cannot.
    return NextRunMsIn(s, *zone, after_ms);
  } catch (const std::exception& e) {
    return Status::IOError("time zone \"" + s.time_zone + "\": " + e.what());
  }
}

std::string DescribeSchedule(const BackupSchedule& s) {
  const std::string zone = " (" + s.time_zone + ")";
  switch (s.frequency) {
    case BackupSchedule::Frequency::kHourly:
      return "hourly" + zone;
    case BackupSchedule::Frequency::kDaily:
      return "daily at " + HhMm(s.daily_at_minute) + zone;
    case BackupSchedule::Frequency::kEveryMinutes:
      return "every " + std::to_string(s.every_minutes) + " min" + zone;
  }
  return "unknown schedule" + zone;
}

nlohmann::json BackupSchedule::ToJson() const {
  return nlohmann::json{{"frequency", FrequencySpec(*this)}, {"time_zone", time_zone}};
}

Result<BackupSchedule> BackupSchedule::FromJson(const nlohmann::json& j) {
  if (!j.is_object()) return Status::InvalidArgument("backup schedule: expected a JSON object");
  const auto frequency = j.find("frequency");
  const auto zone = j.find("time_zone");
  if (frequency == j.end() || !frequency->is_string()) {
    return Status::InvalidArgument("backup schedule: missing string field \"frequency\"");
  }
  if (zone == j.end() || !zone->is_string()) {
    return Status::InvalidArgument("backup schedule: missing string field \"time_zone\"");
  }
  return ParseSchedule(frequency->get<std::string>(), zone->get<std::string>());
}

}  // namespace ledgerkeep
