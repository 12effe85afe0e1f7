// Exponential backoff with full jitter (AWS architecture blog style): the
// n-th delay is uniform in [base/2, min(max, base * 2^n)], so a thousand
// agents that lost the broker at the same instant do not reconnect together.
// Not thread-safe; one per reconnecting party.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>

namespace ledgerkeep {

class ExponentialBackoff {
 public:
  ExponentialBackoff(int64_t base_ms, int64_t max_ms, uint64_t seed)
      : base_ms_(base_ms), max_ms_(max_ms), rng_(seed) {}

  // The delay before the next attempt; grows until Reset().
  int64_t NextDelayMs() {
    int64_t cap = base_ms_;
    for (int i = 0; i < attempt_ && cap < max_ms_; ++i) cap *= 2;
    cap = std::min(cap, max_ms_);
    ++attempt_;
    std::uniform_int_distribution<int64_t> dist(std::max<int64_t>(1, base_ms_ / 2),
                                                std::max<int64_t>(1, cap));
    return dist(rng_);
  }
  void Reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  int64_t base_ms_;
  int64_t max_ms_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace ledgerkeep
