#include "ledger/state_transfer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace ledgerkeep::ledger {

void ChainSource::Reset(BlockId base, const Digest& base_digest) {
  base_ = base;
  digests_.assign(1, base_digest);
}

uint64_t ChainSource::PrepareUpTo(BlockId top, uint64_t max_blocks) {
  uint64_t n = 0;
  for (; n < max_blocks && prepared_top() < top; ++n) {
    const BlockId id = prepared_top() + 1;
    const Block block = GenerateBlock(params_, id, digests_.back());
    digests_.push_back(ComputeBlockDigest(id, SerializeBlock(block)));
  }
  return n;
}

StateTransfer::StateTransfer(LedgerStore& store, ChainParams params, double fetch_blocks_per_sec,
                             std::function<int64_t()> clock)
    : store_(store), source_(params), rate_(fetch_blocks_per_sec), clock_(std::move(clock)) {}

void StateTransfer::Begin(BlockId target) {
  const BlockIds ids = store_.GetBlockIds();
  base_ = ids.last_reachable;
  source_.Reset(base_, store_.LastReachableDigest());
  have_expected_ = false;
  const uint64_t st_first = store_.FirstStateTransferBlockId();
  if (st_first != 0) {
    // Resume: the blocks above st_first are fetched already; the lowest one
    // says which digest the next block down must have.
    top_ = ids.last_state_transfer;
    next_fetch_ = st_first - 1;
    auto raw = store_.GetRawStateTransferBlock(st_first);
    auto header = raw.ok() ? ParseBlockHeader(*raw) : Result<Block>(raw.status());
    if (header.ok()) {
      expected_ = header->parent_digest;
      have_expected_ = true;
    } else {
      spdlog::warn("state transfer: st_chain bottom block {} unreadable ({}); refetching the range", st_first,
                   header.status().ToString());
      store_.DropStateTransferBlocksAbove(0).IgnoreError();  // retried by the next round if it fails
      next_fetch_ = top_;
    }
    spdlog::info("state transfer: resuming, blocks [{}, {}] fetched, fetching [{}, {}] top-down", st_first, top_,
                 base_ + 1, next_fetch_);
  } else {
    top_ = target;
    next_fetch_ = target;
    spdlog::info("state transfer: begin, last reachable {}, fetching blocks [{}, {}] top-down", base_, base_ + 1,
                 top_);
  }
  started_ms_ = clock_();
  next_due_ms_ = static_cast<double>(started_ms_);
  phase_ = Phase::kPreparing;
  active_ = true;
}

void StateTransfer::Finish() {
  const BlockIds ids = store_.GetBlockIds();
  spdlog::info("state transfer: complete, linked blocks [{}, {}] in {} ms; last reachable {}", base_ + 1,
               ids.last_reachable, clock_() - started_ms_, ids.last_reachable);
  phase_ = Phase::kIdle;
  active_ = false;
}

Result<int64_t> StateTransfer::Step(std::mutex& write_mu, const std::function<uint64_t()>& cap) {
  if (phase_ == Phase::kIdle) return int64_t{0};

  {
    // A wedge below the round's target lowers it; fetched blocks above the
    // stop point are dropped (never linked).
    std::lock_guard lock(write_mu);
    const uint64_t stop = cap();
    if (stop < top_) {
      spdlog::info("state transfer: target lowered from {} to stop point {}", top_, stop);
      if (store_.GetBlockIds().last_state_transfer > stop) {
        LK_RETURN_IF_ERROR(store_.DropStateTransferBlocksAbove(stop));
      }
      top_ = std::max(stop, base_);
      if (next_fetch_ > top_) {
        next_fetch_ = top_;
        have_expected_ = false;
      }
    }
    if (top_ <= store_.GetBlockIds().last_reachable) {
      Finish();
      return int64_t{0};
    }
    // Linking stays under the same lock as the cap check above.
    if (phase_ == Phase::kLinking) {
      auto linked = store_.LinkStateTransferBlocks(256);
      if (!linked.ok()) {
        spdlog::error("state transfer: linking failed: {}; dropping st_chain and starting over",
                      linked.status().ToString());
        Status drop = store_.DropStateTransferBlocksAbove(0);
        phase_ = Phase::kIdle;
        active_ = false;
        LK_RETURN_IF_ERROR(drop);
        return linked.status();
      }
      progress_ += *linked;
      if (store_.GetBlockIds().last_state_transfer == 0) Finish();
      return int64_t{0};
    }
  }

  if (phase_ == Phase::kPreparing) {
    // Learning the target's digest stands in for agreeing on a checkpoint
    // with the peers; it needs the digest chain up to the target.
    progress_ += source_.PrepareUpTo(next_fetch_, 512);
    if (source_.prepared_top() < next_fetch_) return int64_t{0};
    if (!have_expected_) {
      expected_ = source_.DigestOf(next_fetch_);
      have_expected_ = true;
    }
    phase_ = Phase::kFetching;
  }

  // kFetching
  if (!have_expected_) {
    expected_ = source_.DigestOf(next_fetch_);
    have_expected_ = true;
  }
  if (next_fetch_ <= base_) {
    phase_ = Phase::kLinking;
    return int64_t{0};
  }
  const auto now = static_cast<double>(clock_());
  if (rate_ > 0 && now < next_due_ms_) return static_cast<int64_t>(std::ceil(next_due_ms_ - now));
  uint64_t batch = rate_ > 0 ? std::max<uint64_t>(1, static_cast<uint64_t>(rate_ * 0.02)) : 256;
  batch = std::min(batch, next_fetch_ - base_);
  std::vector<Block> fetched;
  fetched.reserve(batch);
  for (uint64_t i = 0; i < batch; ++i) {
    const BlockId id = next_fetch_ - i;
    Block block = source_.Fetch(id);
    if (ComputeBlockDigest(id, SerializeBlock(block)) != expected_) {
      return Status::Corruption("state transfer: fetched block " + std::to_string(id) +
                                " does not match the digest its child block names");
    }
    expected_ = block.parent_digest;
    fetched.push_back(std::move(block));
  }
  LK_RETURN_IF_ERROR(store_.AddStateTransferBlocks(fetched));
  next_fetch_ -= batch;
  progress_ += batch;
  fetched_ += batch;
  if (rate_ > 0) next_due_ms_ = std::max(next_due_ms_, now) + static_cast<double>(batch) * 1000.0 / rate_;
  if (next_fetch_ <= base_) {
    spdlog::info("state transfer: fetched [{}, {}], linking", base_ + 1, top_);
    phase_ = Phase::kLinking;
  }
  return int64_t{0};
}

}  // namespace ledgerkeep::ledger
