// LaneExecutor: one worker thread per named lane, each running its jobs in
// submission order. Lanes are created on first use. Stop() lets running jobs
// finish (they observe the agent's cancel flag), drops queued ones, joins.
// A job that throws is logged and the lane runs the next one (jobs are
// expected to turn their errors into results themselves).
// Thread-safety: Submit and Stop may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace ledgerkeep {

class LaneExecutor {
 public:
  using Job = std::function<void()>;
  LaneExecutor() = default;
  ~LaneExecutor() { Stop(); }
  LaneExecutor(const LaneExecutor&) = delete;
  LaneExecutor& operator=(const LaneExecutor&) = delete;

  // Returns false if the executor is stopping.
  bool Submit(const std::string& lane, Job job);
  void Stop();

 private:
  struct Lane {
    std::string name;
    std::deque<Job> jobs;
    std::thread thread;
  };
  void Work(Lane* lane);

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::map<std::string, std::unique_ptr<Lane>> lanes_;  // guarded by mu_
};

}  // namespace ledgerkeep
