#include "backup/snapshot_places.h"

#include <algorithm>

#include "backup/backup_destination.h"

namespace ledgerkeep {
namespace {

// The place a target names; the raw text when it does not parse (it was
// validated when it was accepted, so this is only a fallback).
std::string PlaceKey(const BackupTarget& t) {
  auto d = ParseDestination(t, "");
  return d.ok() ? d->Normalized() : "raw:" + t.destination;
}

std::string StringField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

bool SamePlace(const BackupTarget& a, const BackupTarget& b) { return PlaceKey(a) == PlaceKey(b); }

const SnapshotPlace* HomePlace(const SnapshotPlaces& places) {
  return !places.empty() && places.front().home ? &places.front() : nullptr;
}

void SetHomePlace(SnapshotPlaces& places, const BackupTarget& target) {
  SnapshotPlace home;
  home.target = target;
  home.home = true;
  SnapshotPlaces out;
  for (auto& p : places) {
    if (SamePlace(p.target, target)) {
      home.newest_snapshot_id = p.newest_snapshot_id;
      continue;
    }
    if (p.home && p.newest_snapshot_id.empty()) continue;  // nothing recorded there: forgotten
    p.home = false;
    out.push_back(std::move(p));
  }
  out.insert(out.begin(), std::move(home));
  places = std::move(out);
}

const SnapshotPlace& RecordSnapshotAt(SnapshotPlaces& places, const BackupTarget& target,
                                      const std::string& snapshot_id) {
  auto it = std::find_if(places.begin(), places.end(),
                         [&](const SnapshotPlace& p) { return SamePlace(p.target, target); });
  if (it == places.end()) {
    if (HomePlace(places) == nullptr) {
      SetHomePlace(places, target);
      it = places.begin();
    } else {
      SnapshotPlace p;
      p.target = target;
      places.push_back(std::move(p));
      it = places.end() - 1;
    }
  }
  if (snapshot_id > it->newest_snapshot_id) it->newest_snapshot_id = snapshot_id;
  return *it;
}

SnapshotPlace* FindPlaceByDisplay(SnapshotPlaces& places, const std::string& display) {
  for (auto& p : places) {
    auto d = ParseDestination(p.target, "");
    if (d.ok() && d->Display() == display) return &p;
  }
  return nullptr;
}

nlohmann::json TargetToJson(const BackupTarget& t) {
  return {{"destination", t.destination}, {"rsync_user", t.rsync_user},
          {"ssh_key", t.ssh_key},         {"ssh_port", t.ssh_port},
          {"known_hosts", t.known_hosts}, {"accept_new_host_key", t.accept_new_host_key}};
}

BackupTarget TargetFromJson(const nlohmann::json& j) {
  BackupTarget t;
  if (!j.is_object()) return t;
  t.destination = StringField(j, "destination");
  t.rsync_user = StringField(j, "rsync_user");
  t.ssh_key = StringField(j, "ssh_key");
  t.known_hosts = StringField(j, "known_hosts");
  if (auto it = j.find("ssh_port"); it != j.end() && it->is_number_unsigned() && it->get<uint64_t>() <= 65535) {
    t.ssh_port = static_cast<uint16_t>(it->get<uint64_t>());
  }
  if (auto it = j.find("accept_new_host_key"); it != j.end() && it->is_boolean()) {
    t.accept_new_host_key = it->get<bool>();
  }
  return t;
}

nlohmann::json PlacesToJson(const SnapshotPlaces& places) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& p : places) {
    arr.push_back({{"target", TargetToJson(p.target)}, {"newest_snapshot_id", p.newest_snapshot_id}, {"home", p.home}});
  }
  return arr;
}

SnapshotPlaces PlacesFromJson(const nlohmann::json& j) {
  SnapshotPlaces out;
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (!e.is_object()) continue;
    SnapshotPlace p;
    p.target = TargetFromJson(e.contains("target") ? e["target"] : nlohmann::json());
    if (p.target.destination.empty()) continue;
    p.newest_snapshot_id = StringField(e, "newest_snapshot_id");
    if (auto it = e.find("home"); it != e.end() && it->is_boolean()) p.home = it->get<bool>() && out.empty();
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace ledgerkeep
