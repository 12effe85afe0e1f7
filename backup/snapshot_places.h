// SnapshotPlaces: where one node's snapshots are (DESIGN.md §6, issue 13).
//
// The model: a node has one *home* destination (set by `backup schedule` or
// `backup configure`; a node without one adopts the first destination it
// completes a snapshot at). A one-off destination (`backup run-now
// --destination`) never replaces the home: it becomes another *place*. So
// does an earlier home that still holds snapshots when the home changes.
// Every place records the newest snapshot completed there. "latest" is the
// newest complete snapshot over all places (snapshot ids are UTC start times,
// so they sort chronologically); list, status, verify, restore and the
// maintenance run all resolve snapshots through these records
// (backup/snapshot_restore.h FindSnapshot).
//
// The agent keeps its records in its backup config, the broker in its node
// registry (so a clone restores while the node is down); both update them
// with the same functions below. Pure bookkeeping: no I/O.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backup/backup_types.h"

namespace ledgerkeep {

struct SnapshotPlace {
  BackupTarget target;      // {node} expanded
  std::string newest_snapshot_id;  // newest snapshot completed there ("" = unknown)
  bool home = false;
};

// Home first (when there is one), then the others in the order they were
// first used.
using SnapshotPlaces = std::vector<SnapshotPlace>;

// Whether two targets name the same place (kind, host, port, path).
bool SamePlace(const BackupTarget& a, const BackupTarget& b);

// `target` becomes the home. The earlier home stays a place when a snapshot
// was recorded there, else it is forgotten; a place equal to `target` is
// promoted (its newest snapshot kept).
void SetHomePlace(SnapshotPlaces& places, const BackupTarget& target);

// Snapshot `snapshot_id` completed at `target`: recorded at its place,
// which is added (after the home) if new; a node without a home adopts it as
// home. Returns the place.
const SnapshotPlace& RecordSnapshotAt(SnapshotPlaces& places, const BackupTarget& target,
                                      const std::string& snapshot_id);

const SnapshotPlace* HomePlace(const SnapshotPlaces& places);

// The place whose destination displays as `display` (BackupResult.destination).
SnapshotPlace* FindPlaceByDisplay(SnapshotPlaces& places, const std::string& display);

// Persistence (agent config.json, broker node records); the wire form is in
// wire/backup_wire.h.
nlohmann::json PlacesToJson(const SnapshotPlaces& places);
SnapshotPlaces PlacesFromJson(const nlohmann::json& j);  // malformed entries are skipped

nlohmann::json TargetToJson(const BackupTarget& t);
BackupTarget TargetFromJson(const nlohmann::json& j);  // missing/mistyped fields: defaults

}  // namespace ledgerkeep
