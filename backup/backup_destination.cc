#include "backup/backup_destination.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

namespace ledgerkeep {

std::string ExpandNodePlaceholder(const std::string& destination, const std::string& node_id) {
  std::string out = destination;
  for (size_t pos = out.find("{node}"); pos != std::string::npos; pos = out.find("{node}", pos)) {
    out.replace(pos, 6, node_id);
    pos += node_id.size();
  }
  return out;
}

namespace {

std::string NormalPath(const std::string& p) {
  std::string n = std::filesystem::path(p).lexically_normal().string();
  while (n.size() > 1 && n.back() == '/') n.pop_back();
  return n;
}

bool HasControlCharacter(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// Shown in messages: long or odd values cut and made printable.
std::string Shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 120)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (s.size() > 120) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

// A host name or address: letters, digits, '.', '_', '-', not starting with
// '-' or '.' (ssh would take "-oProxyCommand=..." for an option).
Status ValidateHost(const std::string& host, const std::string& destination) {
  if (host.empty()) return Status::InvalidArgument("backup destination '" + Shown(destination) + "' has no host");
  if (host.size() > 253 || host[0] == '-' || host[0] == '.' || !std::all_of(host.begin(), host.end(), NameChar)) {
    return Status::InvalidArgument("backup destination '" + Shown(destination) + "': host '" + Shown(host) +
                                   "' is not a host name or IPv4 address (letters, digits, '.', '_', '-'; "
                                   "not starting with '-')");
  }
  return Status::OK();
}

Status ValidateUser(const std::string& user, const std::string& what) {
  if (user.empty()) return Status::OK();
  if (user.size() > 64 || user[0] == '-' || !std::all_of(user.begin(), user.end(), NameChar)) {
    return Status::InvalidArgument(what + ": login '" + Shown(user) +
                                   "' is not a user name (letters, digits, '.', '_', '-'; not starting with '-')");
  }
  return Status::OK();
}

// Absolute (local, SSH) or module-relative (daemon) path: no control
// characters, within PATH_MAX with room for the snapshot layout, every
// component within NAME_MAX.
Status ValidatePath(const std::string& path, const std::string& destination) {
  if (path.size() > kMaxDestinationPathBytes) {
    return Status::InvalidArgument("backup destination path is " + std::to_string(path.size()) +
                                   " bytes long; at most " + std::to_string(kMaxDestinationPathBytes) +
                                   " are accepted (the snapshots' files go below it)");
  }
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end - start > 255) {
      return Status::InvalidArgument("backup destination '" + Shown(destination) + "' has a path component of " +
                                     std::to_string(end - start) + " bytes; at most 255 are allowed");
    }
    start = end + 1;
  }
  return Status::OK();
}

// ssh expands %-tokens in key and known_hosts paths: a literal '%' is "%%".
std::string SshPercentEscaped(const std::string& path) {
  std::string out;
  for (char c : path) {
    out += c;
    if (c == '%') out += '%';
  }
  return out;
}

// A value of `ssh -o Key=value`: ssh splits it like a config line (quotes
// group, backslash escapes), so the value goes in double quotes.
std::string SshConfigQuoted(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

Status ValidateSshFilePath(std::string_view path, std::string_view what) {
  const std::string w(what);
  if (path.empty() || path[0] != '/') {
    return Status::InvalidArgument(w + " must be an absolute path to a file, got '" + Shown(path) + "'");
  }
  if (path.size() > 4095) {
    return Status::InvalidArgument(w + " is " + std::to_string(path.size()) + " bytes long; a path has at most 4095");
  }
  if (HasControlCharacter(path)) return Status::InvalidArgument(w + " contains a control character");
  if (path.find("${") != std::string_view::npos) {
    return Status::InvalidArgument(w + " '" + Shown(path) +
                                   "' contains \"${\", which ssh would expand; use a path without it");
  }
  return Status::OK();
}

Result<BackupDestination> ParseDestination(const std::string& destination, const std::string& rsync_user,
                                           const std::string& ssh_key, uint16_t ssh_port) {
  if (destination.empty()) {
    return Status::InvalidArgument("no backup destination (use --destination /path, user@host:/dir or "
                                   "rsync://host/module/dir)");
  }
  if (HasControlCharacter(destination) || destination.find('\0') != std::string::npos) {
    return Status::InvalidArgument("backup destination contains a control character");
  }
  if (destination.size() > kMaxDestinationPathBytes + 300) {
    return Status::InvalidArgument("backup destination is " + std::to_string(destination.size()) +
                                   " bytes long; paths of at most " + std::to_string(kMaxDestinationPathBytes) +
                                   " bytes are accepted");
  }
  BackupDestination d;
  if (!ssh_key.empty()) LK_RETURN_IF_ERROR(ValidateSshFilePath(ssh_key, "--ssh-key"));
  LK_RETURN_IF_ERROR(ValidateUser(rsync_user, "--rsync-user"));
  d.ssh_key = ssh_key;
  std::string rest = destination;
  if (rest.rfind("rsync://", 0) == 0) {
    d.kind = BackupDestination::Kind::kRsyncDaemon;
    rest = rest.substr(8);
    auto slash = rest.find('/');
    if (slash == std::string::npos || slash + 1 >= rest.size()) {
      return Status::InvalidArgument("rsync destination '" + Shown(destination) +
                                     "' needs a module: rsync://host/module/dir");
    }
    std::string hostport = rest.substr(0, slash);
    d.path = NormalPath(rest.substr(slash + 1));
    if (d.path.empty() || d.path == "." || d.path[0] == '/' || d.path.rfind("..", 0) == 0) {
      return Status::InvalidArgument("rsync destination '" + Shown(destination) +
                                     "' needs a module: rsync://host/module/dir");
    }
    if (auto at = hostport.find('@'); at != std::string::npos) {
      d.user = hostport.substr(0, at);
      hostport = hostport.substr(at + 1);
    }
    if (auto colon = hostport.rfind(':'); colon != std::string::npos) {
      const std::string digits = hostport.substr(colon + 1);
      const bool numeric = !digits.empty() && digits.size() <= 5 &&
                           std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
      const int port = numeric ? std::stoi(digits) : 0;
      if (port <= 0 || port > 65535) {
        return Status::InvalidArgument("bad port in '" + Shown(destination) + "' (1..65535)");
      }
      d.port = static_cast<uint16_t>(port);
      hostport = hostport.substr(0, colon);
    }
    d.host = hostport;
  } else if (rest[0] == '/') {
    d.kind = BackupDestination::Kind::kLocal;
    d.path = NormalPath(rest);
  } else {
    auto colon = rest.find(':');
    if (colon == std::string::npos || colon == 0) {
      return Status::InvalidArgument("backup destination '" + Shown(destination) +
                                     "' is neither an absolute path, user@host:/dir nor rsync://...");
    }
    d.kind = BackupDestination::Kind::kSsh;
    std::string userhost = rest.substr(0, colon);
    std::string path = rest.substr(colon + 1);
    if (path.empty() || path[0] != '/') {
      return Status::InvalidArgument("SSH destination '" + Shown(destination) +
                                     "' needs an absolute path after ':'");
    }
    d.path = NormalPath(path);
    if (auto at = userhost.find('@'); at != std::string::npos) {
      d.user = userhost.substr(0, at);
      d.host = userhost.substr(at + 1);
    } else {
      d.host = userhost;
    }
    d.port = ssh_port;
  }
  if (d.user.empty()) d.user = rsync_user;
  if (d.kind != BackupDestination::Kind::kLocal) {
    LK_RETURN_IF_ERROR(ValidateHost(d.host, destination));
    LK_RETURN_IF_ERROR(ValidateUser(d.user, "backup destination '" + Shown(destination) + "'"));
  }
  if (d.path == "/" || d.path.empty()) {
    return Status::InvalidArgument("refusing to use '/' as a backup destination");
  }
  LK_RETURN_IF_ERROR(ValidatePath(d.path, destination));
  return d;
}

Result<BackupDestination> ParseDestination(const BackupTarget& target, const std::string& node_id) {
  LK_ASSIGN_OR_RETURN(auto d, ParseDestination(ExpandNodePlaceholder(target.destination, node_id),
                                               target.rsync_user, target.ssh_key, target.ssh_port));
  if (!target.known_hosts.empty()) LK_RETURN_IF_ERROR(ValidateSshFilePath(target.known_hosts, "--known-hosts"));
  d.known_hosts = target.known_hosts;
  d.accept_new_host_key = target.accept_new_host_key;
  return d;
}

Status CheckSshFiles(const BackupDestination& d) {
  if (d.kind != BackupDestination::Kind::kSsh) return Status::OK();
  auto check = [](const std::string& path, const char* what, bool may_be_missing) -> Status {
    if (path.empty()) return Status::OK();
    LK_RETURN_IF_ERROR(ValidateSshFilePath(path, what));
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      const int err = errno;
      if (err == ENOENT && may_be_missing) return Status::OK();
      return Status::FailedPrecondition(std::string(what) + " " + path + ": " + std::strerror(err) +
                                        " (give the path of a file on this node)");
    }
    if (!S_ISREG(st.st_mode)) {
      return Status::FailedPrecondition(std::string(what) + " " + path + " is not a regular file");
    }
    if (::access(path.c_str(), R_OK) != 0) {
      return Status::FailedPrecondition(std::string(what) + " " + path + " is not readable: " +
                                        std::strerror(errno));
    }
    return Status::OK();
  };
  LK_RETURN_IF_ERROR(check(d.ssh_key, "--ssh-key", false));
  return check(d.known_hosts, "--known-hosts", d.accept_new_host_key);
}

std::string BackupDestination::UserHost() const { return user.empty() ? host : user + "@" + host; }

std::string BackupDestination::Display() const {
  switch (kind) {
    case Kind::kLocal: return path;
    case Kind::kSsh: return UserHost() + ":" + path;
    case Kind::kRsyncDaemon:
      return "rsync://" + UserHost() + (port ? ":" + std::to_string(port) : "") + "/" + path;
  }
  return path;
}

std::string BackupDestination::Normalized() const {
  std::string h = host;
  std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
  switch (kind) {
    case Kind::kLocal: return "local:" + path;
    case Kind::kSsh: return "ssh:" + h + ":" + std::to_string(port ? port : 22) + ":" + path;
    case Kind::kRsyncDaemon: return "rsync:" + h + ":" + std::to_string(port ? port : 873) + ":" + path;
  }
  return path;
}

std::string BackupDestination::LocalDirectory() const { return kind == Kind::kLocal ? path : std::string(); }

std::string BackupDestination::RsyncPath(const std::string& sub) const {
  std::string p = sub.empty() ? path : path + "/" + sub;
  switch (kind) {
    case Kind::kLocal: return p;
    case Kind::kSsh: return UserHost() + ":" + p;
    case Kind::kRsyncDaemon:
      return "rsync://" + UserHost() + (port ? ":" + std::to_string(port) : "") + "/" + p;
  }
  return p;
}

std::vector<std::string> BackupDestination::SshArgv(const std::vector<std::string>& node_options,
                                                    const std::string& tofu_known_hosts) const {
  if (kind != Kind::kSsh) return {};
  std::vector<std::string> argv = {"ssh"};
  // This destination's own host-key settings first: they win over the
  // node's options and the defaults (ssh takes the first value).
  std::string hosts_file = known_hosts;
  if (hosts_file.empty() && accept_new_host_key) {
    const bool node_sets_one = std::any_of(node_options.begin(), node_options.end(), [](const std::string& o) {
      return o.find("UserKnownHostsFile") != std::string::npos;
    });
    if (!node_sets_one) hosts_file = tofu_known_hosts.empty() ? "/dev/null" : tofu_known_hosts;
  }
  if (!hosts_file.empty()) {
    argv.insert(argv.end(), {"-o", "UserKnownHostsFile=" + SshConfigQuoted(SshPercentEscaped(hosts_file))});
  }
  if (accept_new_host_key) argv.insert(argv.end(), {"-o", "StrictHostKeyChecking=accept-new"});
  argv.insert(argv.end(), node_options.begin(), node_options.end());
  // AES-GCM first: with AES-NI it encrypts several times faster than the
  // default chacha20-poly1305, and on a backup network ssh is the bottleneck.
  // Host keys must be known (issue 13: no silent trust on first use).
  argv.insert(argv.end(), {"-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15", "-o",
                           "Compression=no", "-o", "StrictHostKeyChecking=yes", "-c",
                           "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com"});
  if (port != 0) argv.insert(argv.end(), {"-p", std::to_string(port)});
  if (!ssh_key.empty()) argv.insert(argv.end(), {"-i", SshPercentEscaped(ssh_key), "-o", "IdentitiesOnly=yes"});
  return argv;
}

}  // namespace ledgerkeep
