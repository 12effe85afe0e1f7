#include "common/parallel_for.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

namespace ledgerkeep {
namespace {

TEST(ParallelForTest, EveryIndexRunsOnce) {
  std::vector<std::atomic<int>> seen(1000);
  ParallelFor(seen.size(), 4, [&](size_t i) { ++seen[i]; });
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i].load(), 1) << i;
}

// An exception on a worker thread used to end the process (std::terminate):
// it now reaches the caller, whose boundary turns it into an error.
TEST(ParallelForTest, AnExceptionOnAnyThreadReachesTheCallerAfterEveryThreadJoined) {
  for (size_t throwing : {size_t{0}, size_t{37}, size_t{999}}) {
    std::atomic<int> ran{0};
    EXPECT_THROW(ParallelFor(1000, 4,
                             [&](size_t i) {
                               ++ran;
                               if (i == throwing) throw std::runtime_error("boom");
                             }),
                 std::runtime_error)
        << throwing;
    EXPECT_GE(ran.load(), 1);
  }
}

}  // namespace
}  // namespace ledgerkeep
