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
#pragma once

#include <cstdint>
#include <string>

#include "common/codec.h"
#include "common/status.h"

namespace ledgerkeep {

struct BackupDestination {
  enum class Kind { kLocal, kSsh, kRsyncDaemon };
  Kind kind = Kind::kLocal;
  std::string user;       // ssh/rsync login ("" = default)
  std::string host;
  uint16_t port = 0;      // 0 = default (22 / 873)
  std::string path;       // absolute path; rsync daemon: "module/dir"
  std::string ssh_key;    // private key file for SSH

  // The destination as the operator wrote it (after {node} expansion).
  std::string Display() const;
  // A canonical form for "is this the same place": kind, lower-case host,
  // port, and the lexically normal path without a trailing slash.
  std::string Normalized() const;
  // rsync's syntax for `<destination>/<sub>` (sub may be empty).
  std::string RsyncPath(const std::string& sub) const;
  // ssh -e value for SSH destinations ("" otherwise).
  std::string SshCommand() const;
  // "user@host" for SSH commands.
  std::string UserHost() const;
};

// Replaces every "{node}" with node_id.
std::string ExpandNodePlaceholder(const std::string& destination, const std::string& node_id);

// Parses a destination string; rsync_user applies when the string has no
// user@, ssh_key/ssh_port for SSH.
Result<BackupDestination> ParseDestination(const std::string& destination, const std::string& rsync_user,
                                           const std::string& ssh_key, uint16_t ssh_port);
Result<BackupDestination> ParseDestination(const wire::BackupTargetT& target, const std::string& node_id);

}  // namespace ledgerkeep
