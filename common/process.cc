#include "common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/clock.h"

namespace ledgerkeep {
namespace {

std::vector<char*> Argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

class RealRunner final : public ProcessRunner {
 public:
  Result<ProcessResult> Run(const std::vector<std::string>& argv, int64_t timeout_ms) override {
    if (argv.empty()) return Status::InvalidArgument("empty command");
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
    auto args = Argv(argv);
    pid_t pid = ::fork();
    if (pid < 0) {
      int err = errno;
      ::close(pipefd[0]);
      ::close(pipefd[1]);
      return Status::FromErrno(err, "fork");
    }
    if (pid == 0) {
      ::setpgid(0, 0);
      ::dup2(pipefd[1], 1);
      ::dup2(pipefd[1], 2);
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::execvp(args[0], args.data());
      std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
      ::_exit(127);
    }
    ::close(pipefd[1]);
    ProcessResult r;
    const int64_t deadline = MonotonicMs() + timeout_ms;
    int64_t kill_at = 0;
    bool eof = false;
    while (!eof) {
      int64_t now = MonotonicMs();
      if (!r.timed_out && now >= deadline) {
        r.timed_out = true;
        ::kill(-pid, SIGTERM);
        kill_at = now + 5000;
      }
      if (kill_at != 0 && now >= kill_at) {
        ::kill(-pid, SIGKILL);
        kill_at = 0;
      }
      pollfd pfd{pipefd[0], POLLIN, 0};
      int wait = r.timed_out ? 100 : static_cast<int>(std::min<int64_t>(deadline - now, 100));
      int rc = ::poll(&pfd, 1, std::max(wait, 0));
      if (rc > 0) {
        char buf[8192];
        ssize_t n = ::read(pipefd[0], buf, sizeof buf);
        if (n > 0) {
          r.output.append(buf, static_cast<size_t>(n));
          if (r.output.size() > 64 * 1024) r.output.erase(0, r.output.size() - 64 * 1024);
        } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
          eof = true;
        }
      }
    }
    ::close(pipefd[0]);
    int status = 0;
    while (true) {
      pid_t w = ::waitpid(pid, &status, r.timed_out ? WNOHANG : 0);
      if (w == pid) break;
      if (w < 0 && errno != EINTR) return Status::FromErrno(errno, "waitpid");
      if (w == 0) {  // timed out and still running after its output closed
        if (kill_at != 0 && MonotonicMs() >= kill_at) {
          ::kill(-pid, SIGKILL);
          kill_at = 0;
        } else if (kill_at == 0) {
          ::kill(-pid, SIGKILL);
        }
        ::usleep(20000);
      }
    }
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.term_signal = WTERMSIG(status);
    return r;
  }

  Result<ProcessId> Spawn(const std::vector<std::string>& argv, const std::string& log_path) override {
    if (argv.empty()) return Status::InvalidArgument("empty command");
    int pipefd[2];  // grandchild pid (or exec error) back to us
    if (::pipe2(pipefd, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
    auto args = Argv(argv);
    pid_t child = ::fork();
    if (child < 0) return Status::FromErrno(errno, "fork");
    if (child == 0) {
      ::setsid();
      pid_t grandchild = ::fork();
      if (grandchild != 0) {
        int32_t v = grandchild;
        ssize_t n = ::write(pipefd[1], &v, sizeof v);
        (void)n;
        ::_exit(0);
      }
      int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (log >= 0) {
        ::dup2(log, 1);
        ::dup2(log, 2);
      }
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the agent blocks SIGTERM; ours must not
      ::execvp(args[0], args.data());
      int32_t err = -errno;
      ssize_t n = ::write(pipefd[1], &err, sizeof err);
      (void)n;
      ::_exit(127);
    }
    ::close(pipefd[1]);
    int status = 0;
    ::waitpid(child, &status, 0);
    int32_t pid = 0;
    ssize_t n = ::read(pipefd[0], &pid, sizeof pid);
    if (n != sizeof pid || pid <= 0) {
      ::close(pipefd[0]);
      return Status::IOError("cannot start " + argv[0]);
    }
    // A second value means exec failed.
    int32_t err = 0;
    n = ::read(pipefd[0], &err, sizeof err);
    ::close(pipefd[0]);
    if (n == sizeof err && err < 0) return Status::FromErrno(-err, "cannot start " + argv[0]);
    ProcessId id;
    id.pid = pid;
    id.start_ticks = ProcessStartTicks(pid);
    return id;
  }

  bool IsAlive(const ProcessId& id) override {
    if (!id.valid()) return false;
    uint64_t ticks = ProcessStartTicks(id.pid);
    if (ticks == 0 || (id.start_ticks != 0 && ticks != id.start_ticks)) return false;
    std::ifstream stat("/proc/" + std::to_string(id.pid) + "/stat");
    std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = content.rfind(')');
    return close != std::string::npos && close + 2 < content.size() && content[close + 2] != 'Z';
  }

  Status Signal(const ProcessId& id, int sig) override {
    if (!IsAlive(id)) return Status::NotFound("process " + std::to_string(id.pid) + " is not running");
    if (::kill(id.pid, sig) != 0) return Status::FromErrno(errno, "kill " + std::to_string(id.pid));
    return Status::OK();
  }
};

}  // namespace

uint64_t ProcessStartTicks(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return 0;
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto close = content.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(content.substr(close + 2));
  std::string field;
  // Fields after "pid (comm)": state is #3; starttime is #22.
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return 0;
  }
  return std::stoull(field);
}

ProcessRunner* ProcessRunner::Real() {
  static RealRunner runner;
  return &runner;
}

}  // namespace ledgerkeep
