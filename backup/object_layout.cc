#include "backup/object_layout.h"

#include <algorithm>
#include <set>

#include "backup/backup_engine.h"  // IsSnapshotId

namespace ledgerkeep {

namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

}  // namespace

ObjectLayout::ObjectLayout(std::string prefix) : prefix_(std::move(prefix)) {}

std::string ObjectLayout::Key(const std::string& rest) const { return prefix_.empty() ? rest : prefix_ + "/" + rest; }

std::string ObjectLayout::OwnerKey() const { return Key(".ledgerkeep-owner"); }
std::string ObjectLayout::SharedPrefix() const { return Key("shared/"); }
std::string ObjectLayout::SnapshotsPrefix() const { return Key("snapshots/"); }
std::string ObjectLayout::SnapshotPrefix(const std::string& id) const { return Key("snapshots/" + id + "/"); }
std::string ObjectLayout::ManifestKey(const std::string& id) const { return SnapshotPrefix(id) + "MANIFEST.json"; }
std::string ObjectLayout::DoneKey(const std::string& id) const { return SnapshotPrefix(id) + "DONE"; }

bool ObjectLayout::IsShared(const ManifestFile& f) {
  return f.path.find('/') == std::string::npos && EndsWith(f.path, ".sst") && f.path.size() > 4 &&
         f.xxh128.size() == 32;
}

std::string ObjectLayout::DataKey(const std::string& id, const ManifestFile& f) const {
  if (!IsShared(f)) return SnapshotPrefix(id) + "data/" + f.path;
  const std::string stem = f.path.substr(0, f.path.size() - 4);
  return SharedPrefix() + stem + "_" + f.xxh128 + "_" + std::to_string(f.size) + ".sst";
}

Status ValidateObjectPrefix(const std::string& prefix) {
  if (prefix.empty()) return Status::OK();
  if (prefix.size() > 512) return Status::InvalidArgument("the key prefix is longer than 512 bytes");
  for (unsigned char c : prefix) {
    if (c < 0x20 || c == 0x7f) return Status::InvalidArgument("the key prefix holds a control character");
  }
  size_t start = 0;
  while (true) {
    const size_t slash = prefix.find('/', start);
    const std::string seg = prefix.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (seg.empty()) {
      return Status::InvalidArgument("the key prefix '" + prefix +
                                     "' has an empty segment (a leading, trailing or doubled '/')");
    }
    if (seg == "." || seg == "..") {
      return Status::InvalidArgument("the key prefix '" + prefix + "' has a '" + seg + "' segment");
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return Status::OK();
}

ObjectDeletionPlan PlanObjectRetention(const ObjectLayout& layout, const ObjectRetentionInput& in) {
  ObjectDeletionPlan plan;
  const std::string snaps_prefix = layout.SnapshotsPrefix();
  const std::string shared_prefix = layout.SharedPrefix();
  const bool timed = in.run_started_ms > 0;

  // The listing, by snapshot and shared object; anything else is left alone.
  std::map<std::string, std::vector<const StoredObject*>> by_snapshot;
  std::vector<const StoredObject*> shared;
  for (const auto& o : in.objects) {
    if (StartsWith(o.key, snaps_prefix)) {
      const std::string rest = o.key.substr(snaps_prefix.size());
      const size_t slash = rest.find('/');
      const std::string id = rest.substr(0, slash);
      if (slash != std::string::npos && IsSnapshotId(id)) by_snapshot[id].push_back(&o);
    } else if (StartsWith(o.key, shared_prefix)) {
      const std::string rest = o.key.substr(shared_prefix.size());
      if (rest.find('/') == std::string::npos && EndsWith(rest, ".sst")) shared.push_back(&o);
    }
  }
  std::set<std::string> with_done;
  for (const auto& [id, objs] : by_snapshot) {
    const std::string done = layout.DoneKey(id);
    for (const auto* o : objs) {
      if (o->key == done) with_done.insert(id);
    }
  }
  const std::string newest = with_done.empty() ? "" : *with_done.rbegin();

  auto written_during_run = [&](const std::vector<const StoredObject*>& objs) {
    return timed && std::any_of(objs.begin(), objs.end(),
                                [&](const StoredObject* o) { return o->last_modified_ms >= in.run_started_ms; });
  };
  auto delete_snapshot = [&](const std::string& id, const std::vector<const StoredObject*>& objs) {
    const std::string done = layout.DoneKey(id);
    std::vector<const StoredObject*> sorted = objs;
    std::sort(sorted.begin(), sorted.end(), [&](const StoredObject* a, const StoredObject* b) {
      // DONE first, then the rest by key.
      if ((a->key == done) != (b->key == done)) return a->key == done;
      return a->key < b->key;
    });
    for (const auto* o : sorted) {
      plan.keys.push_back(o->key);
      plan.bytes_freed += o->size;
    }
  };

  // 1. The snapshots retention chose.
  std::set<std::string> deleted;
  std::vector<std::string> wanted = in.delete_snapshots;
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  for (const auto& id : wanted) {
    auto it = by_snapshot.find(id);
    if (it == by_snapshot.end() || !with_done.count(id)) {
      plan.notes.push_back("snapshot " + id + " kept: it is not a complete snapshot here");
      continue;
    }
    if (id == newest) {
      plan.notes.push_back("snapshot " + id + " kept: it is the newest complete snapshot");
      continue;
    }
    if (written_during_run(it->second)) {
      plan.notes.push_back("snapshot " + id + " kept: written to since this run started");
      continue;
    }
    delete_snapshot(id, it->second);
    deleted.insert(id);
    plan.snapshots_deleted.push_back(id);
  }

  // 2. What crashed runs left: snapshots without DONE, nothing of them
  // written since this run started.
  if (timed) {
    for (const auto& [id, objs] : by_snapshot) {
      if (with_done.count(id) || written_during_run(objs)) continue;
      delete_snapshot(id, objs);
      plan.crashed_snapshots.push_back(id);
    }
  } else if (by_snapshot.size() > with_done.size()) {
    plan.notes.push_back("snapshots without DONE kept: no run start time to tell a crashed run from one in progress");
  }

  // 3. Shared objects no remaining snapshot references.
  if (!timed) {
    plan.notes.push_back("shared objects kept: no run start time to tell a run in progress's uploads");
    return plan;
  }
  std::set<std::string> referenced;
  for (const auto& id : with_done) {
    if (deleted.count(id)) continue;
    auto m = in.manifests.find(id);
    if (m == in.manifests.end()) {
      plan.notes.push_back("shared objects kept: snapshot " + id +
                           " has DONE but no manifest was read, so what it references is unknown");
      return plan;
    }
    for (const auto& f : m->second.files) {
      if (ObjectLayout::IsShared(f)) referenced.insert(layout.DataKey(id, f));
    }
  }
  std::sort(shared.begin(), shared.end(), [](const StoredObject* a, const StoredObject* b) { return a->key < b->key; });
  for (const auto* o : shared) {
    if (referenced.count(o->key) || o->last_modified_ms >= in.run_started_ms) continue;
    plan.keys.push_back(o->key);
    plan.bytes_freed += o->size;
    ++plan.shared_deleted;
  }
  return plan;
}

}  // namespace ledgerkeep
