#include "cli/config_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace ledgerkeep {
namespace {

// Where this ledgerkeep binary is: the node configs' ledgerd by default
// sits next to it, as in a build tree or an image's bin directory.
std::string OwnBinDir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

}  // namespace

std::unique_ptr<ConfigCommand> AddConfigCommand(CLI::App* app) {
  auto c = std::make_unique<ConfigCommand>();
  ConfigInitOptions& o = c->options;
  c->group = app->add_subcommand("config", "generate the files a cluster runs on");
  c->group->require_subcommand(1);
  CLI::App* init = c->group->add_subcommand(
      "init",
      "write CURVE keys, cluster.toml and one node config per agent under --out (with --backup-host also the "
      "backup server's SSH keys, known_hosts and backup.env), and load every file back to check it");
  c->init = init;
  init->add_option("--out", o.out_dir, "directory for the files (new, empty, or one config init wrote)")
      ->required();
  init->add_option("--replicas", o.replicas, "replica nodes r1..rN (each runs ledgerd)")->capture_default_str();
  init->add_option("--clients", o.clients, "client nodes c1..cN (each runs a stand-in service)")
      ->capture_default_str();
  init->add_option("--clones", o.clones, "restore clones clone1..cloneN (agents started with --clone)")
      ->capture_default_str();
  init->add_option("--cluster-id", o.cluster_id, "the cluster's name (letters, digits, . _ -)")
      ->capture_default_str();
  init->add_option("--broker-host", o.broker_host, "how agents and the CLI reach the broker")
      ->capture_default_str();
  init->add_option("--bind-host", o.bind_host, "where the broker listens, * for every interface (default: "
                                               "--broker-host)");
  init->add_option("--port-base", c->port_base, "the broker's cmd port; ctl and events take the next two")
      ->capture_default_str();
  init->add_option("--http-listen", o.http_listen,
                   "the broker's HTTP (status page, metrics, JSON API): <IPv4>:<port> or off (default: "
                   "127.0.0.1 and the port after the events port)");
  init->add_option("--heartbeat-ms", o.heartbeat_ms, "agents' heartbeat interval")->capture_default_str();
  init->add_option("--data-root", o.data_root, "node directories DIR/<node> on the nodes (default: OUT/data)");
  init->add_option("--bin-dir", o.bin_dir,
                   "where ledgerd is on the nodes (default: the directory of this ledgerkeep binary)");
  init->add_option("--blocks-per-sec", o.blocks_per_sec, "ledgerd's block rate")->capture_default_str();
  init->add_option("--payload-bytes", o.payload_bytes, "ledgerd's payload bytes per block")
      ->capture_default_str();
  init->add_option("--genesis-ms", o.genesis_ms,
                   "the chain's genesis time, ms since the epoch, shared by every replica (default: now)");
  init->add_option("--backup-host", o.backup_host,
                   "host name of an SSH backup server: generate its host key, the agents' SSH key, known_hosts "
                   "and backup.env");
  init->add_option("--backup-dir", o.backup_dir, "the backup server's backup root")->capture_default_str();
  auto* keep = init->add_flag("--keep-existing", c->keep_existing,
                              "if OUT/cluster.toml exists, keep it and its keys and write nothing");
  auto* force = init->add_flag("--force", c->force,
                               "replace an existing config and every key (also keys config init did not "
                               "write, e.g. an operator's from `ledgerkeep keygen`), or write into a directory "
                               "that holds other files");
  keep->excludes(force);
  c->group->fallthrough();
  init->fallthrough();
  return c;
}

Status RunConfigInit(const ConfigCommand& command, bool json) {
  ConfigInitOptions o = command.options;
  if (command.port_base < 1 || command.port_base > 65533) {
    return Status::InvalidArgument("--port-base must be 1..65533 (the broker takes it and the next two)");
  }
  o.cmd_port = command.port_base;
  o.ctl_port = command.port_base + 1;
  o.events_port = command.port_base + 2;
  if (o.bin_dir.empty()) o.bin_dir = OwnBinDir();
  o.existing = command.keep_existing ? ConfigInitOptions::Existing::kKeep
               : command.force       ? ConfigInitOptions::Existing::kReplace
                                     : ConfigInitOptions::Existing::kRefuse;
  LK_ASSIGN_OR_RETURN(ConfigInitResult r, InitClusterConfig(o));
  const std::string config_path = r.out_dir + "/cluster.toml";
  if (json) {
    nlohmann::json j = {{"out", r.out_dir},
                        {"kept", r.kept},
                        {"cluster_config", config_path},
                        {"cluster_id", r.cluster.cluster_id},
                        {"members", r.members},
                        {"written", r.written}};
    std::printf("%s\n", j.dump().c_str());
    return Status::OK();
  }
  if (r.kept) {
    std::printf("%s exists; kept it and its keys (cluster %s, %zu allowlisted keys)\n", config_path.c_str(),
                r.cluster.cluster_id.c_str(), r.cluster.allow.size());
    return Status::OK();
  }
  std::printf("wrote %zu files under %s: cluster %s, broker %s:%d-%d, nodes", r.written.size(), r.out_dir.c_str(),
              r.cluster.cluster_id.c_str(), r.cluster.connect_host.c_str(), r.cluster.cmd_port,
              r.cluster.events_port);
  for (size_t i = 1; i < r.members.size(); ++i) std::printf(" %s", r.members[i].c_str());
  std::printf("\n  keys/ (secret keys mode 0600), nodes/<node>.toml, members, cluster.toml%s\n",
              o.backup_host.empty() ? "" : ", backup.env and the backup server's SSH keys and known_hosts");
  std::printf("export LEDGERKEEP_CONFIG=%s\n", config_path.c_str());
  return Status::OK();
}

void RegisterConfigCommand(CLI::App& app, const GlobalFlags& g, CommandTable& commands) {
  std::shared_ptr<ConfigCommand> config = AddConfigCommand(&app);
  commands.Add(config->init, [config, &g] { return ExitWith(RunConfigInit(*config, g.json)); });
}

}  // namespace ledgerkeep
