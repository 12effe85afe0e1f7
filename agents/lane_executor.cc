#include "agents/lane_executor.h"

namespace ledgerkeep {

bool LaneExecutor::Submit(const std::string& lane, Job job) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return false;
  auto& l = lanes_[lane];
  if (!l) {
    l = std::make_unique<Lane>();
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
    job();
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
