// SshdServer: a real OpenSSH server on 127.0.0.1 for tests that copy over
// SSH. Everything it needs (host key, client keys, authorized_keys, config,
// pid file, log) lives in a fresh temporary directory that is removed, with
// the server, in the destructor.
//
// Start() is explicit so a test can GTEST_SKIP when /usr/sbin/sshd is not
// installed. The server runs as root (tests run as root) with
// `PermitRootLogin prohibit-password`: only the generated client key logs in.
// Not thread-safe; one per test.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/process.h"
#include "common/status.h"

namespace ledgerkeep::testing {

// A loopback port nothing listens on right now (the kernel's choice).
inline int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

inline bool PortAccepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits until `port` accepts connections while `id` stays alive; the error
// carries the daemon's log so a bad config explains itself.
inline Status WaitUntilListening(const ProcessId& id, int port, const std::string& log_path,
                                 int64_t timeout_ms = 10'000) {
  const int64_t deadline = MonotonicMs() + timeout_ms;
  while (!PortAccepts(port)) {
    if (!ProcessRunner::Real()->IsAlive(id))
      return Status::Unavailable("daemon exited before listening; log: " + ReadWholeFile(log_path));
    if (MonotonicMs() >= deadline)
      return Status::Timeout("daemon not listening on port " + std::to_string(port) +
                             "; log: " + ReadWholeFile(log_path));
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return Status::OK();
}

// Stops a daemon started with Spawn: SIGTERM, SIGKILL if it lingers.
inline void StopDaemon(const ProcessId& id) {
  ProcessRunner* runner = ProcessRunner::Real();
  if (!runner->IsAlive(id)) return;
  runner->Signal(id, SIGTERM).IgnoreError();  // it may exit between the checks
  const int64_t deadline = MonotonicMs() + 3000;
  while (runner->IsAlive(id) && MonotonicMs() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (runner->IsAlive(id)) runner->Signal(id, SIGKILL).IgnoreError();
}

class SshdServer {
 public:
  static constexpr const char* kSshd = "/usr/sbin/sshd";

  static bool Available() { return ::access(kSshd, X_OK) == 0 && ::access("/usr/bin/ssh-keygen", X_OK) == 0; }

  SshdServer() = default;
  SshdServer(const SshdServer&) = delete;
  SshdServer& operator=(const SshdServer&) = delete;
  ~SshdServer() {
    StopDaemon(id_);
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  Status Start() {
    char tmpl[] = "/tmp/lk-sshd-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return Status::FromErrno(errno, "mkdtemp");
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0700);
    LK_RETURN_IF_ERROR(KeyGen(dir_ + "/host_key"));
    LK_RETURN_IF_ERROR(KeyGen(client_key()));
    LK_RETURN_IF_ERROR(KeyGen(wrong_key()));
    std::error_code ec;
    std::filesystem::copy_file(client_key() + ".pub", dir_ + "/authorized_keys", ec);
    if (ec) return Status::IOError("authorized_keys: " + ec.message());
    // sshd refuses to start without its privilege-separation directory,
    // which only the openssh-server service normally creates.
    std::filesystem::create_directories("/run/sshd", ec);
    port_ = FreeLoopbackPort();
    if (port_ <= 0) return Status::Unavailable("no free loopback port");
    {  // The host key, pinned as an operator would (strict host key checking).
      std::istringstream pub(ReadWholeFile(dir_ + "/host_key.pub"));
      std::string type, key;
      pub >> type >> key;
      std::ofstream(pinned_known_hosts()) << "[127.0.0.1]:" << port_ << " " << type << " " << key << "\n";
    }
    const std::string config = dir_ + "/sshd_config";
    std::ofstream(config) << "Port " << port_ << "\n"
                          << "ListenAddress 127.0.0.1\n"
                          << "HostKey " << dir_ << "/host_key\n"
                          << "PidFile " << dir_ << "/sshd.pid\n"
                          << "AuthorizedKeysFile " << dir_ << "/authorized_keys\n"
                          << "StrictModes no\n"
                          << "PermitRootLogin prohibit-password\n"
                          << "PubkeyAuthentication yes\n"
                          << "PasswordAuthentication no\n"
                          << "KbdInteractiveAuthentication no\n"
                          << "UsePAM no\n"
                          << "LogLevel VERBOSE\n";
    const std::string log = dir_ + "/sshd.log";
    LK_ASSIGN_OR_RETURN(id_, ProcessRunner::Real()->Spawn({kSshd, "-D", "-e", "-f", config}, log));
    return WaitUntilListening(id_, port_, log);
  }

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string client_key() const { return dir_ + "/client_key"; }
  // A known_hosts file holding this server's host key.
  std::string pinned_known_hosts() const { return dir_ + "/pinned_known_hosts"; }
  // A valid key that is not in authorized_keys.
  std::string wrong_key() const { return dir_ + "/wrong_key"; }
  std::string log() const { return ReadWholeFile(dir_ + "/sshd.log"); }

  // The ssh argv (RsyncOptions::ssh_argv) that logs in with `key` without
  // host-key prompts.
  std::vector<std::string> SshArgv(const std::string& key, int port = 0) const {
    return {"ssh", "-i", key, "-p", std::to_string(port > 0 ? port : port_), "-o", "BatchMode=yes", "-o",
            "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o",
            "ConnectTimeout=5", "-o", "LogLevel=ERROR"};
  }

 private:
  static Status KeyGen(const std::string& path) {
    LK_ASSIGN_OR_RETURN(ProcessResult r, ProcessRunner::Real()->Run(
                                             {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path}, 10'000));
    if (r.exit_code != 0) return Status::Internal("ssh-keygen " + path + " failed: " + r.output);
    return Status::OK();
  }

  std::string dir_;
  int port_ = 0;
  ProcessId id_;
};

}  // namespace ledgerkeep::testing
