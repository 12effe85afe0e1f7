#include "common/backoff.h"

#include <gtest/gtest.h>

#include <set>

namespace ledgerkeep {
namespace {

TEST(BackoffTest, GrowsToTheCapWithJitterAndResets) {
  ExponentialBackoff b(100, 1600, 1);
  int64_t max_seen = 0;
  for (int i = 0; i < 20; ++i) {
    int64_t d = b.NextDelayMs();
    EXPECT_GE(d, 50);
    EXPECT_LE(d, 1600);
    max_seen = std::max(max_seen, d);
  }
  EXPECT_GT(max_seen, 800);  // it did grow
  b.Reset();
  EXPECT_LE(b.NextDelayMs(), 100);
}

TEST(BackoffTest, ThousandAgentsDoNotReconnectInLockstep) {
  std::set<int64_t> delays;
  for (uint64_t seed = 0; seed < 1000; ++seed) {
    ExponentialBackoff b(200, 10000, seed);
    b.NextDelayMs();
    b.NextDelayMs();
    delays.insert(b.NextDelayMs());  // third attempt: range [100, 800]
  }
  EXPECT_GT(delays.size(), 300u);
}

}  // namespace
}  // namespace ledgerkeep
