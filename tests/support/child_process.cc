#include "tests/support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/wait.h"

extern char** environ;

namespace ledgerkeep::test {
namespace {

int OpenLog(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

std::vector<std::string> ChildEnvironment(const ProcessSpec& spec) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.rfind("LEDGERKEEP_", 0) == 0) continue;
    bool overridden = false;
    for (const auto& [k, v] : spec.env) {
      overridden = overridden || (kv.size() > k.size() && kv.substr(0, k.size()) == k &&
                                  kv[k.size()] == '=');
    }
    if (!overridden) env.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env) env.push_back(k + "=" + v);
  return env;
}

}  // namespace

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(ProcessSpec spec) {
  if (spec.argv.empty()) return Status::InvalidArgument("ChildProcess: empty argv");
  if (spec.stdout_path.empty()) return Status::InvalidArgument("ChildProcess: no stdout path");
  const int out_fd = OpenLog(spec.stdout_path);
  if (out_fd < 0) return Status::FromErrno(errno, "open " + spec.stdout_path);
  const int err_fd = spec.stderr_path.empty() ? ::dup(out_fd) : OpenLog(spec.stderr_path);
  if (err_fd < 0) {
    const int err = errno;
    ::close(out_fd);
    return Status::FromErrno(err, "open " + spec.stderr_path);
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  // Everything the child touches is prepared before fork: after fork in a
  // multi-threaded parent only async-signal-safe calls are allowed.
  std::vector<std::string> env_strings = ChildEnvironment(spec);
  std::vector<char*> argv;
  for (auto& a : spec.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(out_fd);
    ::close(err_fd);
    if (null_fd >= 0) ::close(null_fd);
    return Status::FromErrno(err, "fork");
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the test died before prctl
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
#ifdef SYS_close_range
    ::syscall(SYS_close_range, 3U, ~0U, 0U);  // no test socket leaks into the child
#endif
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "ChildProcess: execve failed\n";
    ssize_t n = ::write(2, msg, sizeof msg - 1);
    (void)n;
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  if (null_fd >= 0) ::close(null_fd);
  auto child = std::unique_ptr<ChildProcess>(new ChildProcess());
  child->name_ = std::filesystem::path(spec.argv[0]).filename().string();
  child->spec_ = std::move(spec);
  child->pid_ = pid;
  return child;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    Reap(/*block=*/true);
  }
}

bool ChildProcess::Reap(bool block) {
  if (exit_code_) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return true;
}

bool ChildProcess::IsRunning() { return pid_ > 0 && !Reap(/*block=*/false); }

void ChildProcess::Kill(int sig) {
  if (IsRunning()) ::kill(pid_, sig);
}

std::optional<int> ChildProcess::WaitExit(std::chrono::milliseconds timeout) {
  WaitUntil([&] { return !IsRunning(); }, timeout, std::chrono::milliseconds(5));
  return exit_code_;
}

std::string ChildProcess::ReadStdout() const { return ReadFile(spec_.stdout_path); }

std::string ChildProcess::StdoutTail(size_t max_lines) const {
  return TailLines(ReadStdout(), max_lines);
}

std::string RunResult::Describe() const {
  return "exit " + std::to_string(exit_code) + "\n--- stdout ---\n" + out + "--- stderr ---\n" + err;
}

RunResult RunToCompletion(ProcessSpec spec, std::chrono::milliseconds timeout) {
  RunResult result;
  std::error_code ec;
  std::filesystem::remove(spec.stdout_path, ec);
  if (!spec.stderr_path.empty()) std::filesystem::remove(spec.stderr_path, ec);
  auto child = ChildProcess::Start(spec);
  if (!child.ok()) {
    result.err = child.status().ToString();
    return result;
  }
  auto code = (*child)->WaitExit(timeout);
  if (!code) {
    (*child)->Kill(SIGKILL);
    code = (*child)->WaitExit(std::chrono::seconds(10));
  }
  result.exit_code = code.value_or(-1);
  result.out = ReadFile(spec.stdout_path);
  if (!spec.stderr_path.empty()) result.err = ReadFile(spec.stderr_path);
  return result;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TailLines(const std::string& text, size_t max_lines) {
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  size_t lines = 0;
  while (pos > 0) {
    if (text[pos - 1] == '\n' && ++lines == max_lines) break;
    --pos;
  }
  return text.substr(pos);
}

}  // namespace ledgerkeep::test
