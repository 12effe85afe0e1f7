// Clock seam: broker and agent logic read time only through a Clock, so tests
// drive timeouts with a ManualClock instead of sleeping.
// Thread-safety: SystemClock is stateless; ManualClock is safe to share.
#pragma once

#include <atomic>
#include <cstdint>

namespace ledgerkeep {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock milliseconds since the Unix epoch.
  virtual int64_t NowMs() const = 0;
  // The process-wide real clock (never null, never freed).
  static const Clock* System();
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t NowMs() const override { return now_.load(); }
  void Advance(int64_t ms) { now_ += ms; }
  void Set(int64_t ms) { now_ = ms; }

 private:
  std::atomic<int64_t> now_;
};

// Monotonic milliseconds for measuring intervals inside one process.
int64_t MonotonicMs();

}  // namespace ledgerkeep
