#include "broker/allowlist_reload.h"

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <map>

#include "common/file_util.h"

namespace ledgerkeep {

std::string AllowlistChange::Describe() const {
  auto list = [](const std::vector<AllowEntry>& v) {
    std::string out;
    for (const auto& e : v) out += (out.empty() ? "" : ", ") + e.node_id + " (" + RoleName(e.role) + ")";
    return out;
  };
  std::string out;
  if (!added.empty()) out = "added " + list(added);
  if (!removed.empty()) out += (out.empty() ? "removed " : "; removed ") + list(removed);
  return out.empty() ? "no change" : out;
}

AllowlistChange DiffAllowlists(const std::vector<AllowEntry>& before, const std::vector<AllowEntry>& after) {
  auto same = [](const AllowEntry& a, const AllowEntry& b) {
    return a.node_id == b.node_id && a.role == b.role && a.public_z85 == b.public_z85;
  };
  std::map<std::string, const AllowEntry*> old_by_id, new_by_id;
  for (const auto& e : before) old_by_id[e.node_id] = &e;
  for (const auto& e : after) new_by_id[e.node_id] = &e;
  AllowlistChange c;
  for (const auto& e : before) {
    auto it = new_by_id.find(e.node_id);
    if (it == new_by_id.end() || !same(e, *it->second)) c.removed.push_back(e);
  }
  for (const auto& e : after) {
    auto it = old_by_id.find(e.node_id);
    if (it == old_by_id.end() || !same(e, *it->second)) c.added.push_back(e);
  }
  return c;
}

AllowlistWatcher::AllowlistWatcher(std::string config_path) : config_path_(std::move(config_path)) {
  last_ = Contents();
}

std::string AllowlistWatcher::Contents() const {
  if (config_path_.empty()) return "";
  std::string out;
  for (const std::string& p : {config_path_, KeysFilePath(config_path_)}) {
    auto text = ReadFileToString(p);
    // A missing or unreadable file is content too: its coming back is a change.
    out += text.ok() ? *text : "\x01missing";
    out += '\0';
  }
  return out;
}

std::optional<Result<ClusterConfig>> AllowlistWatcher::Poll() {
  if (config_path_.empty()) return std::nullopt;
  std::string now = Contents();
  if (now == last_) return std::nullopt;
  last_ = std::move(now);
  return LoadClusterConfig(config_path_);
}

int ShutdownAcceptedConnections(int port, const std::optional<std::set<int>>& only_fds) {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  std::vector<int> fds;
  while (dirent* ent = ::readdir(d)) {
    char* end = nullptr;
    const long fd = std::strtol(ent->d_name, &end, 10);
    if (end == ent->d_name || *end != '\0') continue;
    if (only_fds && only_fds->count(static_cast<int>(fd)) == 0) continue;
    fds.push_back(static_cast<int>(fd));
  }
  ::closedir(d);
  int n = 0;
  for (int fd : fds) {
    sockaddr_storage local{}, peer{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) continue;  // not a socket
    int local_port = -1;
    if (local.ss_family == AF_INET) {
      local_port = ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
    } else if (local.ss_family == AF_INET6) {
      local_port = ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
    }
    if (local_port != port) continue;
    len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;  // the listening socket
    if (::shutdown(fd, SHUT_RDWR) == 0) ++n;
  }
  return n;
}

}  // namespace ledgerkeep
