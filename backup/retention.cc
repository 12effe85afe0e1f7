#include "backup/retention.h"

#include <algorithm>
#include <limits>

namespace ledgerkeep {
namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil): exact, no time zone, no libc.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool LeapYear(int64_t y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && LeapYear(y) ? 29 : kDays[m - 1];
}

// The decimal value of id[pos, pos+len), or -1 if any of it is not a digit.
int64_t Digits(const std::string& id, size_t pos, size_t len) {
  int64_t v = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    if (id[i] < '0' || id[i] > '9') return -1;
    v = v * 10 + (id[i] - '0');
  }
  return v;
}

// True when the age rule deletes the snapshot `id`. Saturating: a limit no
// age can exceed is never exceeded, and only a past time has an age.
bool TooOld(const std::string& id, int64_t now_ms, uint64_t max_age_s) {
  if (max_age_s == 0) return false;
  const std::optional<int64_t> taken = SnapshotTimeMs(id);
  if (!taken || *taken > now_ms) return false;
  // now_ms >= *taken, so the difference fits in uint64_t whatever both are.
  const uint64_t age_ms = static_cast<uint64_t>(now_ms) - static_cast<uint64_t>(*taken);
  if (max_age_s > std::numeric_limits<uint64_t>::max() / 1000) return false;
  return age_ms > max_age_s * 1000;
}

}  // namespace

Status ValidateRetention(const RetentionPolicy& policy) {
  if (policy.keep_last > kMaxKeepLast) {
    return Status::InvalidArgument("retention keep_last " + std::to_string(policy.keep_last) +
                                   " is out of range: give 0 (keep all) to " + std::to_string(kMaxKeepLast));
  }
  if (policy.max_age_s > kMaxRetentionAgeS) {
    return Status::InvalidArgument("retention max_age_s " + std::to_string(policy.max_age_s) +
                                   " is out of range: give 0 (no age limit) to " +
                                   std::to_string(kMaxRetentionAgeS) + " (" +
                                   std::to_string(kMaxRetentionDays) + " days)");
  }
  return Status::OK();
}

std::optional<int64_t> SnapshotTimeMs(const std::string& id) {
  // YYYYMMDDTHHMMSS.mmmZ
  if (id.size() != 20 || id[8] != 'T' || id[15] != '.' || id[19] != 'Z') return std::nullopt;
  const int64_t year = Digits(id, 0, 4), month = Digits(id, 4, 2), day = Digits(id, 6, 2);
  const int64_t hour = Digits(id, 9, 2), minute = Digits(id, 11, 2), second = Digits(id, 13, 2);
  const int64_t ms = Digits(id, 16, 3);
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 ||
      second < 0 || second > 59 || ms < 0) {
    return std::nullopt;
  }
  if (day > DaysInMonth(year, static_cast<unsigned>(month))) return std::nullopt;
  const int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  return ((days * 24 + hour) * 60 + minute) * 60'000 + second * 1000 + ms;
}

std::vector<std::string> SnapshotsToDelete(std::vector<std::string> complete, int64_t now_ms,
                                           const RetentionPolicy& policy) {
  // Ids sort by time; sorted here too, so "never the newest" holds whatever
  // order the caller listed them in.
  std::sort(complete.begin(), complete.end());
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < complete.size(); ++i) {  // never the newest
    const size_t newer = complete.size() - 1 - i;     // snapshots newer than complete[i]
    const bool too_many = policy.keep_last > 0 && newer >= policy.keep_last;
    if (too_many || TooOld(complete[i], now_ms, policy.max_age_s)) out.push_back(complete[i]);
  }
  return out;
}

}  // namespace ledgerkeep
