#include "wire/backup_wire.h"

namespace ledgerkeep {

wire::BackupTargetT ToWire(const BackupTarget& t) {
  wire::BackupTargetT w;
  w.destination = t.destination;
  w.rsync_user = t.rsync_user;
  w.ssh_key = t.ssh_key;
  w.ssh_port = t.ssh_port;
  w.known_hosts = t.known_hosts;
  w.accept_new_host_key = t.accept_new_host_key;
  return w;
}

BackupTarget FromWire(const wire::BackupTargetT& w) {
  BackupTarget t;
  t.destination = w.destination;
  t.rsync_user = w.rsync_user;
  t.ssh_key = w.ssh_key;
  t.ssh_port = w.ssh_port;
  t.known_hosts = w.known_hosts;
  t.accept_new_host_key = w.accept_new_host_key;
  return t;
}

BackupTarget FromWire(const wire::BackupTarget* t) {
  if (t == nullptr) return {};
  wire::BackupTargetT w;
  t->UnPackTo(&w);
  return FromWire(w);
}

wire::BackupResultT ToWire(const BackupResult& r) {
  wire::BackupResultT w;
  w.snapshot_id = r.snapshot_id;
  w.destination = r.destination;
  w.bytes_transferred = r.bytes_transferred;
  w.bytes_total = r.bytes_total;
  w.files_total = r.files_total;
  w.duration_ms = r.duration_ms;
  w.consistent = r.consistent;
  w.genesis = r.genesis;
  w.last_reachable = r.last_reachable;
  w.last_block_id = r.last_block_id;
  w.manifest_digest = r.manifest_digest;
  w.scheduled = r.scheduled;
  w.ok = r.ok;
  w.error = r.error;
  w.attempts = r.attempts;
  w.streams = r.streams;
  w.error_code = static_cast<uint16_t>(r.error_code);
  w.set_run = r.set_run;
  w.set_block = r.set_block;
  w.snapshot_count = r.snapshot_count;
  return w;
}

BackupResult FromWire(const wire::BackupResultT& w) {
  BackupResult r;
  r.snapshot_id = w.snapshot_id;
  r.destination = w.destination;
  r.bytes_transferred = w.bytes_transferred;
  r.bytes_total = w.bytes_total;
  r.files_total = w.files_total;
  r.duration_ms = w.duration_ms;
  r.consistent = w.consistent;
  r.genesis = w.genesis;
  r.last_reachable = w.last_reachable;
  r.last_block_id = w.last_block_id;
  r.manifest_digest = w.manifest_digest;
  r.scheduled = w.scheduled;
  r.ok = w.ok;
  r.error = w.error;
  r.attempts = w.attempts;
  r.streams = w.streams;
  r.error_code = w.error_code <= kMaxStatusCode ? static_cast<StatusCode>(w.error_code) : StatusCode::kInternal;
  r.set_run = w.set_run;
  r.set_block = w.set_block;
  r.snapshot_count = w.snapshot_count;
  return r;
}

wire::SnapshotInfoT ToWire(const SnapshotInfo& s) {
  wire::SnapshotInfoT w;
  w.snapshot_id = s.snapshot_id;
  w.complete = s.complete;
  w.consistent = s.consistent;
  w.bytes_total = s.bytes_total;
  w.files_total = s.files_total;
  w.genesis = s.genesis;
  w.last_reachable = s.last_reachable;
  w.last_block_id = s.last_block_id;
  w.finished_at_ms = s.finished_at_ms;
  w.set_run = s.set_run;
  w.set_block = s.set_block;
  w.destination = s.destination;
  return w;
}

SnapshotInfo FromWire(const wire::SnapshotInfoT& w) {
  SnapshotInfo s;
  s.snapshot_id = w.snapshot_id;
  s.complete = w.complete;
  s.consistent = w.consistent;
  s.bytes_total = w.bytes_total;
  s.files_total = w.files_total;
  s.genesis = w.genesis;
  s.last_reachable = w.last_reachable;
  s.last_block_id = w.last_block_id;
  s.finished_at_ms = w.finished_at_ms;
  s.set_run = w.set_run;
  s.set_block = w.set_block;
  s.destination = w.destination;
  return s;
}

wire::SnapshotVerificationT ToWire(const SnapshotVerification& v) {
  wire::SnapshotVerificationT w;
  w.snapshot_id = v.snapshot_id;
  w.ok = v.ok;
  w.files_checked = v.files_checked;
  w.bytes_checked = v.bytes_checked;
  w.blocks_verified = v.blocks_verified;
  w.genesis = v.genesis;
  w.last_reachable = v.last_reachable;
  w.last_block_id = v.last_block_id;
  w.duration_ms = v.duration_ms;
  for (const auto& p : v.problems) {
    auto wp = std::make_unique<wire::SnapshotProblemT>();
    wp->file = p.file;
    wp->block = p.block;
    wp->what = p.what;
    w.problems.push_back(std::move(wp));
  }
  w.destination = v.destination;
  return w;
}

SnapshotVerification FromWire(const wire::SnapshotVerificationT& w) {
  SnapshotVerification v;
  v.snapshot_id = w.snapshot_id;
  v.ok = w.ok;
  v.files_checked = w.files_checked;
  v.bytes_checked = w.bytes_checked;
  v.blocks_verified = w.blocks_verified;
  v.genesis = w.genesis;
  v.last_reachable = w.last_reachable;
  v.last_block_id = w.last_block_id;
  v.duration_ms = w.duration_ms;
  for (const auto& p : w.problems) {
    if (p) v.problems.push_back(SnapshotProblem{p->file, p->block, p->what});
  }
  v.destination = w.destination;
  return v;
}

wire::BackupVerifyResultT ToWire(const BackupVerifyResult& r) {
  wire::BackupVerifyResultT w;
  w.destination = r.destination;
  w.method = r.method;
  for (const auto& s : r.snapshots) w.snapshots.push_back(std::make_unique<wire::SnapshotVerificationT>(ToWire(s)));
  return w;
}

BackupVerifyResult FromWire(const wire::BackupVerifyResultT& w) {
  BackupVerifyResult r;
  r.destination = w.destination;
  r.method = w.method;
  for (const auto& s : w.snapshots) {
    if (s) r.snapshots.push_back(FromWire(*s));
  }
  return r;
}

wire::RestoreResultT ToWire(const RestoreResult& r) {
  wire::RestoreResultT w;
  w.source_node = r.source_node;
  w.source = r.source;
  w.snapshot_id = r.snapshot_id;
  w.db = r.db;
  w.bytes = r.bytes;
  w.files = r.files;
  w.fetch_ms = r.fetch_ms;
  w.verify_ms = r.verify_ms;
  w.duration_ms = r.duration_ms;
  if (r.verification) w.verification = std::make_unique<wire::SnapshotVerificationT>(ToWire(*r.verification));
  w.ledgerd_started = r.ledgerd_started;
  return w;
}

RestoreResult FromWire(const wire::RestoreResultT& w) {
  RestoreResult r;
  r.source_node = w.source_node;
  r.source = w.source;
  r.snapshot_id = w.snapshot_id;
  r.db = w.db;
  r.bytes = w.bytes;
  r.files = w.files;
  r.fetch_ms = w.fetch_ms;
  r.verify_ms = w.verify_ms;
  r.duration_ms = w.duration_ms;
  if (w.verification) r.verification = FromWire(*w.verification);
  r.ledgerd_started = w.ledgerd_started;
  return r;
}

std::vector<std::unique_ptr<wire::SnapshotPlaceT>> PlacesToWire(const SnapshotPlaces& places) {
  std::vector<std::unique_ptr<wire::SnapshotPlaceT>> out;
  for (const auto& p : places) {
    auto w = std::make_unique<wire::SnapshotPlaceT>();
    w->target = std::make_unique<wire::BackupTargetT>(ToWire(p.target));
    w->newest_snapshot_id = p.newest_snapshot_id;
    w->home = p.home;
    out.push_back(std::move(w));
  }
  return out;
}

SnapshotPlaces PlacesFromWire(const std::vector<std::unique_ptr<wire::SnapshotPlaceT>>& places) {
  SnapshotPlaces out;
  for (const auto& w : places) {
    if (!w || !w->target || w->target->destination.empty()) continue;
    SnapshotPlace p;
    p.target = FromWire(*w->target);
    p.newest_snapshot_id = w->newest_snapshot_id;
    p.home = w->home && out.empty();
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace ledgerkeep
