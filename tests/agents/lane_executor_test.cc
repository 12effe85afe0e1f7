#include "agents/lane_executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <vector>

namespace ledgerkeep {
namespace {

TEST(LaneExecutorTest, JobsOnOneLaneRunInOrderOneAtATime) {
  LaneExecutor ex;
  std::mutex mu;
  std::vector<int> order;
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};
  std::promise<void> done;
  for (int i = 0; i < 50; ++i) {
    ex.Submit("backup", [&, i] {
      int now = ++running;
      max_running = std::max(max_running.load(), now);
      {
        std::lock_guard<std::mutex> l(mu);
        order.push_back(i);
      }
      --running;
      if (i == 49) done.set_value();
    });
  }
  done.get_future().wait();
  EXPECT_EQ(max_running.load(), 1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(order[static_cast<size_t>(i)], i);
}

TEST(LaneExecutorTest, ALongJobDoesNotBlockAnotherLane) {
  LaneExecutor ex;
  std::promise<void> release;
  auto released = release.get_future().share();
  ex.Submit("backup", [released] { released.wait(); });
  std::promise<void> ping_done;
  ex.Submit("control", [&] { ping_done.set_value(); });
  EXPECT_EQ(ping_done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  release.set_value();
}

TEST(LaneExecutorTest, SubmitAfterStopIsRefused) {
  LaneExecutor ex;
  ex.Stop();
  EXPECT_FALSE(ex.Submit("x", [] {}));
}

}  // namespace
}  // namespace ledgerkeep
