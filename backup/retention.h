// Retention of a node's complete snapshots (DESIGN.md §6, step 4): which
// ones a backup run deletes after publishing a new one.
//
// A snapshot is deleted when either rule says so, and never the newest:
//   keep_last N   it has N or more complete snapshots newer than itself;
//   max_age_s A   the time in its id is more than A seconds (to the
//                 millisecond) before now.
// By construction the age rule cannot run away:
//   - the arithmetic saturates, so no max_age (up to UINT64_MAX) wraps into
//     a small or negative age limit;
//   - an id whose time cannot be read, or that lies in the future, is never
//     too old;
//   - a larger max_age never deletes more, a larger keep_last never deletes
//     more (0 switches a rule off).
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ledgerkeep {

struct RetentionPolicy {
  uint32_t keep_last = 0;  // keep this many newest snapshots; 0 = no count limit. Default: 0
  uint64_t max_age_s = 0;  // delete snapshots older than this; 0 = no age limit. Default: 0
};

// The largest values a backup schedule accepts (the CLI checks the same ones
// before sending; the agent checks again when scheduling).
inline constexpr uint32_t kMaxKeepLast = 100'000;
inline constexpr uint64_t kMaxRetentionDays = 36'500;  // 100 years
inline constexpr uint64_t kMaxRetentionAgeS = kMaxRetentionDays * 86'400;

// OK, or InvalidArgument naming the field and its allowed range.
Status ValidateRetention(const RetentionPolicy& policy);

// The time a snapshot id ("20261125T093012.123Z", SnapshotIdFor) stands
// for, in Unix ms (UTC); nullopt if `id` is not such an id or names no
// real date and time.
std::optional<int64_t> SnapshotTimeMs(const std::string& id);

// The ids to delete from `complete` (a node's complete snapshot ids, the one
// just published included; any order) at `now_ms`, oldest first. Never the
// newest id.
std::vector<std::string> SnapshotsToDelete(std::vector<std::string> complete, int64_t now_ms,
                                           const RetentionPolicy& policy);

}  // namespace ledgerkeep
