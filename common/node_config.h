// NodeConfig: what runs on a node and where its ledger lives: the format of
// the agent's --node-config TOML file, its reader (the agent) and its writer
// (`ledgerkeep config init`, common/config_init.h).
//
//   [ledger]                       # replica nodes
//   db = "/data/r1/db"             # the ledger's RocksDB directory
//   control = "/data/r1/ledgerd.sock"
//
//   [[component]]                  # managed: the agent starts and supervises it
//   name = "ledgerd"
//   exec = ["ledgerd", "--db", "/data/r1/db", "--control", "/data/r1/ledgerd.sock"]
//   stop_timeout_s = 30            # SIGTERM, then wait this long for a clean exit
//
//   [[component]]                  # external: plug in docker or systemd
//   name = "concord"
//   start = ["docker", "start", "concord"]
//   stop = ["docker", "stop", "concord"]
//   status = ["docker", "inspect", "-f", "{{.State.Running}}", "concord"]  # exit 0 + "true"/"" = running
//   stop_timeout_s = 60
//
//   [backup]
//   ssh_options = ["-o", "UserKnownHostsFile=/etc/ledgerkeep/known_hosts"]  # extra ssh args
//   transfer_streams = 2           # parallel rsync streams for large transfers (1..8)
//   flush_as_written = true        # flush new files to disk on the destination as they
//                                  # arrive and drop them from its page cache (snapshot_flusher.h)
//
//   [client]                       # client nodes: what `backup client` archives
//   paths = ["/config/daml-ledger-api/environment-vars", "/mnt/data/db"]
//
// Relative paths are relative to the file's directory. A wrong type, an
// out-of-range value or an unknown key is InvalidArgument naming the file and
// the key (common/toml_section.h); a missing file is NotFound.
// Thread-safety: free functions; a NodeConfig is a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ledgerkeep {

struct ComponentSpec {
  std::string name;
  std::vector<std::string> exec;   // managed mode
  std::vector<std::string> start;  // external mode
  std::vector<std::string> stop;
  std::vector<std::string> status;
  int64_t stop_timeout_ms = 30'000;
  bool managed() const { return !exec.empty(); }
};

struct NodeConfig {
  std::string path;
  std::string ledger_db;
  std::string ledger_control;
  std::vector<ComponentSpec> components;
  std::vector<std::string> backup_ssh_options;
  int backup_transfer_streams = 2;        // [backup] transfer_streams, 1..8. Default: 2
  bool backup_flush_as_written = true;    // [backup] flush_as_written. Default: true
  // [backup] bwlimit ("50M": bytes per second, powers of 1024). Default: 0, none.
  uint64_t backup_bwlimit_bytes_per_s = 0;
  // [backup] background: checksums, rsync and ssh at nice 19 in the idle
  // I/O class. Default: false.
  bool backup_background = false;
  std::vector<std::string> client_paths;  // absolute
  // [http] listen (issue 16): the agent's runbook API and /metrics,
  // "<IPv4>:<port>" or "off". Default: "127.0.0.1:8546" (loopback, as in the runbook).
  std::string http_listen = "127.0.0.1:8546";
};

Result<NodeConfig> LoadNodeConfig(const std::string& path);

// The TOML text LoadNodeConfig reads back as `config` (path aside): [ledger]
// when it names a DB or control socket, every [[component]], [backup] with
// the keys that differ from their defaults, [client] when it lists paths;
// paths as given. stop_timeout_ms is written in whole seconds (rounded up).
// `header` becomes a comment at the top (may be empty).
std::string NodeConfigToml(const NodeConfig& config, std::string_view header);

}  // namespace ledgerkeep
