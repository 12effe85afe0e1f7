// BackupDestination: where a node's snapshots go (DESIGN.md §6).
//
//   /backups/r1                       a local (or mounted) directory
//   [user@]host:/backups/r1           over SSH with key authentication
//   rsync://[user@]host[:port]/module/r1   an rsync daemon
//
// Layout under every destination, one directory per replica:
//   .ledgerkeep-owner                 "cluster_id node_id": who owns it
//   snapshots/<id>/data/              the RocksDB files
//   snapshots/<id>/MANIFEST.json      files, sizes, checksums, block ids
//   snapshots/<id>/DONE               written last: the snapshot is complete
// A snapshot without DONE is incomplete and is never offered for restore.
//
// Every value that reaches a command line is validated here and passed as
// one argv element of its own (issue 13): a host or user is a plain name
// that cannot start with '-', paths are absolute and free of control
// characters, and the SSH key and known_hosts are file paths, nothing else.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backup/backup_types.h"
#include "common/status.h"

namespace ledgerkeep {

// Longest destination path accepted: what is left of PATH_MAX (4096) once
// "/snapshots/<id>/data/<file>" is appended.
inline constexpr size_t kMaxDestinationPathBytes = 3900;

struct BackupDestination {
  enum class Kind { kLocal, kSsh, kRsyncDaemon };
  Kind kind = Kind::kLocal;
  std::string user;       // ssh/rsync login ("" = default)
  std::string host;
  uint16_t port = 0;      // 0 = default (22 / 873)
  std::string path;       // absolute path; rsync daemon: "module/dir"
  std::string ssh_key;    // private key file for SSH ("" = ssh's default keys)
  // known_hosts file holding the SSH host's key ("" = the node's ssh_options
  // or ssh's own files). Host keys are always checked.
  std::string known_hosts;
  // Trust an unknown SSH host key on first use (recorded in known_hosts);
  // a changed key still fails. Default: false (unknown keys fail).
  bool accept_new_host_key = false;

  // The destination as the operator wrote it (after {node} expansion).
  std::string Display() const;
  // A canonical form for "is this the same place": kind, lower-case host,
  // port, and the lexically normal path without a trailing slash.
  std::string Normalized() const;
  // The destination's directory when it is on this machine (a local path),
  // "" when it is on another host.
  std::string LocalDirectory() const;
  // rsync's syntax for `<destination>/<sub>` (sub may be empty).
  std::string RsyncPath(const std::string& sub) const;
  // The ssh argv (program first, no host) for SSH destinations; empty for
  // the other kinds. `node_options` (the node's [backup] ssh_options) go
  // after this destination's own host-key settings and before the defaults,
  // so they override the defaults (ssh takes the first value of an option).
  // Host keys are checked strictly unless accept_new_host_key; then a new
  // key is recorded in known_hosts, else (when node_options name no
  // UserKnownHostsFile either) in `tofu_known_hosts` — never in the user's
  // own ~/.ssh/known_hosts.
  std::vector<std::string> SshArgv(const std::vector<std::string>& node_options = {},
                                   const std::string& tofu_known_hosts = "") const;
  // "user@host" for SSH commands.
  std::string UserHost() const;
};

// Replaces every "{node}" with node_id.
std::string ExpandNodePlaceholder(const std::string& destination, const std::string& node_id);

// Parses a destination string; rsync_user applies when the string has no
// user@, ssh_key/ssh_port for SSH. InvalidArgument, naming what is wrong,
// for anything that is not a plain destination (see the file comment).
Result<BackupDestination> ParseDestination(const std::string& destination, const std::string& rsync_user,
                                           const std::string& ssh_key, uint16_t ssh_port);
// The same from a command's target (its known_hosts and accept_new_host_key
// included), with {node} replaced by node_id.
Result<BackupDestination> ParseDestination(const BackupTarget& target, const std::string& node_id);

// Syntax of a file path given for ssh (`what`: "--ssh-key", "--known-hosts"):
// absolute, at most 4095 bytes, no control characters and no "${" (ssh
// expands ${VAR} in these paths). Spaces and quotes are fine.
Status ValidateSshFilePath(std::string_view path, std::string_view what);

// On the host that will run ssh: the key is an existing regular file and
// readable, and so is known_hosts (unless accept_new_host_key, which may
// create it). FailedPrecondition naming the file and what to do.
Status CheckSshFiles(const BackupDestination& d);

}  // namespace ledgerkeep
