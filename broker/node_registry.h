// NodeRegistry: the broker's view of every agent node (DESIGN.md §2).
//
// Membership comes from the allowlist: every replica/client key there is a
// node, known even before its agent first connects (state `unknown`), so
// commands can be addressed to it and are delivered when it says hello.
// Liveness: `alive` on any message; `suspect` after suspect_after missed
// heartbeats; `lost` after lost_after. Persisted per node: role, version,
// last heartbeat and the highest report seq stored (the broker's dedupe key
// for agent reports), so a broker restart keeps all of it.
// Thread-safety: one owner thread (the broker's).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backup/snapshot_places.h"
#include "common/config.h"
#include "common/kv_store.h"

namespace ledgerkeep {

struct NodeEntry {
  std::string node_id;
  wire::Role role = wire::Role::Unknown;
  wire::NodeState state = wire::NodeState::Unknown;
  int64_t last_seen_ms = 0;        // last message of any kind
  int64_t connected_since_ms = 0;  // last Hello
  std::string version;
  uint32_t pid = 0;
  uint64_t last_report_seq = 0;    // highest report seq stored durably
  uint32_t index = 0;              // bit in Command.target_bits (>= 1), assigned once, persisted
  std::string backup_destination;  // normalized (BackupDestination::Normalized), "" = none
  // The target of its last accepted backup command ({node} expanded), so a
  // clone can restore this node's snapshots while the node itself is down.
  BackupTarget backup_target;
  // Every place of its snapshots, the home (backup_target) first, with the
  // newest snapshot completed at each (backup/snapshot_places.h).
  SnapshotPlaces backup_places;
  bool clone = false;      // a restore clone (Hello.clone): not a member of the live cluster
  std::string routing_id;  // ROUTER identity of its ctl connection (not persisted)
  bool welcomed = false;   // said Hello to this broker instance
};

struct NodeTransition {
  std::string node_id;
  wire::Role role;
  wire::NodeState from;
  wire::NodeState to;
  std::string reason;
};

class NodeRegistry {
 public:
  NodeRegistry(const ClusterConfig& config, KvStore* store, int cf);

  // Loads persisted records for allowlisted nodes; nodes no longer in the
  // allowlist are ignored (and logged). Nodes with a last heartbeat are
  // given a fresh grace period from `now` (they reconnect after a restart).
  // Nodes without an index get the next free ones (in id order) and are
  // persisted at once, so an index never changes or moves to another node.
  Status Load(int64_t now_ms);

  NodeEntry* Find(const std::string& node_id);
  std::vector<NodeEntry*> All();
  // Nodes of `role` (Unknown = every agent node), clones excluded: wedge,
  // maintenance and backups address the live cluster only.
  std::vector<std::string> IdsWithRole(wire::Role role) const;

  // Any authenticated message from the node.
  std::optional<NodeTransition> MarkSeen(NodeEntry& n, const std::string& routing_id, int64_t now_ms);
  // Applies the suspect/lost timeouts.
  std::vector<NodeTransition> Tick(int64_t now_ms);

  void Persist(KvStore::Batch& batch, const NodeEntry& n) const;

  // After a live allowlist change (allowlist_reload.h): replica and client
  // entries new to the registry become nodes (state unknown) with the next
  // free index, persisted into `batch`; nodes no longer in the allowlist
  // are dropped, as a restart would (their stored record stays, so a node
  // added back keeps its index).
  void SyncWithAllowlist(KvStore::Batch& batch);

 private:
  uint32_t max_index_ = 0;  // highest index ever given, removed nodes' included
  const ClusterConfig& config_;
  KvStore* store_;
  int cf_;
  std::map<std::string, NodeEntry> nodes_;
};

}  // namespace ledgerkeep
