// ledgerd: a RocksDB key-value blockchain standing in for a Concord replica.
// Flags are parsed here; everything else lives in lk_ledger.
#include <CLI/CLI.hpp>
#include <sys/stat.h>
#include <pthread.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>

#include "ledger/control_client.h"
#include "ledger/control_server.h"
#include "ledger/ledger_node.h"

int main(int argc, char** argv) {
  // Ledger data, journals and backups are private to the owner (issue 13):
  // every file and directory this process (and what it starts) creates.
  ::umask(077);
  using namespace ledgerkeep::ledger;
  LedgerNodeOptions options;
  std::string control;
  int64_t genesis_time_ms = 0;
  uint64_t seed = options.params.seed;

  CLI::App app{
      "ledgerd: a RocksDB key-value blockchain replica (stand-in for a Concord replica).\n"
      "Produces deterministic time blocks on a cluster clock, catches up by state transfer,\n"
      "wedges at checkpoint stop points, and serves its agent on a local control socket.\n"
      "SIGTERM/SIGINT: stop producing, flush, close the DB, remove the socket, exit 0."};
  app.add_option("--db", options.db_path, "RocksDB ledger directory (created if missing)")->required();
  app.add_option("--control", control,
                 "control socket path, or an ipc:// endpoint (default: <parent of --db>/ledgerd.sock)");
  app.add_option("--seed", seed, "chain seed: replicas of one cluster must share it (used when the DB is created)")
      ->capture_default_str();
  auto* genesis_opt = app.add_option("--genesis-time-ms", genesis_time_ms,
                                     "cluster genesis time, ms since the Unix epoch; pass the same value to every "
                                     "replica (used when the DB is created; default: now)");
  app.add_option("--blocks-per-sec", options.blocks_per_sec, "block production rate on the cluster clock, 0 = as fast as possible")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--payload-bytes", options.params.payload_bytes,
                 "payload bytes per block (used when the DB is created)")
      ->capture_default_str();
  app.add_option("--keyspace", options.params.keyspace,
                 "number of distinct keys key-<id % keyspace> (used when the DB is created)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--st-blocks-per-sec", options.st_blocks_per_sec,
                 "state transfer fetch rate in blocks/s, 0 = unlimited")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--st-threshold", options.state_transfer_threshold,
                 "catch up by state transfer when more than this many blocks behind")
      ->capture_default_str();
  app.add_flag("--fault-slow-path", options.fault_slow_path,
               "start with the fault flag set: produced blocks count as slow path");
  app.add_flag("--read-only", options.read_only,
               "open the DB read-only (a restored clone): produce nothing, serve queries, refuse writes");
  app.add_option("--write-buffer-bytes", options.write_buffer_size, "RocksDB memtable size per column family")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  options.params.seed = seed;
  if (*genesis_opt) options.genesis_time_ms = genesis_time_ms;
  if (control.empty()) control = DefaultControlPath(options.db_path);

  auto logger = spdlog::stderr_color_mt("ledgerd");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ ledgerd[%P] %v");

  // Signals are taken synchronously by main (sigwait), so they are blocked
  // before any thread starts and inherited blocked by all of them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto node = LedgerNode::Open(options);
  if (!node.ok()) {
    spdlog::error("cannot open ledger: {}", node.status().ToString());
    return 1;
  }
  auto server = ControlServer::Start(control, **node);
  if (!server.ok()) {
    spdlog::error("cannot start control socket: {}", server.status().ToString());
    return 1;
  }
  if (auto s = (*node)->Start(); !s.ok()) {
    spdlog::error("cannot start block production: {}", s.ToString());
    return 1;
  }

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  ledgerkeep::Status stopped = (*node)->Stop();
  (*server)->Stop();
  if (!stopped.ok()) {
    spdlog::error("shutdown: {}", stopped.ToString());
    return 1;
  }
  node->reset();
  spdlog::info("ledger closed, exiting");
  return 0;
}
