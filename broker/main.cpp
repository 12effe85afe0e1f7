// ledgerkeep-broker: flags, logging and signals; the work is in broker.h.
#include <CLI/CLI.hpp>
#include <sys/stat.h>
#include <spdlog/spdlog.h>

#include "broker/broker.h"
#include "broker/http_api.h"
#include "broker/maintenance_workflow.h"
#include "common/daemon.h"
#include "common/logging.h"

using namespace ledgerkeep;

int main(int argc, char** argv) {
  // Ledger data, journals and backups are private to the owner (issue 13):
  // every file and directory this process (and what it starts) creates.
  ::umask(077);
  CLI::App app{
      "ledgerkeep-broker: the central process of a ledgerkeep cluster. It publishes commands to "
      "the replica and client agents, tracks their liveness, delivers every command reliably "
      "and keeps the durable event log. All endpoints use CURVE; only keys in the config's "
      "allowlist may connect."};
  std::string config_path;
  std::string key_path;
  std::string data_dir;
  std::string log_level = "info";
  int64_t default_timeout_ms = 60'000;
  int64_t ack_timeout_ms = 2'000;
  uint64_t retain_count = 1'000'000;
  int64_t retain_age_s = 30LL * 24 * 3600;
  app.add_option("--config", config_path, "cluster config (TOML); default: $LEDGERKEEP_CONFIG")
      ->envname("LEDGERKEEP_CONFIG");
  app.add_option("--key", key_path, "the broker's CURVE key file (from `ledgerkeep keygen`)")
      ->required();
  app.add_option("--data-dir", data_dir,
                 "where the broker keeps its state: nodes, pending commands, event log")
      ->required();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  app.add_option("--default-timeout-ms", default_timeout_ms,
                 "deadline of commands issued without a timeout")->capture_default_str();
  app.add_option("--ack-timeout-ms", ack_timeout_ms,
                 "redeliver a command over ctl when a target has not acked for this long")
      ->capture_default_str();
  app.add_option("--event-retention-count", retain_count, "keep at most this many events")
      ->capture_default_str();
  app.add_option("--event-retention-age-s", retain_age_s, "drop events older than this")
      ->capture_default_str();
  // Before the required options are checked: it needs none of them. The
  // fault suite reads the step list from here instead of keeping a copy.
  app.add_flag_callback(
      "--print-maintenance-steps",
      [] {
        std::printf("%s\n", MaintenanceStepsJson(MaintenanceMode::kOnline).dump(2).c_str());
        throw CLI::Success();
      },
      "print the (online) maintenance run's steps in order (JSON: name, what a failure does, hook) and exit");
  app.add_flag_callback(
      "--print-offline-maintenance-steps",
      [] {
        std::printf("%s\n", MaintenanceStepsJson(MaintenanceMode::kOffline).dump(2).c_str());
        throw CLI::Success();
      },
      "the same for `maintenance run --offline`");
  CLI11_PARSE(app, argc, argv);

  if (Status s = InitLogging("broker", log_level); !s.ok()) {
    std::fprintf(stderr, "ledgerkeep-broker: %s\n", s.message().c_str());
    return 2;
  }
  auto identity = LoadProcessIdentity(config_path, key_path);
  if (!identity.ok()) {
    spdlog::error("{}", identity.status().message());
    return 2;
  }
  const ClusterConfig* config = &identity->config;
  const CurveKeyPair* key = &identity->key;
  if (key->public_z85 != config->broker_public_key) {
    spdlog::error("the key in {} is not the broker key named in {} (broker.public_key); agents "
                  "would refuse to talk to this broker",
                  key_path, config->path);
    return 2;
  }

  auto http_listen = ParseListenAddress(config->path + ": [http] listen", config->http_listen);
  if (!http_listen.ok()) {
    spdlog::error("{}", http_listen.status().message());
    return 2;
  }
  std::string http_token;
  if (!http_listen->off) {
    auto token = LoadOrCreateHttpToken(config->http_token_file);
    if (!token.ok()) {
      spdlog::error("{}", token.status().message());
      return 2;
    }
    http_token = *token;
  }

  BlockStopSignals();  // every thread; this one waits for them

  BrokerOptions opt;
  opt.config = *config;
  opt.key = *key;
  opt.data_dir = data_dir;
  opt.default_timeout_ms = default_timeout_ms;
  opt.tracker.ack_timeout_ms = ack_timeout_ms;
  opt.events.retain_count = retain_count;
  opt.events.retain_age_ms = retain_age_s * 1000;
  auto broker = Broker::Start(std::move(opt));
  if (!broker.ok()) {
    spdlog::error("cannot start: {}", broker.status().ToString());
    return 1;
  }
  std::unique_ptr<BrokerHttp> http;
  if (!http_listen->off) {
    BrokerHttpOptions ho;
    ho.listen = *http_listen;
    ho.token = http_token;
    ho.client = (*broker)->InternalClientOptions();
    auto started = BrokerHttp::Start(std::move(ho));
    if (!started.ok()) {
      spdlog::error("cannot start: {}", started.status().message());
      (*broker)->Stop();
      return 1;
    }
    http = std::move(*started);
  }
  if (int sig = WaitForStopSignal([&] { return (*broker)->Exited(); }); sig != 0) {
    spdlog::info("signal {}: shutting down", sig);
    if (http) http->Stop();  // its inproc sockets close before the broker's context
    (*broker)->Stop();
  }
  if (http) http->Stop();
  Status s = (*broker)->Wait();
  if (!s.ok()) {
    spdlog::error("broker stopped: {}", s.ToString());
    return 1;
  }
  spdlog::info("broker stopped cleanly");
  return 0;
}
