// ChildProcess: a product binary run by a test, with stdout and stderr in log
// files. It never outlives the test: the child asks the kernel for SIGKILL
// when the test process dies (PR_SET_PDEATHSIG, so a crashed or timed-out
// test leaves nothing behind), and the destructor SIGKILLs and reaps it.
// Thread-safety: one owner thread. Start children from the test's main
// thread: PR_SET_PDEATHSIG fires when the *thread* that forked exits.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ledgerkeep::test {

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0]: absolute path of the binary
  std::string stdout_path;        // required; appended to
  std::string stderr_path;        // empty: the same file as stdout
  // Set in the child's environment on top of the test's. Every other
  // LEDGERKEEP_* variable of the test's environment is removed, so a
  // developer's LEDGERKEEP_CONFIG / LEDGERKEEP_KEY never leak into a test.
  std::vector<std::pair<std::string, std::string>> env;
};

class ChildProcess {
 public:
  // fork + exec. Fails if the log files cannot be opened or fork fails; an
  // exec failure shows up as exit code 127 with the reason in the log.
  static Result<std::unique_ptr<ChildProcess>> Start(ProcessSpec spec);
  ~ChildProcess();  // SIGKILL (if running) and reap
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& name() const { return name_; }  // basename of argv[0]
  const ProcessSpec& spec() const { return spec_; }

  // Reaps the child if it has exited; true while it runs.
  bool IsRunning();
  // Sends `sig` if the child still runs (no-op otherwise).
  void Kill(int sig);
  // Waits up to `timeout` for the child to exit. Returns its exit code
  // (128 + signal number if a signal killed it), nullopt if it still runs.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);
  // The exit code once reaped.
  std::optional<int> exit_code() const { return exit_code_; }

  // Whole stdout log / its last `max_lines` lines.
  std::string ReadStdout() const;
  std::string StdoutTail(size_t max_lines) const;

 private:
  ChildProcess() = default;
  bool Reap(bool block);

  ProcessSpec spec_;
  std::string name_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

// Output of a process run to completion.
struct RunResult {
  int exit_code = -1;  // 128 + signal if killed; -1 if it could not start
  std::string out;
  std::string err;
  std::string Describe() const;  // "exit N\nstdout: ...\nstderr: ..." for failure messages
};

// Runs `spec` to completion (SIGKILL after `timeout`, exit code then 128+9)
// and returns what it printed. stdout/stderr paths in `spec` are required.
RunResult RunToCompletion(ProcessSpec spec, std::chrono::milliseconds timeout);

// Reads a whole file ("" if missing) / its last `max_lines` lines.
std::string ReadFile(const std::string& path);
std::string TailLines(const std::string& text, size_t max_lines);

}  // namespace ledgerkeep::test
