// ParallelFor: runs fn(i) for every i in [0, n) on `threads` threads, the
// caller's own among them, handing out indexes one at a time (so a few big
// items do not leave the other threads idle). fn must be thread-safe; it
// runs to the end for every index (collect errors, do not throw). If fn
// throws all the same (a library call it did not expect to), no more
// indexes are handed out and the first exception is rethrown on the
// caller's thread once every thread joined: it reaches the caller's error
// boundary instead of std::terminate ending the process.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace ledgerkeep {

template <typename Fn>
void ParallelFor(size_t n, int threads, Fn&& fn) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::exception_ptr first_error;  // guarded by mu
  auto work = [&] {
    try {
      for (size_t i = next++; i < n; i = next++) fn(i);
    } catch (...) {
      next = n;  // the other threads stop after their current item
      std::lock_guard<std::mutex> lock(mu);
      if (!first_error) first_error = std::current_exception();
    }
  };
  const size_t extra =
      std::min<size_t>(static_cast<size_t>(std::max(1, threads)), std::max<size_t>(n, 1)) - 1;
  std::vector<std::thread> pool;
  pool.reserve(extra);
  for (size_t t = 0; t < extra; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace ledgerkeep
