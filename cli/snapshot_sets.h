// Snapshot sets (issue 15): every replica's snapshot of one online
// maintenance run carries the run and the block all replicas stopped at
// (manifest "set"). A set is complete only when every replica of the
// cluster has its snapshot of the set, complete (DONE) and at the set's
// block. `backup list --sets` shows them; `restore --set` restores one onto
// a clone cluster.
// Thread-safety: plain functions.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "backup/backup_types.h"
#include "cli/command_group.h"

namespace ledgerkeep {

struct SnapshotSet {
  uint64_t run = 0;
  uint64_t block = 0;
  std::map<std::string, std::string> snapshots;  // replica -> its complete snapshot of the set
  std::vector<std::string> missing;              // "r2" or "r2 (not listed: why)"
  bool complete = false;
};

// Groups the replicas' listings (replica -> its snapshots) into sets, oldest
// run first. `unlisted`: replicas whose snapshots could not be listed
// (replica -> why); a set is never complete while one of them is missing.
std::vector<SnapshotSet> GroupSnapshotSets(const std::vector<std::string>& replicas,
                                           const std::map<std::string, std::vector<SnapshotInfo>>& listings,
                                           const std::map<std::string, std::string>& unlisted);

// Lists every replica's snapshots through the broker and groups them.
Result<std::vector<SnapshotSet>> CollectSnapshotSets(const GlobalFlags& g);

}  // namespace ledgerkeep
