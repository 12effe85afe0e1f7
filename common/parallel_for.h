// ParallelFor: runs fn(i) for every i in [0, n) on `threads` threads, the
// caller's own among them, handing out indexes one at a time (so a few big
// items do not leave the other threads idle). fn must be thread-safe; it
// runs to the end for every index (collect errors, do not throw).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace ledgerkeep {

template <typename Fn>
void ParallelFor(size_t n, int threads, Fn&& fn) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) fn(i);
  };
  const size_t extra =
      std::min<size_t>(static_cast<size_t>(std::max(1, threads)), std::max<size_t>(n, 1)) - 1;
  std::vector<std::thread> pool;
  pool.reserve(extra);
  for (size_t t = 0; t < extra; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

}  // namespace ledgerkeep
