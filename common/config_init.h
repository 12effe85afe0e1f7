// InitClusterConfig: every file a ledgerkeep cluster runs on, generated under
// one directory OUT. `ledgerkeep config init` is its command line; `./run
// cluster up` and `./run gen-config` (and with them the fault suite and the
// netns cluster), the docker-compose init service and the test harness
// (tests/support/test_cluster.cc) all generate their clusters with it.
//
//   OUT/keys/<name>.key, .pub       CURVE key pairs (common/curve_keys.h; .key mode 0600):
//                                   broker, operator, every agent, the extra keys
//   OUT/nodes/<node>.toml           one node config per agent (common/node_config.h)
//   OUT/members                     "broker" and the agent node ids, one a line
//   OUT/cluster.toml                the cluster config (common/config.h), written last
// and with a backup host (an SSH backup server, as `./run cluster up` runs one):
//   OUT/keys/backup_id[.pub]        the agents' SSH key (ed25519, by ssh-keygen)
//   OUT/keys/backup_host_key[.pub]  the backup server's SSH host key
//   OUT/keys/authorized_keys        backup_id.pub, for the server's root
//   OUT/keys/known_hosts            the server's host key under the backup host's name;
//                                   every node config's [backup] ssh_options name it
//                                   (UserKnownHostsFile), so no key is trusted on first use
//   OUT/backup.env                  BACKUP_HOST, BACKUP_DIR, BACKUP_DESTINATION and
//                                   BACKUP_SSH_KEY in sh syntax (`. OUT/backup.env`)
//
// Nodes: r1..rN replicas, each running ledgerd (one genesis time and chain
// seed for all, so they hold one chain); c1..cM clients, each running a
// stand-in service that appends to <data-root>/<node>/client/db/activity.log,
// with [client] paths <data-root>/<node>/client/{config,db}; clone1..cloneK
// restore clones (replica agents started with --clone) running `ledgerd
// --read-only` on what `ledgerkeep restore --to-node` puts there. Only files
// under OUT are written: a node's directory <data-root>/<node> is made where
// the node runs (`./run cluster`, compose/entrypoint.sh, the test harness).
//
// Checks: the options first (InvalidArgument naming the option), then every
// config written is loaded back with the loader its reader uses
// (LoadNodeConfig, LoadClusterConfig, LoadKeyFile); one that does not load is
// an error, and a cluster.toml that does not load is removed again.
//
// An existing OUT: with a cluster.toml in it, kRefuse (the default) is
// AlreadyExists, kKeep loads it and writes nothing, kReplace generates
// everything anew (every key changes). Without one, OUT must be empty (empty
// keys/ and nodes/ directories allowed) or hold the files of an interrupted
// run (OUT/.config-init-incomplete is there); anything else is AlreadyExists
// unless kReplace, so keys are never sprayed into a directory that holds
// someone's files, and a key an operator put in OUT/keys (`ledgerkeep keygen`)
// is never overwritten by default.
//
// Crash behaviour: OUT/.config-init-incomplete is written first, every file
// is published atomically (tmp + fsync + rename, common/file_util.h),
// cluster.toml last, and the marker removed once it has loaded back. So an
// interrupted run leaves no cluster.toml and its marker, and the next run
// generates everything again.
// Thread-safety: no shared state; concurrent runs must use different OUTs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/node_config.h"
#include "common/process.h"
#include "common/status.h"

namespace ledgerkeep {

// A key allowlisted besides the cluster's own nodes (a second operator, a
// subscriber).
struct ExtraKeySpec {
  std::string name;  // also its node id in the allowlist
  wire::Role role = wire::Role::Operator;
};

struct ConfigInitOptions {
  std::string out_dir;  // required; made if missing. Relative = to the working directory
  int replicas = 4;     // r1..rN, 0..999. Default: 4
  int clients = 1;      // c1..cM, 0..999. Default: 1
  int clones = 0;       // clone1..cloneK, 0..999. Default: 0
  std::vector<ExtraKeySpec> extra_keys;  // Default: none

  std::string cluster_id = "local";        // letters, digits, '.', '_', '-'. Default: "local"
  std::string broker_host = "127.0.0.1";   // how agents and the CLI reach the broker. Default: 127.0.0.1
  std::string bind_host;                   // where the broker listens ("*" = all). Default: broker_host
  int cmd_port = 7001;                     // Defaults: 7001, 7002, 7003
  int ctl_port = 7002;
  int events_port = 7003;
  // The broker's HTTP ([http] listen). Default: 127.0.0.1 and the port after
  // events_port (7004 with the default ports). Not written when
  // cluster_config_extra has an [http] table of its own.
  std::string http_listen;
  int heartbeat_ms = 1000;  // [liveness]. Defaults: 1000, 3, 10
  int suspect_after = 3;
  int lost_after = 10;

  std::string data_root;  // node directories <data_root>/<node>. Default: <out_dir>/data
  std::string bin_dir;    // required: where ledgerd is on the nodes (and here: it must exist)
  int blocks_per_sec = 20;        // ledgerd --blocks-per-sec. Default: 20
  int payload_bytes = 16384;      // ledgerd --payload-bytes. Default: 16384
  int st_blocks_per_sec = 2000;   // ledgerd --st-blocks-per-sec. Default: 2000
  int64_t genesis_ms = 0;         // ledgerd --genesis-time-ms. Default (0): now
  std::vector<std::string> ledgerd_extra_args;  // appended to every replica's ledgerd. Default: none
  int ledgerd_stop_timeout_s = 30;              // replicas' and clones' ledgerd. Default: 30
  int client_activity_interval_ms = 1000;       // the client stand-in's write period. Default: 1000

  std::string backup_host;                   // an SSH backup server's host name. Default: none
  std::string backup_dir = "/srv/backups";   // its backup root. Default: /srv/backups

  // TOML appended to cluster.toml ([[hook]] entries) and to every node config
  // (a [backup] section): tables and arrays of tables only
  // (TomlWriter::AppendDocument). Default: none.
  std::string cluster_config_extra;
  std::string node_config_extra;

  enum class Existing { kRefuse, kKeep, kReplace };
  Existing existing = Existing::kRefuse;  // see the header comment. Default: kRefuse

  ProcessRunner* runner = nullptr;  // runs ssh-keygen. Default (null): ProcessRunner::Real()
};

struct ConfigInitResult {
  std::string out_dir;   // absolute
  bool kept = false;     // an existing config was kept (Existing::kKeep); nothing was written
  ClusterConfig cluster;  // OUT/cluster.toml as loaded back
  std::vector<std::string> members;                // "broker", r1.., c1.., clone1..
  std::map<std::string, NodeConfig> node_configs;  // per agent, as loaded back (empty when kept)
  std::vector<std::string> written;                // files written, relative to out_dir, in order
};

Result<ConfigInitResult> InitClusterConfig(const ConfigInitOptions& options);

// The agent node ids of a cluster of that size, in members order: r1..rN,
// c1..cM, clone1..cloneK.
std::vector<std::string> ClusterNodeIds(int replicas, int clients, int clones);

}  // namespace ledgerkeep
