// Background priority (common/background_priority.h): backup work beside a
// running ledger at nice 19 in the idle I/O class (issue 15 point 5).
#include "common/background_priority.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "common/process.h"

namespace ledgerkeep {
namespace {

// What `nice` (no arguments: prints its own niceness) and `ionice` (no
// arguments: prints its own class) say when started with `background`.
std::string RunPrinting(const std::vector<std::string>& argv, bool background) {
  RunOptions o;
  o.background = background;
  o.timeout_ms = 10'000;
  auto r = ProcessRunner::Real()->RunStreaming(argv, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r->stdout_tail : "";
}

TEST(BackgroundPriorityTest, ABackgroundCommandRunsAtNice19InTheIdleIoClass) {
  EXPECT_EQ(RunPrinting({"nice"}, true), "19\n");
  EXPECT_EQ(RunPrinting({"ionice"}, true), "idle\n");
  EXPECT_EQ(RunPrinting({"nice"}, false), std::to_string(CurrentNice()) + "\n") << "a normal command inherits ours";
}

TEST(BackgroundPriorityTest, TheScopeLowersThisThreadAndWhatItStartsThenPutsItBack) {
  // On a thread of its own: the test's main thread keeps its priority
  // whatever happens.
  std::thread([] {
    const int before = CurrentNice();
    {
      ScopedBackgroundPriority low(true);
      EXPECT_EQ(CurrentNice(), 19);
      EXPECT_EQ(CurrentIoClass(), 3);
      int child_nice = -100;
      std::thread([&] { child_nice = CurrentNice(); }).join();
      EXPECT_EQ(child_nice, 19) << "a thread started in the scope inherits it";
      EXPECT_EQ(RunPrinting({"nice"}, false), "19\n") << "a command started in the scope inherits it";
    }
    if (::geteuid() == 0) {
      EXPECT_EQ(CurrentNice(), before) << "root can raise it back";
    }
  }).join();
}

TEST(BackgroundPriorityTest, ADisabledScopeChangesNothing) {
  std::thread([] {
    const int before = CurrentNice();
    ScopedBackgroundPriority off(false);
    EXPECT_EQ(CurrentNice(), before);
    EXPECT_NE(CurrentIoClass(), 3);
  }).join();
}

}  // namespace
}  // namespace ledgerkeep
