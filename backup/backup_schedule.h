// BackupSchedule: when the runbook takes replica backups — the runbook's
// `schedule_frequency` (hourly / daily / every N minutes) evaluated in the
// customer's `backup_time_zone`, correctly across DST changes.
//
// Run instants, in the schedule's IANA zone (local = wall-clock reading):
//
//   hourly       Same as "60m": every instant whose local reading is hh:00.
//                Each real hour boundary of the zone, which for zones with
//                :30 / :45 offsets (Asia/Kolkata, Asia/Kathmandu) is not a
//                UTC hour boundary. In a fall-back night the repeated hour
//                runs twice (01:00 EDT and 01:00 EST are different instants);
//                in a spring-forward night the skipped hour does not run.
//
//   <N>m         Every instant whose local reading is a multiple of N minutes
//                after local midnight (seconds = 0). "15m" runs at :00 :15
//                :30 :45. If N does not divide 1440 the sequence restarts at
//                every local midnight ("7m": ... 23:48, 23:55, 00:00, 00:07).
//                Across a DST change the rule stays "aligned local readings,
//                each distinct instant once": readings inside a forward gap
//                never occur, so they don't run; readings repeated by a
//                backward shift run again at their second instant. When N
//                divides the shift (e.g. 15m with a 30 or 60 min shift) runs
//                therefore stay exactly N real minutes apart; otherwise one
//                interval around the change is shorter or longer than N, but
//                every run is still an aligned local reading and no instant
//                runs twice.
//
//   daily@HH:MM  Once per local calendar day ("daily" = "daily@00:00"). If
//                HH:MM does not exist that day (spring-forward gap, 02:30 in
//                America/New_York on 2026-03-08) the run is at the first
//                instant after the gap (03:00 EDT). If HH:MM occurs twice
//                (fall back, 01:30 on 2026-11-01 in New York) it runs only at
//                the first occurrence (01:30 EDT). A day the zone skipped
//                entirely (Pacific/Apia, 2011-12-30) has no run.
//
// Zones come from the system tz database (/usr/share/zoneinfo, read through
// Howard Hinnant's date/tz built with USE_OS_TZDB); DST rules beyond the last
// transition stored in the zone file (2037 in Debian's tzdata) are not
// extrapolated.
//
// Thread-safety: all functions are pure with respect to their arguments and
// safe to call concurrently (the tz database is loaded once, thread-safely,
// on first use).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "common/status.h"

namespace ledgerkeep {

// The largest checkpoint-mode free-space threshold a schedule accepts (the
// CLI's --min-free-mb checks the same; the agent checks again): 1 PiB.
inline constexpr uint64_t kMaxMinFreeBytes = 1ULL << 50;

struct BackupSchedule {
  enum class Frequency { kHourly, kDaily, kEveryMinutes };
  Frequency frequency = Frequency::kDaily;  // Default: daily
  int every_minutes = 0;        // kEveryMinutes only: 1..1440
  int daily_at_minute = 0;      // kDaily only: minutes after local midnight, 0..1439. Default: 0 (00:00)
  std::string time_zone = "UTC";  // IANA name, e.g. "Europe/Berlin". Default: "UTC"

  // Persistence format (the frequency in ParseSchedule's canonical form):
  //   {"frequency": "hourly" | "daily@HH:MM" | "<N>m", "time_zone": "<IANA name>"}
  nlohmann::json ToJson() const;
  // Reads ToJson()'s format through ParseSchedule, so a stored schedule is
  // validated exactly like a configured one. A missing or non-string field is
  // InvalidArgument; so is an unknown zone (e.g. a zone removed from tzdata).
  static Result<BackupSchedule> FromJson(const nlohmann::json& j);

  friend bool operator==(const BackupSchedule&, const BackupSchedule&) = default;
};

// Parses `frequency` — "hourly" | "daily" | "daily@HH:MM" (two-digit HH
// 00..23, MM 00..59) | "<N>m" (N = 1..1440), case-insensitive, no surrounding
// whitespace — and `time_zone` (an IANA name, case-sensitive as in tzdata;
// empty means "UTC").
// Errors: InvalidArgument listing the accepted forms for a bad frequency;
// InvalidArgument naming the zone if it is not in the tz database.
Result<BackupSchedule> ParseSchedule(const std::string& frequency, const std::string& time_zone);

// The first run instant strictly after `after_ms` (Unix ms, UTC), computed in
// the schedule's zone (see the rules above). Run instants are whole seconds.
// Errors: InvalidArgument for an out-of-range field or unknown zone (for a
// schedule built by hand rather than by ParseSchedule) or an `after_ms`
// outside 1970-01-01..9999-12-31 (UTC); IOError if the zone file cannot be
// read.
Result<int64_t> NextRunMs(const BackupSchedule& s, int64_t after_ms);

// For operators: "hourly (Europe/Berlin)", "daily at 02:30 (America/New_York)",
// "every 15 min (UTC)".
std::string DescribeSchedule(const BackupSchedule& s);

}  // namespace ledgerkeep
