#include "common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

#include "common/background_priority.h"
#include "common/clock.h"

namespace ledgerkeep {
namespace {

std::vector<char*> Argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// The inherited environment with `extra` added or replacing same-named
// variables; built before fork because the child may only make
// async-signal-safe calls.
std::vector<std::string> BuildEnv(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    std::string_view key = kv.substr(0, kv.find('='));
    bool replaced = false;
    for (const auto& [k, v] : extra) replaced = replaced || k == key;
    if (!replaced) out.emplace_back(kv);
  }
  for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
  return out;
}

void AppendTail(std::string& buf, std::string_view chunk) {
  buf.append(chunk);
  if (buf.size() > kProcessOutputTailBytes) buf.erase(0, buf.size() - kProcessOutputTailBytes);
}

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// How long output from descendants that outlive the command is still read.
constexpr int64_t kDrainAfterExitMs = 1000;

class RealRunner final : public ProcessRunner {
 public:
  Result<ProcessResult> Run(const std::vector<std::string>& argv, int64_t timeout_ms) override {
    RunOptions opts;
    opts.timeout_ms = timeout_ms;
    return RunStreaming(argv, opts);
  }

  Result<ProcessResult> RunStreaming(const std::vector<std::string>& argv, const RunOptions& opts) override {
    if (argv.empty()) return Status::InvalidArgument("empty command");
    auto args = Argv(argv);
    std::vector<std::string> env_storage = BuildEnv(opts.env);
    auto envp = Argv(env_storage);

    int out_pipe[2] = {-1, -1};
    int err_pipe[2] = {-1, -1};
    int exec_pipe[2] = {-1, -1};  // the child's exec errno, or EOF on success
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    auto close_all = [&] {
      for (int* fd : {&out_pipe[0], &out_pipe[1], &err_pipe[0], &err_pipe[1], &exec_pipe[0], &exec_pipe[1],
                      &devnull})
        CloseFd(*fd);
    };
    if (devnull < 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
        ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
      int err = errno;
      close_all();
      return Status::FromErrno(err, "cannot create pipes to run " + argv[0]);
    }
    const pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) {
      int err = errno;
      close_all();
      return Status::FromErrno(err, "fork");
    }
    if (pid == 0) {
      // Only async-signal-safe calls from here to exec.
      ::setpgid(0, 0);
      // A helper command (rsync, ssh) must not outlive a killed agent: it
      // would go on writing into a snapshot the restarted agent discards.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      if (opts.background) LowerPriorityOfThisTask();
      ::dup2(opts.stdin_fd >= 0 ? opts.stdin_fd : devnull, 0);
      ::dup2(out_pipe[1], 1);
      ::dup2(err_pipe[1], 2);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the agent blocks SIGTERM; ours must not
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(SIGPIPE, &dfl, nullptr);
      ::execvpe(args[0], args.data(), envp.data());
      int err = errno;
      ssize_t n = ::write(exec_pipe[1], &err, sizeof err);
      (void)n;
      ::_exit(127);
    }
    CloseFd(out_pipe[1]);
    CloseFd(err_pipe[1]);
    CloseFd(exec_pipe[1]);
    CloseFd(devnull);
    int exec_errno = 0;
    ssize_t got;
    do {
      got = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno);
    } while (got < 0 && errno == EINTR);
    CloseFd(exec_pipe[0]);
    if (got == sizeof exec_errno) {
      close_all();
      int status = 0;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return Status::FromErrno(exec_errno, "cannot run '" + argv[0] + "'");
    }

    ProcessResult r;
    const int64_t poll_ms = std::max<int64_t>(opts.poll_interval_ms, 1);
    const int64_t start = MonotonicMs();
    const int64_t deadline = opts.timeout_ms > 0 ? start + opts.timeout_ms : INT64_MAX;
    int64_t kill_at = 0;  // when a stopping command gets SIGKILL
    bool stopping = false;
    bool reaped = false;
    int status = 0;
    int64_t drain_until = 0;
    int64_t last_tick = start;
    int fds[2] = {out_pipe[0], err_pipe[0]};
    out_pipe[0] = err_pipe[0] = -1;  // owned by fds[] now
    // Readable when the child exits, so its exit is noticed at once rather
    // than at the next poll interval (pre-5.3 kernels: short poll instead).
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    while (true) {
      int64_t now = MonotonicMs();
      if (reaped && ((fds[0] < 0 && fds[1] < 0) || now >= drain_until)) break;
      if (!reaped && !stopping) {
        if (now >= deadline) {
          r.timed_out = true;
        } else if (opts.cancelled && opts.cancelled()) {
          r.cancelled = true;
        }
        if (r.timed_out || r.cancelled) {
          ::kill(-pid, SIGTERM);
          stopping = true;
          kill_at = now + std::max<int64_t>(opts.term_grace_ms, 0);
        }
      }
      if (!reaped && kill_at != 0 && now >= kill_at) {
        ::kill(-pid, SIGKILL);
        kill_at = 0;
      }
      int64_t wait = poll_ms;
      if (!stopping) wait = std::min(wait, deadline - now);
      if (kill_at != 0) wait = std::min(wait, kill_at - now);
      if (reaped) wait = std::min(wait, drain_until - now);
      pollfd pfds[3];
      nfds_t n = 0;
      for (int fd : fds) {
        if (fd >= 0) pfds[n++] = pollfd{fd, POLLIN, 0};
      }
      const nfds_t pipes = n;
      if (!reaped && pidfd >= 0) pfds[n++] = pollfd{pidfd, POLLIN, 0};
      if (!reaped && pidfd < 0 && pipes == 0) wait = std::min<int64_t>(wait, 5);
      int rc = ::poll(pfds, n, static_cast<int>(std::max<int64_t>(wait, 0)));
      if (rc < 0 && errno != EINTR) {
        int err = errno;
        if (!reaped) ::kill(-pid, SIGKILL);
        for (int& fd : fds) CloseFd(fd);
        CloseFd(pidfd);
        while (!reaped && ::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return Status::FromErrno(err, "poll on output of " + argv[0]);
      }
      for (nfds_t i = 0; rc > 0 && i < pipes; ++i) {
        if (pfds[i].revents == 0) continue;
        const bool is_stdout = pfds[i].fd == fds[0];
        char buf[16384];
        ssize_t len = ::read(pfds[i].fd, buf, sizeof buf);
        if (len > 0) {
          std::string_view chunk(buf, static_cast<size_t>(len));
          AppendTail(r.output, chunk);
          AppendTail(is_stdout ? r.stdout_tail : r.stderr_tail, chunk);
          const auto& cb = is_stdout ? opts.on_stdout : opts.on_stderr;
          if (cb) cb(chunk);
        } else if (len == 0 || (errno != EINTR && errno != EAGAIN)) {
          CloseFd(fds[is_stdout ? 0 : 1]);
        }
      }
      if (!reaped) {
        pid_t w = ::waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD)) {
          if (w < 0) status = -1;  // reaped elsewhere (SIGCHLD ignored): exit status unknown
          reaped = true;
          drain_until = MonotonicMs() + kDrainAfterExitMs;
          if (stopping) ::kill(-pid, SIGKILL);  // descendants of a stopped command go too
        }
      }
      now = MonotonicMs();
      if (opts.on_tick && now - last_tick >= poll_ms) {
        last_tick = now;
        opts.on_tick();
      }
    }
    for (int& fd : fds) CloseFd(fd);
    CloseFd(pidfd);
    if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (status != -1 && WIFSIGNALED(status)) r.term_signal = WTERMSIG(status);
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

Result<ProcessResult> ProcessRunner::RunStreaming(const std::vector<std::string>& argv, const RunOptions& opts) {
  LK_ASSIGN_OR_RETURN(ProcessResult r, Run(argv, opts.timeout_ms));
  if (r.stdout_tail.empty() && r.stderr_tail.empty()) r.stdout_tail = r.output;
  if (opts.on_stdout && !r.stdout_tail.empty()) opts.on_stdout(r.stdout_tail);
  if (opts.on_stderr && !r.stderr_tail.empty()) opts.on_stderr(r.stderr_tail);
  return r;
}

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
