#include "broker/destination_rules.h"

#include <map>

#include "backup/backup_destination.h"
#include "backup/snapshot_places.h"
#include "wire/backup_wire.h"

namespace ledgerkeep {

Result<std::string> DestinationRules::DestinationFor(const wire::CommandBodyUnion& body,
                                                     const std::string& node) {
  const wire::BackupTargetT* t = nullptr;
  if (const auto* s = body.AsScheduleBackup()) {
    if (s->mode == wire::BackupMode::Checkpoint) return std::string();  // local to each node
    t = s->target.get();
  } else if (const auto* c = body.AsConfigureBackup()) {
    t = c->target.get();
  } else if (const auto* r = body.AsRunBackupNow()) {
    t = r->target.get();
  }
  if (t == nullptr || t->destination.empty()) return std::string();
  LK_ASSIGN_OR_RETURN(auto d, ParseDestination(FromWire(*t), node));
  return d.Normalized();
}

Status DestinationRules::CheckUnique(const wire::CommandBodyUnion& body,
                                     const std::vector<std::string>& targets) {
  std::map<std::string, std::string> owner;  // normalized -> node
  for (NodeEntry* n : registry_->All()) {
    if (!n->backup_destination.empty()) owner[n->backup_destination] = n->node_id;
    for (const auto& p : n->backup_places) {  // one-off places hold its snapshots too
      auto d = ParseDestination(p.target, n->node_id);
      if (d.ok()) owner.emplace(d->Normalized(), n->node_id);
    }
  }
  std::map<std::string, std::string> mine;
  for (const auto& node : targets) {
    auto d = DestinationFor(body, node);
    if (!d.ok()) return d.status().WithContext("destination for " + node);
    if (d->empty()) continue;
    if (auto it = mine.find(*d); it != mine.end()) {
      return Status::InvalidArgument("nodes " + it->second + " and " + node +
                                     " would share the backup destination " + d->substr(d->find(':') + 1) +
                                     "; every node needs its own directory: put {node} in the destination, "
                                     "e.g. --destination '/backups/{node}'");
    }
    mine[*d] = node;
    if (auto it = owner.find(*d); it != owner.end() && it->second != node) {
      return Status::InvalidArgument("backup destination " + d->substr(d->find(':') + 1) + " of " + node +
                                     " is already used by " + it->second +
                                     "; give each node its own directory");
    }
  }
  return Status::OK();
}

Status DestinationRules::PrepareRestore(wire::CommandBodyUnion& body,
                                        const std::vector<std::string>& targets) {
  auto* r = body.AsRestoreSnapshot();
  if (r == nullptr) return Status::OK();
  for (const auto& node : targets) {
    const NodeEntry* n = registry_->Find(node);
    if (n != nullptr && !n->clone && n->state == wire::NodeState::Unknown) {
      return Status::FailedPrecondition("refusing to restore onto " + node +
                                        ": it has never connected, so the broker cannot tell it is a clone "
                                        "(clones say so when they connect); start it with --clone first");
    }
    if (n == nullptr || !n->clone) {
      return Status::FailedPrecondition(
          "refusing to restore onto " + node +
          ": it is a live member of the cluster, not a clone. Start a clone "
          "agent (`ledgerkeep-agent --role replica --clone ...`) and restore onto it");
    }
  }
  if (r->source_node.empty()) return Status::InvalidArgument("restore needs the source node (--node)");
  const NodeEntry* src = registry_->Find(r->source_node);
  if (src == nullptr) return Status::NotFound("no agent node '" + r->source_node + "' in the allowlist");
  if (!r->source || r->source->destination.empty()) {
    // Every place of its snapshots: "latest" is the newest over all of them.
    SnapshotPlaces places = src->backup_places;
    if (places.empty() && !src->backup_target.destination.empty()) SetHomePlace(places, src->backup_target);
    if (places.empty()) {
      return Status::FailedPrecondition("no backup destination is recorded for " + r->source_node +
                                        ": it never accepted one (`ledgerkeep backup schedule/configure`)");
    }
    r->source.reset();
    r->places = PlacesToWire(places);
  }
  return Status::OK();
}

bool DestinationRules::RecordsPlaces(wire::CommandBody kind) {
  switch (kind) {
    case wire::CommandBody::ScheduleBackup:
    case wire::CommandBody::ConfigureBackup:
    case wire::CommandBody::RunBackupNow:
      return true;
    default:
      return false;
  }
}

bool DestinationRules::RememberAccepted(const wire::CommandBodyUnion& command, NodeEntry& n,
                                        const wire::CommandResultT& res) {
  const wire::BackupTargetT* t = nullptr;
  switch (command.type) {
    case wire::CommandBody::ScheduleBackup:
      if (command.AsScheduleBackup()->mode == wire::BackupMode::Checkpoint)
        return false;  // local to the node
      t = command.AsScheduleBackup()->target.get();
      break;
    case wire::CommandBody::ConfigureBackup:
      t = command.AsConfigureBackup()->target.get();
      break;
    case wire::CommandBody::RunBackupNow:
      t = command.AsRunBackupNow()->target.get();
      break;
    default:
      return false;
  }
  const bool run = command.type == wire::CommandBody::RunBackupNow;
  BackupTarget target;
  if (t != nullptr && !t->destination.empty()) {
    target = FromWire(*t);
    target.destination = ExpandNodePlaceholder(t->destination, n.node_id);
  } else if (run && !n.backup_target.destination.empty()) {
    target = n.backup_target;  // a run to the home destination
  } else {
    return false;
  }
  if (!run) {
    SetHomePlace(n.backup_places, target);
  } else {
    const auto* b = res.detail.AsBackupResult();
    if (b == nullptr || !b->ok || b->snapshot_id.empty()) return false;
    if (n.backup_places.empty() && !n.backup_target.destination.empty()) {
      SetHomePlace(n.backup_places, n.backup_target);  // recorded before places were
    }
    RecordSnapshotAt(n.backup_places, target, b->snapshot_id);
  }
  if (const SnapshotPlace* home = HomePlace(n.backup_places)) {
    n.backup_target = home->target;
    auto d = ParseDestination(home->target, n.node_id);
    if (d.ok()) n.backup_destination = d->Normalized();
  }
  return true;
}

bool DestinationRules::RememberScheduledRun(NodeEntry& n, const wire::BackupResultT& res) {
  if (!res.ok || res.snapshot_id.empty()) return false;
  SnapshotPlace* p = FindPlaceByDisplay(n.backup_places, res.destination);
  if (p == nullptr) return false;
  RecordSnapshotAt(n.backup_places, p->target, res.snapshot_id);
  return true;
}

}  // namespace ledgerkeep
