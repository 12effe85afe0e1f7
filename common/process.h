// ProcessRunner: the seam through which agents run other programs (node
// components, later rsync and ssh). Tests substitute a fake; production uses
// ProcessRunner::Real().
// Thread-safety: Real() is safe to use from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace ledgerkeep {

struct ProcessResult {
  int exit_code = -1;      // -1 when killed by a signal
  int term_signal = 0;
  bool timed_out = false;
  std::string output;      // stdout + stderr (last 64 KiB)
};

// A process's identity that survives pid reuse: pid + kernel start time.
struct ProcessId {
  pid_t pid = 0;
  uint64_t start_ticks = 0;
  bool valid() const { return pid > 0; }
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;

  // Runs argv to completion, capturing its output. At the timeout the
  // command gets SIGTERM, then SIGKILL 5 s later (it is a helper command,
  // never a database), and the result says timed_out.
  virtual Result<ProcessResult> Run(const std::vector<std::string>& argv, int64_t timeout_ms) = 0;

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
