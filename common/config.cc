#include "common/config.h"

#include <algorithm>

#include <filesystem>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "common/curve_keys.h"
#include "common/listen_address.h"
#include "common/toml_section.h"
#include "common/toml_writer.h"

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

// The [[allow]] tables of `root` appended to `out`; `ids` and `keys` are
// the node ids and keys seen so far (across files).
Status ParseAllowEntries(TomlSection& root, const std::string& where, bool in_keys_file,
                         std::set<std::string>& ids, std::set<std::string>& keys, std::vector<AllowEntry>* out) {
  LK_ASSIGN_OR_RETURN(auto entries, root.TableArray("allow"));
  for (TomlSection& t : entries) {
    const std::string entry = where + ": " + t.prefix().substr(0, t.prefix().size() - 2);
    AllowEntry e;
    e.in_keys_file = in_keys_file;
    std::string role;
    LK_RETURN_IF_ERROR(t.String("node_id", &e.node_id));
    LK_RETURN_IF_ERROR(t.String("role", &role));
    LK_RETURN_IF_ERROR(t.String("public_key", &e.public_z85));
    LK_RETURN_IF_ERROR(t.CheckNoUnknownKeys());
    if (Status id = ValidateNodeId(e.node_id); !id.ok()) return id.WithContext(entry);
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
    out->push_back(std::move(e));
  }
  return Status::OK();
}

}  // namespace

Status ValidateNodeId(const std::string& node_id) {
  if (node_id.empty()) return Status::InvalidArgument("no node_id");
  for (char ch : node_id) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_')) {
      return Status::InvalidArgument("node_id '" + node_id + "' may contain only letters, digits, '-' and '_'");
    }
  }
  return Status::OK();
}

std::string KeysFilePath(const std::string& config_path) {
  return (std::filesystem::path(config_path).parent_path() / "keys.toml").string();
}

std::string FormatKeysFile(const std::vector<AllowEntry>& entries) {
  std::string out =
      "# The keys added with `ledgerkeep keys add` (more [[allow]] entries for the\n"
      "# cluster config beside this file). The broker picks up changes live.\n";
  for (const auto& e : entries) {
    toml::table t{{"node_id", e.node_id}, {"role", RoleName(e.role)}, {"public_key", e.public_z85}};
    std::ostringstream os;
    os << t;
    out += "\n[[allow]]\n" + os.str() + "\n";
  }
  return out;
}

Result<ClusterConfig> LoadClusterConfig(const std::string& path) {
  if (path.empty()) {
    return Status::InvalidArgument(
        "no cluster config: pass --config FILE or set LEDGERKEEP_CONFIG "
        "(`./run cluster up` prints the export line)");
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (ec && ec != std::errc::no_such_file_or_directory) {
      return Status::InvalidArgument("cluster config " + path + " cannot be read: " + ec.message());
    }
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
  c.path = std::filesystem::absolute(path, ec).string();
  const std::string where = "cluster config " + path;
  // Every key is typed and range-checked, and unknown keys are refused
  // (toml_section.h): a wrong type or a typo never falls back to a default.
  TomlSection root(&tbl, where, "");
  LK_RETURN_IF_ERROR(root.String("cluster_id", &c.cluster_id, /*allow_empty=*/false));
  LK_ASSIGN_OR_RETURN(TomlSection broker, root.Table("broker"));
  LK_RETURN_IF_ERROR(broker.String("connect_host", &c.connect_host, false));
  LK_RETURN_IF_ERROR(broker.String("bind_host", &c.bind_host, false));
  LK_RETURN_IF_ERROR(broker.Int("cmd_port", 1, 65535, &c.cmd_port, "a TCP port"));
  LK_RETURN_IF_ERROR(broker.Int("ctl_port", 1, 65535, &c.ctl_port, "a TCP port"));
  LK_RETURN_IF_ERROR(broker.Int("events_port", 1, 65535, &c.events_port, "a TCP port"));
  LK_RETURN_IF_ERROR(broker.String("public_key", &c.broker_public_key));
  LK_RETURN_IF_ERROR(broker.CheckNoUnknownKeys());
  LK_ASSIGN_OR_RETURN(TomlSection op, root.Table("operator"));
  std::string op_key;
  LK_RETURN_IF_ERROR(op.String("key_file", &op_key));
  LK_RETURN_IF_ERROR(op.CheckNoUnknownKeys());
  c.operator_key_file = c.ResolvePath(op_key);
  LK_ASSIGN_OR_RETURN(TomlSection live, root.Table("liveness"));
  LK_RETURN_IF_ERROR(live.Int("heartbeat_ms", 10, 3'600'000, &c.heartbeat_ms));
  LK_RETURN_IF_ERROR(live.Int("suspect_after", 1, 1'000'000, &c.suspect_after, "missed heartbeats"));
  LK_RETURN_IF_ERROR(live.Int("lost_after", 2, 1'000'000, &c.lost_after, "missed heartbeats"));
  LK_RETURN_IF_ERROR(live.CheckNoUnknownKeys());
  LK_ASSIGN_OR_RETURN(TomlSection http, root.Table("http"));
  LK_RETURN_IF_ERROR(http.String("listen", &c.http_listen, /*allow_empty=*/false));
  std::string token_file = "keys/http.token";
  LK_RETURN_IF_ERROR(http.String("token_file", &token_file, /*allow_empty=*/false));
  LK_RETURN_IF_ERROR(http.CheckNoUnknownKeys());
  if (auto l = ParseListenAddress(where + ": [http] listen", c.http_listen); !l.ok()) return l.status();
  c.http_token_file = c.ResolvePath(token_file);

  if (c.cmd_port == c.ctl_port || c.cmd_port == c.events_port || c.ctl_port == c.events_port) {
    return Status::InvalidArgument(where +
                                   ": broker.cmd_port, ctl_port and events_port must be three "
                                   "different ports, got " +
                                   std::to_string(c.cmd_port) + ", " + std::to_string(c.ctl_port) + " and " +
                                   std::to_string(c.events_port));
  }
  LK_RETURN_IF_ERROR(ValidateZ85Key(c.broker_public_key, where + ": broker.public_key"));
  if (c.lost_after <= c.suspect_after) {
    return Status::InvalidArgument(where + ": liveness needs 1 <= suspect_after < lost_after, got " +
                                   std::to_string(c.suspect_after) + " and " + std::to_string(c.lost_after));
  }

  std::set<std::string> ids;
  std::set<std::string> keys;
  LK_RETURN_IF_ERROR(ParseAllowEntries(root, where, /*in_keys_file=*/false, ids, keys, &c.allow));
  {
    const std::string keys_path = KeysFilePath(c.path);
    if (std::filesystem::exists(keys_path, ec)) {
      toml::table keys_tbl;
      try {
        keys_tbl = toml::parse_file(keys_path);
      } catch (const toml::parse_error& e) {
        return Status::InvalidArgument("keys file " + keys_path + " is not valid TOML: " +
                                       std::string(e.description()) + " (line " +
                                       std::to_string(e.source().begin.line) + ")");
      }
      const std::string keys_where = "keys file " + keys_path;
      TomlSection keys_root(&keys_tbl, keys_where, "");
      LK_RETURN_IF_ERROR(ParseAllowEntries(keys_root, keys_where, /*in_keys_file=*/true, ids, keys, &c.allow));
      LK_RETURN_IF_ERROR(keys_root.CheckNoUnknownKeys());
    }
  }

  std::set<std::string> hook_names;
  LK_ASSIGN_OR_RETURN(auto hooks, root.TableArray("hook"));
  for (TomlSection& t : hooks) {
    const std::string entry = where + ": " + t.prefix().substr(0, t.prefix().size() - 2);
    HookSpec h;
    LK_RETURN_IF_ERROR(t.String("name", &h.name, /*allow_empty=*/false));
    LK_RETURN_IF_ERROR(t.StringArray("exec", &h.exec));
    LK_RETURN_IF_ERROR(t.Int("timeout_s", 1, 86'400, &h.timeout_s, "seconds"));
    LK_RETURN_IF_ERROR(t.CheckNoUnknownKeys());
    if (Status n = ValidateHookName(h.name); !n.ok()) return n.WithContext(entry);
    if (h.exec.empty() || h.exec[0].empty() || h.exec[0][0] != '/') {
      return Status::InvalidArgument(entry + ": exec must be a list whose first element is an absolute path, "
                                     "e.g. exec = [\"/usr/local/bin/stop-apps\", \"--all\"]");
    }
    if (!hook_names.insert(h.name).second) {
      return Status::InvalidArgument(entry + ": hook '" + h.name + "' is defined twice");
    }
    c.hooks.push_back(std::move(h));
  }
  LK_RETURN_IF_ERROR(root.CheckNoUnknownKeys());
  return c;
}

Status ValidateHookName(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0])) &&
                  std::all_of(name.begin(), name.end(), [](char ch) {
                    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.';
                  });
  if (ok) return Status::OK();
  return Status::InvalidArgument("hook name '" + name.substr(0, 80) +
                                 "' is not a name: letters, digits, '.', '_' and '-', at most 64, starting "
                                 "with a letter or digit (hooks are commands defined in the broker's cluster "
                                 "config, [[hook]] name = ..., exec = [...]; they are chosen by name)");
}

const HookSpec* ClusterConfig::FindHook(const std::string& name) const {
  for (const auto& h : hooks)
    if (h.name == name) return &h;
  return nullptr;
}

std::string ClusterConfigToml(const ClusterConfig& config, std::string_view header) {
  TomlWriter w;
  if (!header.empty()) w.Comment(header);
  w.String("cluster_id", config.cluster_id);
  w.Table("broker");
  w.String("connect_host", config.connect_host);
  w.String("bind_host", config.bind_host);
  w.Int("cmd_port", config.cmd_port);
  w.Int("ctl_port", config.ctl_port);
  w.Int("events_port", config.events_port);
  w.String("public_key", config.broker_public_key);
  if (!config.operator_key_file.empty()) {
    w.Table("operator");
    w.String("key_file", config.operator_key_file);
  }
  w.Table("liveness");
  w.Int("heartbeat_ms", config.heartbeat_ms);
  w.Int("suspect_after", config.suspect_after);
  w.Int("lost_after", config.lost_after);
  const ClusterConfig defaults;
  if (config.http_listen != defaults.http_listen || !config.http_token_file.empty()) {
    w.Table("http");
    w.String("listen", config.http_listen);
    if (!config.http_token_file.empty()) w.String("token_file", config.http_token_file);
  }
  for (const auto& a : config.allow) {
    w.TableArrayEntry("allow");
    w.String("node_id", a.node_id);
    w.String("role", RoleName(a.role));
    w.String("public_key", a.public_z85);
  }
  for (const auto& h : config.hooks) {
    w.TableArrayEntry("hook");
    w.String("name", h.name);
    w.StringArray("exec", h.exec);
    w.Int("timeout_s", h.timeout_s);
  }
  return w.text();
}

}  // namespace ledgerkeep
