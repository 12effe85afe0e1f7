// Background priority: backup work (checksums, rsync, ssh) beside a running
// ledger takes only the CPU and disk time the ledger leaves (issue 15
// point 5): nice 19 and the kernel's idle I/O class (ioprio_set(2);
// honoured by the BFQ and CFQ schedulers, a no-op under "none").
// Thread-safety: each call acts on the calling thread only (on Linux nice
// and I/O priority are per thread; threads and processes it starts inherit
// them).
#pragma once

namespace ledgerkeep {

// Lowers the calling thread (or a forked child before exec) to nice 19 and
// the idle I/O class. Async-signal-safe (two system calls); errors ignored
// (a priority is a wish, not a requirement).
void LowerPriorityOfThisTask();

// Lowers the calling thread for the scope and puts back what it had at the
// end. Raising a priority back needs CAP_SYS_NICE (root) or a RLIMIT_NICE
// that allows it; without, the thread stays low.
class ScopedBackgroundPriority {
 public:
  explicit ScopedBackgroundPriority(bool enabled);
  ~ScopedBackgroundPriority();
  ScopedBackgroundPriority(const ScopedBackgroundPriority&) = delete;
  ScopedBackgroundPriority& operator=(const ScopedBackgroundPriority&) = delete;

 private:
  bool enabled_;
  int nice_ = 0;
  int ioprio_ = -1;  // -1: not read
};

// The calling thread's nice value and I/O priority class (tests, logs):
// class 1 realtime, 2 best-effort, 3 idle; 0 = none set (best-effort by nice).
int CurrentNice();
int CurrentIoClass();

}  // namespace ledgerkeep
