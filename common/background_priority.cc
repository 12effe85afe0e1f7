#include "common/background_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace ledgerkeep {
namespace {

// linux/ioprio.h (not shipped with glibc's headers).
constexpr int kIoprioWhoProcess = 1;  // a task id: with 0, the caller's thread
constexpr int kIoprioClassShift = 13;
constexpr int kIoprioClassIdle = 3;
constexpr int kLowestNice = 19;

int Tid() { return static_cast<int>(::syscall(SYS_gettid)); }

}  // namespace

void LowerPriorityOfThisTask() {
  ::setpriority(PRIO_PROCESS, 0, kLowestNice);  // 0: the calling task (thread)
  ::syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, kIoprioClassIdle << kIoprioClassShift);
}

ScopedBackgroundPriority::ScopedBackgroundPriority(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  nice_ = CurrentNice();
  ioprio_ = static_cast<int>(::syscall(SYS_ioprio_get, kIoprioWhoProcess, 0));
  LowerPriorityOfThisTask();
}

ScopedBackgroundPriority::~ScopedBackgroundPriority() {
  if (!enabled_) return;
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(Tid()), nice_);
  if (ioprio_ >= 0) ::syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, ioprio_);
}

int CurrentNice() {
  errno = 0;
  return ::getpriority(PRIO_PROCESS, static_cast<id_t>(Tid()));
}

int CurrentIoClass() {
  const long v = ::syscall(SYS_ioprio_get, kIoprioWhoProcess, 0);
  return v < 0 ? -1 : static_cast<int>(v >> kIoprioClassShift);
}

}  // namespace ledgerkeep
