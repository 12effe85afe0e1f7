// ProcessRunner: the seam through which agents run other programs (node
// components, rsync, ssh). Tests substitute a fake; production uses
// ProcessRunner::Real().
// Thread-safety: Real() is safe to use from any thread; callbacks passed in
// RunOptions run on the calling thread, never concurrently with each other.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ledgerkeep {

// How much of each output stream a ProcessResult keeps.
inline constexpr size_t kProcessOutputTailBytes = 64 * 1024;

struct ProcessResult {
  int exit_code = -1;      // -1 when killed by a signal
  int term_signal = 0;
  bool timed_out = false;  // killed because RunOptions::timeout_ms passed
  bool cancelled = false;  // killed because RunOptions::cancelled() said so
  std::string output;      // stdout + stderr in arrival order (last 64 KiB)
  std::string stdout_tail;  // stdout alone (last 64 KiB)
  std::string stderr_tail;  // stderr alone (last 64 KiB)
};

// A process's identity that survives pid reuse: pid + kernel start time.
struct ProcessId {
  pid_t pid = 0;
  uint64_t start_ticks = 0;
  bool valid() const { return pid > 0; }
};

struct RunOptions {
  // Kill the command (SIGTERM, then SIGKILL after term_grace_ms) when it runs
  // longer than this; the result then says timed_out. Default: 0 (no limit).
  int64_t timeout_ms = 0;
  // Time between SIGTERM and SIGKILL when the command is stopped for a
  // timeout or cancellation. Default: 5000.
  int64_t term_grace_ms = 5000;
  // Receive stdout / stderr as they arrive (chunks, not lines: a record may
  // be split across calls). Default: none.
  std::function<void(std::string_view chunk)> on_stdout;
  std::function<void(std::string_view chunk)> on_stderr;
  // Called at least every poll_interval_ms while the command runs (also
  // when it prints nothing), e.g. to emit heartbeats. Default: none.
  std::function<void()> on_tick;
  // Polled every poll_interval_ms; true stops the command like a timeout and
  // the result says cancelled. Default: none.
  std::function<bool()> cancelled;
  // Default: 100.
  int64_t poll_interval_ms = 100;
  // Added to (or replacing in) the inherited environment. Default: none.
  std::vector<std::pair<std::string, std::string>> env;
  // The command's stdin (RunStreaming): an fd the caller owns and keeps
  // open (e.g. a pipe's read end, made O_CLOEXEC so no other child inherits
  // it); the command reads EOF when the caller closes the write end.
  // Default: -1, /dev/null.
  int stdin_fd = -1;
  // Run at the lowest CPU priority (nice 19) and in the idle I/O class, so
  // the command gets only what the rest of the machine leaves (backup
  // transfers beside a running ledger). Default: false.
  bool background = false;
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;

  // Runs argv to completion, capturing its output. At the timeout the
  // command gets SIGTERM, then SIGKILL 5 s later (it is a helper command,
  // never a database), and the result says timed_out. timeout_ms <= 0: no
  // limit. A program that cannot be started (missing binary, not
  // executable) is an error Status (NotFound / PermissionDenied), not a
  // result with exit code 127.
  virtual Result<ProcessResult> Run(const std::vector<std::string>& argv, int64_t timeout_ms) = 0;

  // Runs argv to completion with stdout and stderr on separate pipes,
  // handing each chunk to the callbacks as it arrives and keeping the last
  // 64 KiB of each stream in the result. stdin is RunOptions::stdin_fd
  // (default /dev/null); the command runs in its own process group, which
  // is what timeout/cancellation signal. Output written by descendants that outlive the command is read
  // for at most 1 s after it exits. Errors: argv empty (InvalidArgument),
  // program not startable (NotFound / PermissionDenied), pipe/fork failure.
  // The default implementation (for fakes that only implement Run) calls
  // Run() and delivers its whole output as one stdout chunk.
  virtual Result<ProcessResult> RunStreaming(const std::vector<std::string>& argv,
                                             const RunOptions& opts);

  // Starts argv as a daemon (own session, reparented to init so it outlives
  // the caller), stdout/stderr appended to log_path. Returns its identity.
  virtual Result<ProcessId> Spawn(const std::vector<std::string>& argv, const std::string& log_path) = 0;

  // True if that exact process (pid and start time) is alive.
  virtual bool IsAlive(const ProcessId& id) = 0;
  virtual Status Signal(const ProcessId& id, int sig) = 0;

  static ProcessRunner* Real();
};

// The kernel start time of `pid` (0 if it does not exist).
uint64_t ProcessStartTicks(pid_t pid);

}  // namespace ledgerkeep
