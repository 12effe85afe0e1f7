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
  // Milliseconds that never go back, for intervals and deadlines.
  virtual int64_t MonotonicNowMs() const = 0;
  // Waits `ms` before returning. A ManualClock moves itself on by `ms`
  // instead, so logic that polls with a pause runs in a test without waiting.
  virtual void SleepMs(int64_t ms) const = 0;
  // The process-wide real clock (never null, never freed).
  static const Clock* System();
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t NowMs() const override { return now_.load(); }
  int64_t MonotonicNowMs() const override { return now_.load(); }
  void SleepMs(int64_t ms) const override { now_ += ms; }
  void Advance(int64_t ms) { now_ += ms; }
  void Set(int64_t ms) { now_ = ms; }

 private:
  mutable std::atomic<int64_t> now_;  // SleepMs moves it on
};

// Monotonic milliseconds for measuring intervals inside one process.
int64_t MonotonicMs();

}  // namespace ledgerkeep
