// Keys without a restart (issue 14, point 9): the broker re-reads its
// allowlist (the cluster config's [[allow]] and the keys file beside it,
// common/config.h KeysFilePath) when either file changes, and cuts off the
// connections of keys that left it.
//
// `ledgerkeep keys add/remove` rewrites the keys file crash-safely (tmp +
// fsync + rename), so a poll sees the old or the new file, never half of
// one. The files are compared by content, not mtime (two edits within one
// mtime tick are still seen).
// Thread-safety: AllowlistWatcher has one owner thread (the broker's).
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/config.h"

namespace ledgerkeep {

// What changed between two allowlists. A node id whose key or role changed
// is in both: its old binding removed, its new one added.
struct AllowlistChange {
  std::vector<AllowEntry> added;
  std::vector<AllowEntry> removed;
  bool empty() const { return added.empty() && removed.empty(); }
  // "added s2 (subscriber); removed s1 (subscriber)".
  std::string Describe() const;
};

AllowlistChange DiffAllowlists(const std::vector<AllowEntry>& before, const std::vector<AllowEntry>& after);

class AllowlistWatcher {
 public:
  // `config_path` "" (a config built in memory): Poll() never reports a change.
  explicit AllowlistWatcher(std::string config_path);

  // nullopt while neither file changed since the last call (or since
  // construction); otherwise the config loaded anew, or why it cannot be
  // loaded (reported once per change: the broker keeps the allowlist it has).
  std::optional<Result<ClusterConfig>> Poll();

 private:
  std::string Contents() const;

  std::string config_path_;
  std::string last_;
};

// Shuts down (shutdown(2), both directions) the TCP connections accepted
// on local port `port`: all of them, or only those whose descriptor is in
// `only_fds` when it is given. libzmq sees the peer gone, closes the
// descriptor itself and the peer reconnects, going through ZAP again.
// Returns how many were shut down. Linux (/proc/self/fd).
int ShutdownAcceptedConnections(int port, const std::optional<std::set<int>>& only_fds);

}  // namespace ledgerkeep
