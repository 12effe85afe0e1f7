#include "common/clock.h"

#include <chrono>
#include <thread>

namespace ledgerkeep {
namespace {

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicNowMs() const override { return MonotonicMs(); }
  void SleepMs(int64_t ms) const override { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }
};

}  // namespace

const Clock* Clock::System() {
  static const SystemClock clock;
  return &clock;
}

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace ledgerkeep
