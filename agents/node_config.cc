#include "agents/node_config.h"

#include <toml++/toml.h>

#include <filesystem>
#include <set>

namespace ledgerkeep {
namespace {

Result<std::vector<std::string>> StringArray(const toml::table& t, const char* key,
                                             const std::string& where) {
  std::vector<std::string> out;
  const auto* node = t.get(key);
  if (node == nullptr) return out;
  const auto* arr = node->as_array();
  if (arr == nullptr) return Status::InvalidArgument(where + ": '" + key + "' must be an array of strings");
  for (const auto& v : *arr) {
    auto s = v.value<std::string>();
    if (!s) return Status::InvalidArgument(where + ": '" + key + "' must be an array of strings");
    out.push_back(*s);
  }
  return out;
}

}  // namespace

Result<NodeConfig> LoadNodeConfig(const std::string& path) {
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    if (!std::filesystem::exists(path)) return Status::NotFound("node config " + path + " does not exist");
    return Status::InvalidArgument("node config " + path +
                                   " is not valid TOML: " + std::string(e.description()));
  }
  NodeConfig c;
  c.path = path;
  auto dir = std::filesystem::absolute(path).parent_path();
  auto resolve = [&](std::string p) {
    return p.empty() || p[0] == '/' ? p : (dir / p).lexically_normal().string();
  };
  c.ledger_db = resolve(tbl["ledger"]["db"].value_or(std::string()));
  c.ledger_control = resolve(tbl["ledger"]["control"].value_or(std::string()));
  if (const auto* b = tbl["backup"].as_table()) {
    LK_ASSIGN_OR_RETURN(c.backup_ssh_options,
                        StringArray(*b, "ssh_options", "node config " + path + ": [backup]"));
    if (const auto* n = b->get("transfer_streams")) {
      auto v = n->value<int64_t>();
      if (!v || *v < 1 || *v > 8) {
        return Status::InvalidArgument("node config " + path +
                                       ": [backup] transfer_streams must be a whole number from 1 to 8 "
                                       "(parallel rsync streams; 1 = a single rsync)");
      }
      c.backup_transfer_streams = static_cast<int>(*v);
    }
    if (const auto* n = b->get("flush_as_written")) {
      const auto* v = n->as_boolean();  // value<bool>() would take 0 and 1 too
      if (v == nullptr) {
        return Status::InvalidArgument("node config " + path +
                                       ": [backup] flush_as_written must be true or false (flush each new "
                                       "snapshot file to disk on the destination as it arrives)");
      }
      c.backup_flush_as_written = v->get();
    }
  }
  if (const auto* cl = tbl["client"].as_table()) {
    LK_ASSIGN_OR_RETURN(auto paths, StringArray(*cl, "paths", "node config " + path + ": [client]"));
    for (auto& p : paths) c.client_paths.push_back(resolve(p));
  }
  std::set<std::string> names;
  if (const auto* arr = tbl["component"].as_array()) {
    size_t i = 0;
    for (const auto& node : *arr) {
      ++i;
      const std::string where = "node config " + path + ": [[component]] " + std::to_string(i);
      const auto* t = node.as_table();
      if (t == nullptr) return Status::InvalidArgument(where + " is not a table");
      ComponentSpec spec;
      spec.name = (*t)["name"].value_or(std::string());
      if (spec.name.empty()) return Status::InvalidArgument(where + " has no name");
      if (!names.insert(spec.name).second) {
        return Status::InvalidArgument(where + ": component '" + spec.name + "' is listed twice");
      }
      LK_ASSIGN_OR_RETURN(spec.exec, StringArray(*t, "exec", where));
      LK_ASSIGN_OR_RETURN(spec.start, StringArray(*t, "start", where));
      LK_ASSIGN_OR_RETURN(spec.stop, StringArray(*t, "stop", where));
      LK_ASSIGN_OR_RETURN(spec.status, StringArray(*t, "status", where));
      spec.stop_timeout_ms = (*t)["stop_timeout_s"].value_or(int64_t{30}) * 1000;
      if (spec.managed() && (!spec.start.empty() || !spec.stop.empty())) {
        return Status::InvalidArgument(where + " ('" + spec.name +
                                       "') has both exec and start/stop: pick managed or external");
      }
      if (!spec.managed() && (spec.start.empty() || spec.stop.empty() || spec.status.empty())) {
        return Status::InvalidArgument(where + " ('" + spec.name +
                                       "') needs exec = [...], or start, stop and status commands");
      }
      c.components.push_back(std::move(spec));
    }
  }
  return c;
}

}  // namespace ledgerkeep
