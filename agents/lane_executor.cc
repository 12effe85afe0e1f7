#include "agents/lane_executor.h"

#include <spdlog/spdlog.h>

#include "common/exception_text.h"

namespace ledgerkeep {

bool LaneExecutor::Submit(const std::string& lane, Job job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return false;
  auto& l = lanes_[lane];
  if (!l) {
    l = std::make_unique<Lane>();
    l->name = lane;
    Lane* raw = l.get();
    l->thread = std::thread([this, raw] { Work(raw); });
  }
  l->jobs.push_back(std::move(job));
  cv_.notify_all();
  return true;
}

void LaneExecutor::Work(Lane* lane) {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stopping_ || !lane->jobs.empty(); });
    if (stopping_) return;
    Job job = std::move(lane->jobs.front());
    lane->jobs.pop_front();
    lock.unlock();
    try {
      job();
    } catch (...) {
      // Jobs convert their own errors (the agent's are guarded); this keeps
      // a stray exception from ending the worker, and with it the process.
      spdlog::error("a job on lane '{}' threw: {}; the lane keeps running", lane->name,
                    CurrentExceptionText());
    }
    lock.lock();
  }
}

void LaneExecutor::Stop() {
  std::map<std::string, std::unique_ptr<Lane>> lanes;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
    lanes.swap(lanes_);
  }
  for (auto& [name, lane] : lanes)
    if (lane->thread.joinable()) lane->thread.join();
}

}  // namespace ledgerkeep
