// ledgerkeep-agent: flags, logging and signals; the work is in agent.h.
#include <CLI/CLI.hpp>
#include <sys/stat.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "agents/agent.h"
#include "agents/backup_service.h"
#include "agents/client_backup.h"
#include "agents/http_api.h"
#include "agents/node_handlers.h"
#include "agents/restore_handlers.h"
#include "common/daemon.h"
#include "common/logging.h"

using namespace ledgerkeep;

int main(int argc, char** argv) {
  // Ledger data, journals and backups are private to the owner (issue 13):
  // every file and directory this process (and what it starts) creates.
  ::umask(077);
  CLI::App app{
      "ledgerkeep-agent: runs on every replica and client node. It connects to the broker "
      "(CURVE), heartbeats, and executes the commands addressed to its node, reporting progress "
      "and results. Its journal under --data-dir makes command delivery exactly-once across "
      "restarts."};
  std::string config_path, key_path, data_dir, node_id, role_name, node_config_path,
      log_level = "info";
  app.add_option("--config", config_path, "cluster config (TOML); default: $LEDGERKEEP_CONFIG")
      ->envname("LEDGERKEEP_CONFIG");
  app.add_option("--key", key_path, "this node's CURVE key file (from `ledgerkeep keygen`)")
      ->required();
  app.add_option("--role", role_name, "replica or client")
      ->required()
      ->check(CLI::IsMember({"replica", "client"}));
  app.add_option("--node-id", node_id, "this node's id, as in the allowlist")->required();
  app.add_option("--data-dir", data_dir, "where the agent keeps its journal")->required();
  app.add_option("--node-config", node_config_path,
                 "this node's components and ledger (TOML; see README 'Node config'). Without it "
                 "the agent manages no components");
  bool clone = false;
  app.add_flag("--clone", clone,
               "a restore clone (replica role): restores snapshots with `ledgerkeep restore --to-node`, runs "
               "ledgerd --read-only on them, and is never part of the live cluster's wedge, maintenance or "
               "backups");
  std::string http_listen;
  app.add_option("--http-listen", http_listen,
                 "where the runbook's HTTP API and /metrics listen: ADDR:PORT or off (overrides the node "
                 "config's [http] listen; default 127.0.0.1:8546)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (Status s = InitLogging("agent-" + node_id, log_level); !s.ok()) {
    std::fprintf(stderr, "ledgerkeep-agent: %s\n", s.message().c_str());
    return 2;
  }
  auto identity = LoadProcessIdentity(config_path, key_path);
  if (!identity.ok()) {
    spdlog::error("{}", identity.status().message());
    return 2;
  }
  const ClusterConfig* config = &identity->config;
  const CurveKeyPair* key = &identity->key;
  auto journal = AgentJournal::OpenDurable(data_dir + "/journal");
  if (!journal.ok()) {
    spdlog::error("cannot open the agent journal: {}", journal.status().ToString());
    return 1;
  }
  auto services = std::make_shared<NodeServices>();
  if (!node_config_path.empty()) {
    auto nc = LoadNodeConfig(node_config_path);
    if (!nc.ok()) {
      spdlog::error("{}", nc.status().message());
      return 2;
    }
    services->config = *nc;
  }
  services->supervisor = std::make_unique<ComponentSupervisor>(
      services->config.components, data_dir + "/components", ProcessRunner::Real());
  if (clone && role_name != "replica") {
    spdlog::error("--clone needs --role replica");
    return 2;
  }
  // The flag wins over the node config; both are checked before anything starts.
  const std::string listen_origin =
      !http_listen.empty() ? "--http-listen"
      : node_config_path.empty() ? "the default (no --node-config)"
                                 : "[http] listen in " + node_config_path;
  auto listen = ParseListenAddress(listen_origin, http_listen.empty() ? services->config.http_listen : http_listen);
  if (!listen.ok()) {
    spdlog::error("{}", listen.status().message());
    return 2;
  }
  // A clone without a restored DB yet has nothing to serve.
  const bool nothing_to_serve = clone && !services->config.ledger_db.empty() &&
                                !std::filesystem::exists(services->config.ledger_db);
  if (Status s = nothing_to_serve ? Status::OK() : services->supervisor->AutoStart(); !s.ok()) {
    // Reported, not fatal: the operator can see it and retry `node start`.
    spdlog::error("starting components: {}", s.message());
  }

  BlockStopSignals();  // every thread; this one waits for them

  AgentOptions opt;
  opt.config = *config;
  opt.key = *key;
  opt.node_id = node_id;
  opt.role = *ParseRole(role_name);
  opt.clone = clone;
  opt.journal = std::move(*journal);
  opt.data_dir = data_dir;
  const std::string version = opt.version;
  const wire::Role role = *ParseRole(role_name);
  BackupServiceOptions bo;
  bo.cluster_id = config->cluster_id;
  bo.node_id = node_id;
  bo.data_dir = data_dir;
  bo.node = services->config;
  auto backups = std::make_unique<BackupService>(std::move(bo));
  if (Status s = backups->Load(); !s.ok()) {
    spdlog::error("cannot load the backup configuration: {}", s.ToString());
    return 1;
  }
  HandlerMap handlers = BuildHandlers(role, services);
  for (auto& [type, h] : backups->Handlers()) {
    // Client nodes have no intermittent backup: only a destination (DESIGN §6).
    if (role == wire::Role::Client && type != wire::CommandBody::ConfigureBackup &&
        type != wire::CommandBody::GetBackupStatus) {
      continue;
    }
    handlers[type] = h;
  }
  if (role == wire::Role::Client) {
    ClientBackupTuning tuning;
    tuning.ssh_options = services->config.backup_ssh_options;
    handlers[wire::CommandBody::ClientBackup] = std::make_shared<ClientBackupHandler>(
        node_id, services->config.client_paths, data_dir + "/client-backup",
        [b = backups.get()] { return b->ConfiguredTarget(); }, ProcessRunner::Real(), tuning);
  }
  RestoreHandlerOptions ro;
  ro.node_id = node_id;
  ro.role = role;
  ro.clone = clone;
  ro.services = services;
  ro.work_dir = data_dir + "/restore";
  ro.configured_destination = [b = backups.get()] { return b->ConfiguredTarget(); };
  for (auto& [type, h] : RestoreHandlers(ro)) handlers[type] = h;
  auto agent = Agent::Start(std::move(opt), std::move(handlers));
  if (!agent.ok()) {
    spdlog::error("cannot start: {}", agent.status().message());
    return 2;
  }
  backups->SetReporter((*agent)->Reporter());
  std::unique_ptr<AgentHttp> http;
  if (!listen->off) {
    AgentHttpOptions ho;
    ho.listen = *listen;
    ho.node_id = node_id;
    ho.role = role;
    ho.clone = clone;
    ho.version = version;
    ho.broker.config = *config;
    ho.broker.key = *key;
    ho.broker.key.name = node_id;  // the broker checks that the sender is the key's node
    ho.backups = backups.get();
    ho.services = services;
    auto started = AgentHttp::Start(std::move(ho));
    if (!started.ok()) {
      spdlog::error("cannot serve the agent HTTP API on {} (from {}): {}. Give the agent another address with "
                    "--http-listen ADDR:PORT (or --http-listen off), or set [http] listen in its node config",
                    listen->ToString(), listen_origin, started.status().message());
      (*agent)->Stop();
      (void)(*agent)->Wait();
      return 2;
    }
    http = std::move(*started);
    backups->SetRunObserver([h = http.get()](const FinishedBackupRun& run) { h->ObserveBackupRun(run); });
  } else {
    spdlog::info("agent HTTP API off ({})", listen_origin);
  }
  if (role == wire::Role::Replica && !clone) backups->StartScheduler();
  if (int sig = WaitForStopSignal([&] { return (*agent)->Exited(); }); sig != 0) {
    spdlog::info("signal {}: shutting down", sig);
  }
  if (http) http->Stop();  // no new actions; the metrics stay until the runs end
  backups->Stop();  // before the agent: the scheduler reports through it
  (*agent)->Stop();
  Status s = (*agent)->Wait();
  if (!s.ok()) {
    spdlog::error("agent stopped: {}", s.ToString());
    return 1;
  }
  spdlog::info("agent stopped cleanly");
  return 0;
}
