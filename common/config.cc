#include "common/config.h"

#include <filesystem>
#include <set>
#include <toml++/toml.h>

#include "common/curve_keys.h"

namespace ledgerkeep {

Result<wire::Role> ParseRole(const std::string& s) {
  if (s == "replica") return wire::Role::Replica;
  if (s == "client") return wire::Role::Client;
  if (s == "operator") return wire::Role::Operator;
  if (s == "subscriber") return wire::Role::Subscriber;
  return Status::InvalidArgument("unknown role '" + s +
                                 "' (expected replica, client, operator or subscriber)");
}

std::string RoleName(wire::Role role) {
  switch (role) {
    case wire::Role::Replica: return "replica";
    case wire::Role::Client: return "client";
    case wire::Role::Operator: return "operator";
    case wire::Role::Subscriber: return "subscriber";
    case wire::Role::Unknown: break;
  }
  return "unknown";
}

std::string NodeStateName(wire::NodeState state) {
  switch (state) {
    case wire::NodeState::Alive: return "alive";
    case wire::NodeState::Suspect: return "suspect";
    case wire::NodeState::Lost: return "lost";
    case wire::NodeState::Unknown: break;
  }
  return "unknown";
}

std::string ClusterConfig::ConnectEndpoint(int port) const {
  return "tcp://" + connect_host + ":" + std::to_string(port);
}

std::string ClusterConfig::BindEndpoint(int port) const {
  return "tcp://" + bind_host + ":" + std::to_string(port);
}

std::string ClusterConfig::ResolvePath(const std::string& p) const {
  if (p.empty() || p[0] == '/') return p;
  return (std::filesystem::path(path).parent_path() / p).lexically_normal().string();
}

const AllowEntry* ClusterConfig::FindNode(const std::string& node_id) const {
  for (const auto& e : allow)
    if (e.node_id == node_id) return &e;
  return nullptr;
}

const AllowEntry* ClusterConfig::FindKey(const std::string& public_z85) const {
  for (const auto& e : allow)
    if (e.public_z85 == public_z85) return &e;
  return nullptr;
}

namespace {

Status CheckPort(int port, const std::string& name) {
  if (port < 1 || port > 65535) {
    return Status::InvalidArgument("broker." + name + " must be a TCP port 1-65535, got " +
                                   std::to_string(port));
  }
  return Status::OK();
}

}  // namespace

Result<ClusterConfig> LoadClusterConfig(const std::string& path) {
  if (path.empty()) {
    return Status::InvalidArgument(
        "no cluster config: pass --config FILE or set LEDGERKEEP_CONFIG "
        "(`./run cluster up` prints the export line)");
  }
  if (!std::filesystem::exists(path)) {
    return Status::NotFound("cluster config " + path + " does not exist");
  }
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument("cluster config " + path + " is not valid TOML: " +
                                   std::string(e.description()) + " (line " +
                                   std::to_string(e.source().begin.line) + ")");
  }
  ClusterConfig c;
  c.path = std::filesystem::absolute(path).string();
  c.cluster_id = tbl["cluster_id"].value_or(c.cluster_id);
  c.connect_host = tbl["broker"]["connect_host"].value_or(c.connect_host);
  c.bind_host = tbl["broker"]["bind_host"].value_or(c.bind_host);
  c.cmd_port = static_cast<int>(tbl["broker"]["cmd_port"].value_or(int64_t{c.cmd_port}));
  c.ctl_port = static_cast<int>(tbl["broker"]["ctl_port"].value_or(int64_t{c.ctl_port}));
  c.events_port = static_cast<int>(tbl["broker"]["events_port"].value_or(int64_t{c.events_port}));
  c.broker_public_key = tbl["broker"]["public_key"].value_or(std::string());
  std::string op_key = tbl["operator"]["key_file"].value_or(std::string());
  c.operator_key_file = c.ResolvePath(op_key);
  c.heartbeat_ms = static_cast<int>(tbl["liveness"]["heartbeat_ms"].value_or(int64_t{c.heartbeat_ms}));
  c.suspect_after = static_cast<int>(tbl["liveness"]["suspect_after"].value_or(int64_t{c.suspect_after}));
  c.lost_after = static_cast<int>(tbl["liveness"]["lost_after"].value_or(int64_t{c.lost_after}));

  const std::string where = "cluster config " + path;
  LK_RETURN_IF_ERROR(CheckPort(c.cmd_port, "cmd_port"));
  LK_RETURN_IF_ERROR(CheckPort(c.ctl_port, "ctl_port"));
  LK_RETURN_IF_ERROR(CheckPort(c.events_port, "events_port"));
  LK_RETURN_IF_ERROR(ValidateZ85Key(c.broker_public_key, where + ": broker.public_key"));
  if (c.heartbeat_ms < 10) return Status::InvalidArgument(where + ": liveness.heartbeat_ms must be >= 10");
  if (c.suspect_after < 1 || c.lost_after <= c.suspect_after) {
    return Status::InvalidArgument(where + ": liveness needs 1 <= suspect_after < lost_after");
  }

  std::set<std::string> ids;
  std::set<std::string> keys;
  if (const auto* arr = tbl["allow"].as_array()) {
    size_t i = 0;
    for (const auto& node : *arr) {
      ++i;
      const auto* t = node.as_table();
      const std::string entry = where + ": [[allow]] entry " + std::to_string(i);
      if (t == nullptr) return Status::InvalidArgument(entry + " is not a table");
      AllowEntry e;
      e.node_id = (*t)["node_id"].value_or(std::string());
      e.public_z85 = (*t)["public_key"].value_or(std::string());
      std::string role = (*t)["role"].value_or(std::string());
      if (e.node_id.empty()) return Status::InvalidArgument(entry + " has no node_id");
      for (char ch : e.node_id) {
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_')) {
          return Status::InvalidArgument(entry + ": node_id '" + e.node_id +
                                         "' may contain only letters, digits, '-' and '_'");
        }
      }
      auto r = ParseRole(role);
      if (!r.ok()) return r.status().WithContext(entry);
      e.role = *r;
      LK_RETURN_IF_ERROR(ValidateZ85Key(e.public_z85, entry + " public_key"));
      if (!ids.insert(e.node_id).second) {
        return Status::InvalidArgument(entry + ": node_id '" + e.node_id + "' is listed twice");
      }
      if (!keys.insert(e.public_z85).second) {
        return Status::InvalidArgument(entry + ": the public key of '" + e.node_id +
                                       "' is already bound to another node; every node needs its own key");
      }
      c.allow.push_back(std::move(e));
    }
  }
  return c;
}

}  // namespace ledgerkeep
