#include "cli/snapshot_sets.h"

#include "wire/backup_wire.h"

namespace ledgerkeep {

std::vector<SnapshotSet> GroupSnapshotSets(const std::vector<std::string>& replicas,
                                           const std::map<std::string, std::vector<SnapshotInfo>>& listings,
                                           const std::map<std::string, std::string>& unlisted) {
  std::map<uint64_t, SnapshotSet> sets;
  for (const auto& [node, snapshots] : listings) {
    for (const auto& s : snapshots) {
      if (s.set_run == 0 || !s.complete) continue;
      SnapshotSet& set = sets[s.set_run];
      set.run = s.set_run;
      set.block = s.set_block;
      // A snapshot not at the set's block is not a member (a corrupt or
      // foreign manifest): the replica counts as missing.
      if (s.last_block_id == s.set_block && s.last_reachable == s.set_block) set.snapshots[node] = s.snapshot_id;
    }
  }
  std::vector<SnapshotSet> out;
  for (auto& [run, set] : sets) {
    for (const auto& r : replicas) {
      if (set.snapshots.count(r) != 0) continue;
      auto why = unlisted.find(r);
      set.missing.push_back(why == unlisted.end() ? r : r + " (not listed: " + why->second + ")");
    }
    set.complete = set.missing.empty() && !replicas.empty();
    out.push_back(std::move(set));
  }
  return out;
}

Result<std::vector<SnapshotSet>> CollectSnapshotSets(const GlobalFlags& g) {
  wire::TargetT replicas;
  replicas.role = wire::Role::Replica;
  wire::CommandBodyUnion body;
  body.Set(wire::ListSnapshotsT{});
  LK_ASSIGN_OR_RETURN(auto st, RunCommand(g, replicas, std::move(body), 120));
  std::vector<std::string> nodes;
  std::map<std::string, std::vector<SnapshotInfo>> listings;
  std::map<std::string, std::string> unlisted;
  for (const auto& t : st.targets) {
    nodes.push_back(t->node_id);
    const auto* l = t->result ? t->result->detail.AsSnapshotList() : nullptr;
    if (l == nullptr) {
      unlisted[t->node_id] = TargetMessage(*t);
      continue;
    }
    for (const auto& s : l->snapshots) listings[t->node_id].push_back(FromWire(*s));
    if (!l->unreachable.empty()) unlisted[t->node_id] = l->unreachable.front();
  }
  if (nodes.empty()) return Status::NotFound("the cluster has no replicas");
  return GroupSnapshotSets(nodes, listings, unlisted);
}

}  // namespace ledgerkeep
