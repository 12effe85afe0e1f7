// DestinationRules: the broker's rules about where the nodes' snapshots are
// (DESIGN.md §6 "a unique backup directory per node", §8 "restore onto
// clones only"), over the node registry.
//
//   CheckUnique       a backup command must not give two nodes one
//                     destination, nor a node one that holds another node's
//                     snapshots (its home or any one-off place).
//   PrepareRestore    a snapshot is restored onto clones only, never onto a
//                     live member; the broker fills in every place of the
//                     source node's snapshots, so a clone fetches straight
//                     from the backup server while the source node is down.
//   Remember*         once an agent accepted a backup command (or reports a
//                     scheduled run), where its snapshots are: schedule and
//                     configure set its home, a run records the snapshot at
//                     the place it went to; a one-off destination never
//                     replaces the home (common/snapshot_places.h).
//
// Inputs are the command bodies and results as the broker holds them; no
// I/O. The Remember* calls change the NodeEntry in memory and say whether
// they did: the caller persists the record in its turn's batch.
// Thread-safety: one owner thread (the broker's), like the registry.
#pragma once

#include <string>
#include <vector>

#include "broker/node_registry.h"
#include "common/codec.h"

namespace ledgerkeep {

class DestinationRules {
 public:
  // `registry` must outlive this object.
  explicit DestinationRules(NodeRegistry* registry) : registry_(registry) {}

  // The destination a backup command (schedule, configure, run-now) gives
  // `node`, normalized (BackupDestination::Normalized); "" when it gives
  // none (another command, no --destination, checkpoint mode: local to each
  // node). InvalidArgument for a destination that does not parse.
  static Result<std::string> DestinationFor(const wire::CommandBodyUnion& body, const std::string& node);

  // OK unless the command would make two of `targets` share a destination,
  // or give one of them a destination another node already holds
  // snapshots at: InvalidArgument naming both nodes and the way out.
  Status CheckUnique(const wire::CommandBodyUnion& body, const std::vector<std::string>& targets);

  // For a RestoreSnapshot (other bodies: OK, unchanged): FailedPrecondition
  // when a target is not a clone (or never connected, so the broker cannot
  // tell); NotFound / InvalidArgument / FailedPrecondition for a source that
  // is not known or has no recorded destination. Without an explicit source
  // destination, sets the body's places to every place of the source's
  // snapshots ("latest" is the newest over all of them).
  Status PrepareRestore(wire::CommandBodyUnion& body, const std::vector<std::string>& targets);

  // Whether a command of this kind can change where a node's snapshots are
  // (so that the caller decodes it for RememberAccepted only then).
  static bool RecordsPlaces(wire::CommandBody kind);

  // `node`'s agent finished `command` (a body RecordsPlaces) with `result`
  // (status Ok). Returns true when the node's record changed.
  bool RememberAccepted(const wire::CommandBodyUnion& command, NodeEntry& node,
                        const wire::CommandResultT& result);

  // A scheduled run (no command) completed snapshot `result.snapshot_id` at
  // `result.destination`: recorded at that place if it is one of the node's
  // places. Returns true when the node's record changed.
  static bool RememberScheduledRun(NodeEntry& node, const wire::BackupResultT& result);

 private:
  NodeRegistry* registry_;
};

}  // namespace ledgerkeep
