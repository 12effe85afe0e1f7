#include "common/node_config.h"

#include <toml++/toml.h>

#include <filesystem>
#include <set>

#include "common/byte_size.h"
#include "common/listen_address.h"
#include "common/toml_section.h"
#include "common/toml_writer.h"

namespace ledgerkeep {

Result<NodeConfig> LoadNodeConfig(const std::string& path) {
  toml::table tbl;
  try {
    tbl = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
      return Status::NotFound("node config " + path + " does not exist");
    return Status::InvalidArgument("node config " + path +
                                   " is not valid TOML: " + std::string(e.description()));
  }
  NodeConfig c;
  c.path = path;
  std::error_code ec;
  auto dir = std::filesystem::absolute(path, ec).parent_path();
  if (ec) return Status::InvalidArgument("node config " + path + ": " + ec.message());
  auto resolve = [&](std::string p) {
    return p.empty() || p[0] == '/' ? p : (dir / p).lexically_normal().string();
  };
  // Every key is typed and range-checked, and unknown keys are refused
  // (toml_section.h): a wrong type or a typo never falls back to a default.
  const std::string where = "node config " + path;
  TomlSection root(&tbl, where, "");
  LK_ASSIGN_OR_RETURN(TomlSection ledger, root.Table("ledger"));
  LK_RETURN_IF_ERROR(ledger.String("db", &c.ledger_db));
  LK_RETURN_IF_ERROR(ledger.String("control", &c.ledger_control));
  LK_RETURN_IF_ERROR(ledger.CheckNoUnknownKeys());
  c.ledger_db = resolve(c.ledger_db);
  c.ledger_control = resolve(c.ledger_control);

  LK_ASSIGN_OR_RETURN(TomlSection backup, root.Table("backup"));
  LK_RETURN_IF_ERROR(backup.StringArray("ssh_options", &c.backup_ssh_options));
  LK_RETURN_IF_ERROR(backup.Int("transfer_streams", 1, 8, &c.backup_transfer_streams,
                                "parallel rsync streams; 1 = a single rsync"));
  LK_RETURN_IF_ERROR(backup.Bool("flush_as_written", &c.backup_flush_as_written,
                                 "flush each new snapshot file to disk on the destination as it arrives"));
  std::string bwlimit;
  LK_RETURN_IF_ERROR(backup.String("bwlimit", &bwlimit));
  if (!bwlimit.empty()) {
    auto limit = ParseByteSize("[backup] bwlimit (bytes per second)", bwlimit);
    if (!limit.ok()) return limit.status().WithContext(path);
    c.backup_bwlimit_bytes_per_s = *limit;
  }
  LK_RETURN_IF_ERROR(backup.Bool("background", &c.backup_background,
                                 "run backup checksums and transfers at the lowest CPU and I/O priority"));
  LK_RETURN_IF_ERROR(backup.CheckNoUnknownKeys());

  LK_ASSIGN_OR_RETURN(TomlSection http, root.Table("http"));
  LK_RETURN_IF_ERROR(http.String("listen", &c.http_listen, /*allow_empty=*/false));
  LK_RETURN_IF_ERROR(http.CheckNoUnknownKeys());
  if (auto l = ParseListenAddress(where + ": [http] listen", c.http_listen); !l.ok()) return l.status();

  LK_ASSIGN_OR_RETURN(TomlSection client, root.Table("client"));
  std::vector<std::string> paths;
  LK_RETURN_IF_ERROR(client.StringArray("paths", &paths));
  LK_RETURN_IF_ERROR(client.CheckNoUnknownKeys());
  for (auto& p : paths) c.client_paths.push_back(resolve(p));

  std::set<std::string> names;
  LK_ASSIGN_OR_RETURN(auto components, root.TableArray("component"));
  for (TomlSection& t : components) {
    const std::string entry = where + ": " + t.prefix().substr(0, t.prefix().size() - 2);
    ComponentSpec spec;
    int64_t stop_timeout_s = 30;
    LK_RETURN_IF_ERROR(t.String("name", &spec.name));
    LK_RETURN_IF_ERROR(t.StringArray("exec", &spec.exec));
    LK_RETURN_IF_ERROR(t.StringArray("start", &spec.start));
    LK_RETURN_IF_ERROR(t.StringArray("stop", &spec.stop));
    LK_RETURN_IF_ERROR(t.StringArray("status", &spec.status));
    LK_RETURN_IF_ERROR(t.Int("stop_timeout_s", 1, 86'400, &stop_timeout_s,
                             "seconds between SIGTERM and giving up on a clean exit"));
    LK_RETURN_IF_ERROR(t.CheckNoUnknownKeys());
    spec.stop_timeout_ms = stop_timeout_s * 1000;
    if (spec.name.empty()) return Status::InvalidArgument(entry + " has no name");
    if (!names.insert(spec.name).second) {
      return Status::InvalidArgument(entry + ": component '" + spec.name + "' is listed twice");
    }
    if (spec.managed() && (!spec.start.empty() || !spec.stop.empty())) {
      return Status::InvalidArgument(entry + " ('" + spec.name +
                                     "') has both exec and start/stop: pick managed or external");
    }
    if (!spec.managed() && (spec.start.empty() || spec.stop.empty() || spec.status.empty())) {
      return Status::InvalidArgument(entry + " ('" + spec.name +
                                     "') needs exec = [...], or start, stop and status commands");
    }
    c.components.push_back(std::move(spec));
  }
  LK_RETURN_IF_ERROR(root.CheckNoUnknownKeys());
  return c;
}

std::string NodeConfigToml(const NodeConfig& config, std::string_view header) {
  TomlWriter w;
  if (!header.empty()) w.Comment(header);
  if (!config.ledger_db.empty() || !config.ledger_control.empty()) {
    w.Table("ledger");
    if (!config.ledger_db.empty()) w.String("db", config.ledger_db);
    if (!config.ledger_control.empty()) w.String("control", config.ledger_control);
  }
  for (const auto& c : config.components) {
    w.TableArrayEntry("component");
    w.String("name", c.name);
    if (!c.exec.empty()) w.StringArray("exec", c.exec);
    if (!c.start.empty()) w.StringArray("start", c.start);
    if (!c.stop.empty()) w.StringArray("stop", c.stop);
    if (!c.status.empty()) w.StringArray("status", c.status);
    w.Int("stop_timeout_s", (c.stop_timeout_ms + 999) / 1000);
  }
  const NodeConfig defaults;
  if (!config.backup_ssh_options.empty() || config.backup_transfer_streams != defaults.backup_transfer_streams ||
      config.backup_flush_as_written != defaults.backup_flush_as_written ||
      config.backup_bwlimit_bytes_per_s != defaults.backup_bwlimit_bytes_per_s ||
      config.backup_background != defaults.backup_background) {
    w.Table("backup");
    if (!config.backup_ssh_options.empty()) w.StringArray("ssh_options", config.backup_ssh_options);
    if (config.backup_transfer_streams != defaults.backup_transfer_streams) {
      w.Int("transfer_streams", config.backup_transfer_streams);
    }
    if (config.backup_flush_as_written != defaults.backup_flush_as_written) {
      w.Bool("flush_as_written", config.backup_flush_as_written);
    }
    if (config.backup_bwlimit_bytes_per_s != 0) w.String("bwlimit", std::to_string(config.backup_bwlimit_bytes_per_s));
    if (config.backup_background != defaults.backup_background) w.Bool("background", config.backup_background);
  }
  if (config.http_listen != defaults.http_listen) {
    w.Table("http");
    w.String("listen", config.http_listen);
  }
  if (!config.client_paths.empty()) {
    w.Table("client");
    w.StringArray("paths", config.client_paths);
  }
  return w.text();
}

}  // namespace ledgerkeep
