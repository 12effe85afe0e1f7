#include "ledger/ledger_node.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <limits>
#include <mutex>
#include <thread>

#include "ledger/ledger_store.h"
#include "ledger/state_transfer.h"

namespace ledgerkeep::ledger {
namespace {

constexpr uint64_t kNoCap = std::numeric_limits<uint64_t>::max();
constexpr int64_t kMaxIdleWaitMs = 100;
constexpr int64_t kRateWindowMs = 5000;

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Blocks produced per second over the last few seconds.
class RateMeter {
 public:
  void Sample(int64_t now_ms, uint64_t total) {
    std::lock_guard lock(mu_);
    if (samples_.empty() || now_ms - samples_.back().first >= 200) samples_.emplace_back(now_ms, total);
    while (samples_.size() > 2 && samples_[1].first <= now_ms - kRateWindowMs) samples_.pop_front();
  }
  double Rate(int64_t now_ms, uint64_t total) const {
    std::lock_guard lock(mu_);
    for (const auto& [t, n] : samples_) {
      if (t < now_ms - kRateWindowMs) continue;
      if (now_ms - t < 100) break;
      return static_cast<double>(total - n) * 1000.0 / static_cast<double>(now_ms - t);
    }
    return 0;
  }

 private:
  mutable std::mutex mu_;
  std::deque<std::pair<int64_t, uint64_t>> samples_;
};

}  // namespace

class LedgerNode::Impl {
 public:
  Impl(LedgerNodeOptions o, std::unique_ptr<LedgerStore> s)
      : opt(std::move(o)),
        store(std::move(s)),
        params(store->GetMeta().params),
        fault(opt.fault_slow_path),
        st(*store, params, opt.st_blocks_per_sec, opt.clock) {}

  LedgerNodeOptions opt;
  std::unique_ptr<LedgerStore> store;
  ChainParams params;
  std::atomic<bool> fault;
  std::atomic<uint64_t> produced{0};
  // opt.clock() when the chain reached the stop point (0 = not wedged):
  // where a maintenance window's pause starts (issue 15).
  std::atomic<int64_t> wedged_since_ms{0};
  RateMeter meter;
  RateMeter st_work_meter;   // state transfer's progress()
  RateMeter st_fetch_meter;  // state transfer's fetched()
  StateTransfer st;

  // Serializes "may this block be added?" decisions (producer, state
  // transfer linking) with wedge/unwedge, so a stop point can't be overtaken.
  std::mutex chain_mu;

  std::mutex stop_mu;
  std::condition_variable wake;
  bool stop_requested = false;  // guarded by stop_mu
  std::thread producer;
  bool stopped = false;  // Stop() already ran (guarded by stop_mu)

  uint64_t Cap() const {
    const uint64_t stop = store->GetMeta().stop_point;
    return stop == 0 ? kNoCap : stop;
  }

  // Target height on the cluster clock, before the wedge cap.
  uint64_t ClockTarget(const ClusterEpoch& epoch, int64_t now, uint64_t last_reachable) const {
    if (opt.blocks_per_sec <= 0) return last_reachable + 64;
    if (now <= epoch.base_time_ms) return epoch.base_block;
    const double grown = std::floor(static_cast<double>(now - epoch.base_time_ms) * opt.blocks_per_sec / 1000.0);
    return epoch.base_block + static_cast<uint64_t>(grown);
  }

  // ms until the clock target next increases.
  int64_t MsUntilNextBlock(const ClusterEpoch& epoch, int64_t now, uint64_t target) const {
    if (opt.blocks_per_sec <= 0) return 0;
    const double due = static_cast<double>(epoch.base_time_ms) +
                       std::ceil(static_cast<double>(target + 1 - epoch.base_block) * 1000.0 / opt.blocks_per_sec);
    return std::clamp<int64_t>(static_cast<int64_t>(due) - now, 1, kMaxIdleWaitMs);
  }

  // Waits up to `ms` or until woken; false when stopping.
  bool WaitFor(int64_t ms) {
    std::unique_lock lock(stop_mu);
    if (ms > 0) wake.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stop_requested; });
    return !stop_requested;
  }

  Status ProduceOne(uint64_t id) {
    const Block block = GenerateBlock(params, id, store->LastReachableDigest());
    std::lock_guard lock(chain_mu);
    if (id > Cap()) return Status::OK();  // a wedge arrived meanwhile
    LK_RETURN_IF_ERROR(store->AppendBlock(block, fault.load()));
    produced.fetch_add(1);
    if (id == Cap()) wedged_since_ms.store(opt.clock());
    return Status::OK();
  }

  void ProducerLoop() {
    uint64_t logged_wedge = 0;
    while (WaitFor(0)) {
      const int64_t now = opt.clock();
      meter.Sample(now, produced.load());
      st_work_meter.Sample(now, st.progress());
      st_fetch_meter.Sample(now, st.fetched());
      const LedgerMeta meta = store->GetMeta();
      const BlockIds ids = store->GetBlockIds();
      const uint64_t cap = meta.stop_point == 0 ? kNoCap : meta.stop_point;
      const uint64_t clock_target = ClockTarget(meta.epoch, now, ids.last_reachable);
      const uint64_t target = std::min(clock_target, cap);

      if (meta.stop_point != 0 && ids.last_reachable == meta.stop_point && ids.last == meta.stop_point) {
        int64_t unknown = 0;  // reached by state transfer, or wedged before a restart
        wedged_since_ms.compare_exchange_strong(unknown, now);
        if (logged_wedge != meta.stop_point) {
          spdlog::info("wedged: reached stop point {}, block production stopped", meta.stop_point);
          logged_wedge = meta.stop_point;
        }
      } else {
        logged_wedge = 0;
      }

      Status status;
      int64_t wait_ms = 0;
      if (st.active() || (target > ids.last_reachable &&
                          target - ids.last_reachable > opt.state_transfer_threshold)) {
        if (!st.active()) st.Begin(target);
        auto step = st.Step(chain_mu, [this] { return Cap(); });
        if (step.ok()) {
          wait_ms = *step;
        } else {
          status = step.status();
        }
      } else if (ids.last_reachable < target) {
        const uint64_t top = std::min(target, ids.last_reachable + 64);
        for (uint64_t id = ids.last_reachable + 1; id <= top && status.ok(); ++id) status = ProduceOne(id);
      } else {
        wait_ms = meta.stop_point != 0 && target == cap ? kMaxIdleWaitMs
                                                        : MsUntilNextBlock(meta.epoch, now, clock_target);
      }
      if (!status.ok()) {
        spdlog::error("block production: {}; retrying in 1 s", status.ToString());
        wait_ms = 1000;
      }
      WaitFor(wait_ms);
    }
  }
};

bool IsCatchingUp(const LedgerStatus& s, double st_work_per_sec, uint64_t threshold) {
  if (s.read_only || s.wedged) return false;
  const bool behind = s.state_transfer_active || s.lag_blocks > threshold;
  return behind && (st_work_per_sec > 0 || s.blocks_per_sec > 0);
}

LedgerNode::LedgerNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LedgerNode::~LedgerNode() {
  Status s = Stop();
  if (!s.ok()) spdlog::error("ledger shutdown: {}", s.ToString());
}

Result<std::unique_ptr<LedgerNode>> LedgerNode::Open(LedgerNodeOptions options) {
  if (!options.clock) options.clock = SystemNowMs;
  StoreOptions so;
  so.read_only = options.read_only;
  so.create_if_missing = !options.read_only;
  so.params = options.params;
  so.epoch = ClusterEpoch{0, options.genesis_time_ms.value_or(options.clock())};
  so.write_buffer_size = options.write_buffer_size;
  LK_ASSIGN_OR_RETURN(auto store, LedgerStore::Open(options.db_path, so));
  const LedgerMeta meta = store->GetMeta();
  if (!options.read_only && meta.params != options.params) {
    spdlog::warn("ledger {} was created with seed {} payload {} keyspace {}; using those, not the flags",
                 options.db_path, meta.params.seed, meta.params.payload_bytes, meta.params.keyspace);
  }
  const BlockIds ids = store->GetBlockIds();
  spdlog::info("opened ledger {}{}: genesis {}, last reachable {}, last {}, epoch ({}, {}), stop point {}",
               options.db_path, options.read_only ? " read-only" : "", ids.genesis, ids.last_reachable, ids.last,
               meta.epoch.base_block, meta.epoch.base_time_ms, meta.stop_point);
  return std::unique_ptr<LedgerNode>(new LedgerNode(std::make_unique<Impl>(std::move(options), std::move(store))));
}

Status LedgerNode::Start() {
  if (impl_->opt.read_only) return Status::OK();
  std::lock_guard lock(impl_->stop_mu);
  if (impl_->producer.joinable() || impl_->stopped) return Status::FailedPrecondition("ledger node already started");
  impl_->producer = std::thread([this] { impl_->ProducerLoop(); });
  spdlog::info("producing blocks at {} blocks/s (0 = unlimited), payload {} bytes, state transfer {} blocks/s",
               impl_->opt.blocks_per_sec, impl_->params.payload_bytes, impl_->opt.st_blocks_per_sec);
  return Status::OK();
}

Status LedgerNode::Stop() {
  {
    std::lock_guard lock(impl_->stop_mu);
    if (impl_->stopped) return Status::OK();
    impl_->stopped = true;
    impl_->stop_requested = true;
  }
  impl_->wake.notify_all();
  if (impl_->producer.joinable()) impl_->producer.join();
  if (impl_->opt.read_only) return Status::OK();
  const BlockIds ids = impl_->store->GetBlockIds();
  spdlog::info("stopped producing at last reachable {}, last {}; flushing", ids.last_reachable, ids.last);
  return impl_->store->Flush();
}

LedgerStatus LedgerNode::GetStatus() const {
  const int64_t now = impl_->opt.clock();
  const BlockIds ids = impl_->store->GetBlockIds();
  const LedgerMeta meta = impl_->store->GetMeta();
  LedgerStatus s;
  s.genesis = ids.genesis;
  s.last_reachable = ids.last_reachable;
  s.last = ids.last;
  s.stop_point = meta.stop_point;
  s.wedged = meta.stop_point != 0 && ids.last_reachable == meta.stop_point && ids.last == meta.stop_point;
  s.wedged_since_ms = s.wedged ? impl_->wedged_since_ms.load() : 0;
  s.state_transfer_active = impl_->st.active() || ids.last_state_transfer != 0;
  s.blocks_per_sec = impl_->opt.read_only ? 0 : impl_->meter.Rate(now, impl_->produced.load());
  if (!impl_->opt.read_only) {
    const uint64_t cap = meta.stop_point == 0 ? kNoCap : meta.stop_point;
    const uint64_t target = std::min(impl_->ClockTarget(meta.epoch, now, ids.last_reachable), cap);
    s.lag_blocks = target > ids.last_reachable ? target - ids.last_reachable : 0;
    s.catch_up_blocks_per_sec = impl_->st_fetch_meter.Rate(now, impl_->st.fetched());
    const double st_work = impl_->st_work_meter.Rate(now, impl_->st.progress());
    s.catching_up = IsCatchingUp(s, st_work, impl_->opt.state_transfer_threshold);
  }
  s.fast_paths = meta.fast_paths;
  s.slow_paths = meta.slow_paths;
  s.read_only = impl_->opt.read_only;
  s.slow_path_fault = impl_->fault.load();
  s.pid = static_cast<int64_t>(::getpid());
  return s;
}

Result<LedgerStatus> LedgerNode::Wedge(uint64_t stop_point) {
  if (impl_->opt.read_only) return Status::FailedPrecondition("ledger is read-only: wedge refused");
  if (stop_point == 0 || stop_point % kCheckpointWindow != 0) {
    return Status::InvalidArgument("stop point " + std::to_string(stop_point) +
                                   " is not a positive multiple of the checkpoint window " +
                                   std::to_string(kCheckpointWindow));
  }
  {
    std::lock_guard lock(impl_->chain_mu);
    const uint64_t last_reachable = impl_->store->GetBlockIds().last_reachable;
    if (last_reachable > stop_point) {
      return Status::FailedPrecondition("already past stop point " + std::to_string(stop_point) +
                                        ": last reachable block is " + std::to_string(last_reachable));
    }
    LK_RETURN_IF_ERROR(impl_->store->SetStopPoint(stop_point));
    spdlog::info("wedge requested at stop point {} (last reachable {})", stop_point, last_reachable);
  }
  impl_->wake.notify_all();
  return GetStatus();
}

Result<LedgerStatus> LedgerNode::Unwedge() {
  if (impl_->opt.read_only) return Status::FailedPrecondition("ledger is read-only: unwedge refused");
  {
    std::lock_guard lock(impl_->chain_mu);
    const uint64_t stop_point = impl_->store->GetMeta().stop_point;
    if (stop_point == 0) {
      spdlog::info("unwedge: not wedged, nothing to do");
      return GetStatus();
    }
    const ClusterEpoch epoch{stop_point, impl_->opt.clock()};
    LK_RETURN_IF_ERROR(impl_->store->ResumeFromStopPoint(epoch));
    impl_->wedged_since_ms.store(0);
    spdlog::info("unwedged: resuming from stop point {} at {} blocks/s", stop_point, impl_->opt.blocks_per_sec);
  }
  impl_->wake.notify_all();
  return GetStatus();
}

Result<LedgerStatus> LedgerNode::SetFault(bool slow_path) {
  if (impl_->opt.read_only) return Status::FailedPrecondition("ledger is read-only: set fault refused");
  if (impl_->fault.exchange(slow_path) != slow_path) {
    spdlog::info("slow-path fault {}", slow_path ? "set" : "cleared");
  }
  return GetStatus();
}

Result<CheckpointInfo> LedgerNode::Checkpoint(const std::string& path) {
  if (impl_->opt.read_only) return Status::FailedPrecondition("ledger is read-only: checkpoint refused");
  // The requester's working directory is not ours: relative paths would be
  // resolved against the wrong directory.
  if (!std::filesystem::path(path).is_absolute()) {
    return Status::InvalidArgument("checkpoint path must be absolute: '" + path + "'");
  }
  LK_ASSIGN_OR_RETURN(CheckpointInfo info, impl_->store->CreateCheckpoint(path));
  spdlog::info("checkpoint at {}: blocks [{}, {}], last {}", info.path, info.genesis, info.last_reachable, info.last);
  return info;
}

Result<BlockInfo> LedgerNode::GetBlock(uint64_t id, bool include_raw) const {
  return impl_->store->GetBlockInfo(id, include_raw);
}

Result<KeyLookup> LedgerNode::GetKey(const std::string& key, uint64_t at_block) const {
  return impl_->store->GetValue(key, at_block);
}

}  // namespace ledgerkeep::ledger
