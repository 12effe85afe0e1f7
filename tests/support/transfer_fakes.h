// Test doubles for transfers over the network, shared by the backup tests:
// a throttling TCP relay (to make a loopback transfer slow enough to
// interrupt) and an rsync daemon started by the test.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/process.h"
#include "common/status.h"
#include "tests/common/sshd_fixture.h"

namespace ledgerkeep::test {

using ledgerkeep::testing::FreeLoopbackPort;

// A TCP relay on 127.0.0.1 to `target_port` that passes client->server bytes
// at most `rate` bytes per second (0 = as fast as possible; changeable while
// connections are open). Makes a loopback transfer slow enough to interrupt.
class ThrottledRelay {
 public:
  ThrottledRelay(int target_port, int64_t rate_bps) : target_port_(target_port), rate_(rate_bps) {}
  ~ThrottledRelay() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    for (auto& t : pumps_) t.join();
    for (int fd : fds_) ::close(fd);
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  Status Start() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return Status::FromErrno(errno, "socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return Status::FromErrno(errno, "relay bind/listen");
    }
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
    return Status::OK();
  }
  int port() const { return port_; }
  void SetRate(int64_t bps) { rate_ = bps; }
  int64_t forwarded() const { return forwarded_; }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int in = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (in < 0) continue;
      int out = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(target_port_));
      if (out < 0 || ::connect(out, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(in);
        if (out >= 0) ::close(out);
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(in);
      fds_.push_back(out);
      pumps_.emplace_back([this, in, out] { Pump(in, out, true); });
      pumps_.emplace_back([this, in, out] { Pump(out, in, false); });
    }
  }
  void Pump(int from, int to, bool throttled) {
    char buf[8192];
    while (!stop_) {
      pollfd p{from, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int64_t rate = rate_;
      size_t want = sizeof buf;
      if (throttled && rate > 0) want = std::min<size_t>(want, static_cast<size_t>(std::max<int64_t>(rate / 20, 512)));
      ssize_t n = ::read(from, buf, want);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) {
          ::shutdown(from, SHUT_RDWR);
          return;
        }
        off += w;
      }
      if (throttled) forwarded_ += n;
      if (throttled && rate > 0) std::this_thread::sleep_for(std::chrono::microseconds(n * 1'000'000 / rate));
    }
    ::shutdown(to, SHUT_WR);
  }

  int target_port_;
  std::atomic<int64_t> rate_;
  std::atomic<int64_t> forwarded_{0};
  std::atomic<bool> stop_{false};
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> pumps_;
};

// A real `rsync --daemon` on loopback with one writable module "backup".
class RsyncDaemon {
 public:
  ~RsyncDaemon() {
    if (started_) testing::StopDaemon(id_);
  }
  Status Start(const std::string& dir) {
    dir_ = dir;
    std::filesystem::create_directories(module_dir());
    port_ = testing::FreeLoopbackPort();
    const std::string conf = dir_ + "/rsyncd.conf";
    std::ofstream(conf) << "pid file = " << dir_ << "/rsyncd.pid\nuse chroot = no\n"
                        << "[backup]\n  path = " << module_dir() << "\n  read only = no\n  uid = root\n  gid = root\n";
    LK_ASSIGN_OR_RETURN(id_, ProcessRunner::Real()->Spawn(
                                 {"rsync", "--daemon", "--no-detach", "--address=127.0.0.1",
                                  "--port=" + std::to_string(port_), "--config=" + conf,
                                  "--log-file=" + dir_ + "/rsyncd.log"},
                                 dir_ + "/rsyncd.out"));
    started_ = true;
    return testing::WaitUntilListening(id_, port_, dir_ + "/rsyncd.out");
  }
  int port() const { return port_; }
  std::string module_dir() const { return dir_ + "/module"; }

 private:
  std::string dir_;
  int port_ = 0;
  ProcessId id_;
  bool started_ = false;
};

}  // namespace ledgerkeep::test
