// The cluster config file (TOML), shared by broker, agents and the CLI.
//
//   cluster_id = "local"
//   [broker]
//   connect_host = "127.0.0.1"   # how agents and the CLI reach the broker
//   bind_host = "127.0.0.1"      # where the broker listens ("*" = all)
//   cmd_port = 7001              # PUB    commands
//   ctl_port = 7002              # ROUTER control
//   events_port = 7003           # XPUB   event log
//   public_key = "<Z85>"         # the broker's CURVE server key
//   [operator]
//   key_file = "keys/operator.key"  # the CLI's default key (relative = to this file)
//   [liveness]
//   heartbeat_ms = 1000
//   suspect_after = 3            # missed beats before `suspect`
//   lost_after = 10              # missed beats before `lost`
//   [[allow]]                    # the ZAP allowlist: key -> node id + role
//   node_id = "r1"
//   role = "replica"             # replica | client | operator | subscriber
//   public_key = "<Z85>"
//   # keys.toml beside this file (written by `ledgerkeep keys add/remove`)
//   # holds more [[allow]] entries, same fields; loaded with this file.
//   [[hook]]                     # a maintenance hook the broker may run, by name
//   name = "stop-apps"           # `maintenance run --pre-hook stop-apps`
//   exec = ["/usr/local/bin/stop-apps", "--all"]   # argv, no shell; absolute path
//   timeout_s = 300              # killed (its process group) after this long
//
// ClusterConfigToml writes the file (`ledgerkeep config init`,
// common/config_init.h). Loading validates everything (types, ranges, ports, keys, duplicate node
// ids or keys) and refuses unknown keys (common/toml_section.h): every error
// is InvalidArgument naming the file and the key; a missing file is NotFound.
// Immutable after load; safe to share.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "schemas/ledgerkeep_generated.h"

namespace ledgerkeep {

struct AllowEntry {
  std::string node_id;
  wire::Role role = wire::Role::Unknown;
  std::string public_z85;
  // From the keys file (`ledgerkeep keys add`), not from the cluster config
  // itself: only these can be removed with `ledgerkeep keys remove`.
  bool in_keys_file = false;
};

// A command the broker runs as a maintenance hook (issue 13: an operator
// names one; the command itself comes from the broker host's config, never
// from the operator's request).
struct HookSpec {
  std::string name;
  std::vector<std::string> exec;  // argv; exec[0] is an absolute path
  int timeout_s = 300;            // Default: 300
};

struct ClusterConfig {
  std::string path;  // the file it came from
  std::string cluster_id = "ledgerkeep";
  std::string connect_host = "127.0.0.1";
  std::string bind_host = "127.0.0.1";
  int cmd_port = 7001;
  int ctl_port = 7002;
  int events_port = 7003;
  std::string broker_public_key;
  std::string operator_key_file;  // absolute, or empty
  int heartbeat_ms = 1000;
  int suspect_after = 3;
  int lost_after = 10;
  std::vector<AllowEntry> allow;
  std::vector<HookSpec> hooks;
  // [http] (issue 16): the broker's HTTP API, metrics and status page.
  // listen: "<IPv4>:<port>" or "off". Default: "127.0.0.1:7004" (loopback).
  std::string http_listen = "127.0.0.1:7004";
  // The bearer token's file (absolute once loaded). Default: keys/http.token
  // beside the config; the broker creates it (0600) on first start.
  std::string http_token_file;

  std::string ConnectEndpoint(int port) const;
  std::string BindEndpoint(int port) const;
  // Relative paths in the file are relative to the file's directory.
  std::string ResolvePath(const std::string& p) const;
  const AllowEntry* FindNode(const std::string& node_id) const;
  const AllowEntry* FindKey(const std::string& public_z85) const;
  const HookSpec* FindHook(const std::string& name) const;  // null if none
};

// A hook name as `--pre-hook`/`--post-hook` take it; InvalidArgument
// otherwise (a command line is not a name).
Status ValidateHookName(const std::string& name);

// Loads the cluster config and the keys file beside it (KeysFilePath; a
// missing keys file is an empty one). A node id or key listed twice across
// the two files is InvalidArgument naming the file.
Result<ClusterConfig> LoadClusterConfig(const std::string& path);

// The TOML text LoadClusterConfig reads back as `config` (path aside), keys
// in the order above. operator_key_file is written as given (a relative one
// stays relative to the file); [operator] only when it is set. `header`
// becomes a comment at the top (may be empty).
std::string ClusterConfigToml(const ClusterConfig& config, std::string_view header);
// The keys file of the cluster config at `config_path`: keys.toml in the
// same directory. The broker re-reads both files when either changes.
std::string KeysFilePath(const std::string& config_path);
// The keys file's text for `entries` (their [[allow]] tables, in order).
std::string FormatKeysFile(const std::vector<AllowEntry>& entries);
// A node id as the allowlist takes it: letters, digits, '-' and '_'.
Status ValidateNodeId(const std::string& node_id);

// "replica" <-> wire::Role::Replica, etc. Unknown strings are an error.
Result<wire::Role> ParseRole(const std::string& s);
std::string RoleName(wire::Role role);
std::string NodeStateName(wire::NodeState state);

}  // namespace ledgerkeep
