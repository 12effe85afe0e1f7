#include "broker/node_registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <nlohmann/json.hpp>

namespace ledgerkeep {

NodeRegistry::NodeRegistry(const ClusterConfig& config, KvStore* store, int cf)
    : config_(config), store_(store), cf_(cf) {
  for (const auto& e : config_.allow) {
    if (e.role != wire::Role::Replica && e.role != wire::Role::Client) continue;
    NodeEntry n;
    n.node_id = e.node_id;
    n.role = e.role;
    nodes_.emplace(e.node_id, std::move(n));
  }
}

Status NodeRegistry::Load(int64_t now_ms) {
  Status inner;
  uint32_t max_index = 0;
  auto load_one = [&](std::string_view key, std::string_view value) {
    auto j = nlohmann::json::parse(value, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      inner = Status::Corruption("broker state for node '" + std::string(key) + "' is unreadable");
      return false;
    }
    max_index = std::max(max_index, j.value("index", uint32_t{0}));  // removed nodes keep theirs
    auto it = nodes_.find(std::string(key));
    if (it == nodes_.end()) {
      spdlog::warn("node '{}' has broker state but is no longer in the allowlist; ignoring it", key);
      return true;
    }
    NodeEntry& n = it->second;
    n.index = j.value("index", uint32_t{0});
    n.version = j.value("version", "");
    n.last_report_seq = j.value("last_report_seq", uint64_t{0});
    n.last_seen_ms = j.value("last_seen_ms", int64_t{0});
    n.backup_destination = j.value("backup_destination", "");
    n.clone = j.value("clone", false);
    if (const auto t = j.find("backup_target"); t != j.end() && t->is_object()) {
      n.backup_target = TargetFromJson(*t);
    }
    if (const auto p = j.find("backup_places"); p != j.end()) n.backup_places = PlacesFromJson(*p);
    if (n.last_seen_ms > 0) {
      // Give every known node a fresh grace period: it reconnects on its own.
      n.state = wire::NodeState::Suspect;
      n.last_seen_ms = now_ms;
    }
    return true;
  };
  Status s = store_->Scan(cf_, "", "", [&](std::string_view key, std::string_view value) {
    try {
      return load_one(key, value);
    } catch (const nlohmann::json::exception& e) {  // value() on a field of another type
      inner =
          Status::Corruption("broker state for node '" + std::string(key) + "' is unreadable: " + e.what());
      return false;
    }
  });
  LK_RETURN_IF_ERROR(s);
  LK_RETURN_IF_ERROR(inner);
  KvStore::Batch batch;
  for (auto& [id, n] : nodes_) {
    if (n.index != 0) continue;
    n.index = ++max_index;
    Persist(batch, n);
  }
  max_index_ = max_index;
  return store_->Write(batch, /*sync=*/true);
}

NodeEntry* NodeRegistry::Find(const std::string& node_id) {
  auto it = nodes_.find(node_id);
  return it == nodes_.end() ? nullptr : &it->second;
}

std::vector<NodeEntry*> NodeRegistry::All() {
  std::vector<NodeEntry*> out;
  for (auto& [id, n] : nodes_) out.push_back(&n);
  return out;
}

std::vector<std::string> NodeRegistry::IdsWithRole(wire::Role role) const {
  std::vector<std::string> out;
  for (const auto& [id, n] : nodes_)
    if (!n.clone && (role == wire::Role::Unknown || n.role == role)) out.push_back(id);
  return out;
}

std::optional<NodeTransition> NodeRegistry::MarkSeen(NodeEntry& n, const std::string& routing_id,
                                                     int64_t now_ms) {
  n.last_seen_ms = now_ms;
  n.routing_id = routing_id;
  if (n.state == wire::NodeState::Alive) return std::nullopt;
  NodeTransition t{n.node_id, n.role, n.state, wire::NodeState::Alive, "heard from the agent"};
  n.state = wire::NodeState::Alive;
  return t;
}

std::vector<NodeTransition> NodeRegistry::Tick(int64_t now_ms) {
  std::vector<NodeTransition> out;
  const int64_t hb = config_.heartbeat_ms;
  for (auto& [id, n] : nodes_) {
    if (n.last_seen_ms == 0) continue;
    const int64_t silent = now_ms - n.last_seen_ms;
    wire::NodeState want = n.state;
    if (silent > hb * config_.lost_after) {
      want = wire::NodeState::Lost;
    } else if (silent > hb * config_.suspect_after && n.state == wire::NodeState::Alive) {
      want = wire::NodeState::Suspect;
    }
    if (want != n.state) {
      out.push_back({id, n.role, n.state, want, "no heartbeat for " + std::to_string(silent) + " ms"});
      n.state = want;
      if (want == wire::NodeState::Lost) n.welcomed = false;
    }
  }
  return out;
}

void NodeRegistry::Persist(KvStore::Batch& batch, const NodeEntry& n) const {
  nlohmann::json j = {{"role", RoleName(n.role)},
                      {"version", n.version},
                      {"last_report_seq", n.last_report_seq},
                      {"last_seen_ms", n.last_seen_ms},
                      {"backup_destination", n.backup_destination},
                      {"index", n.index},
                      {"clone", n.clone},
                      {"backup_target", TargetToJson(n.backup_target)},
                      {"backup_places", PlacesToJson(n.backup_places)}};
  // Strings come from agents and operators (a Hello's version, a
  // destination) and need not be UTF-8: replaced, not thrown about.
  batch.Put(cf_, n.node_id, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void NodeRegistry::SyncWithAllowlist(KvStore::Batch& batch) {
  std::set<std::string> listed;
  for (const auto& e : config_.allow) {
    if (e.role != wire::Role::Replica && e.role != wire::Role::Client) continue;
    listed.insert(e.node_id);
    auto it = nodes_.find(e.node_id);
    if (it != nodes_.end() && it->second.role == e.role) continue;
    NodeEntry n;
    n.node_id = e.node_id;
    n.role = e.role;
    // A node added back keeps the index it had (its record is still stored).
    if (auto stored = store_->Get(cf_, e.node_id); stored.ok() && stored->has_value()) {
      auto j = nlohmann::json::parse(**stored, nullptr, false);
      if (j.is_object() && j.contains("index") && j["index"].is_number_unsigned()) n.index = j["index"].get<uint32_t>();
    }
    if (n.index == 0) n.index = ++max_index_;
    Persist(batch, n);
    nodes_[e.node_id] = std::move(n);
  }
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    it = listed.count(it->first) ? std::next(it) : nodes_.erase(it);
  }
}

}  // namespace ledgerkeep
