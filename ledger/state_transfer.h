// State transfer of a missing block range (internal to ledgerd).
//
// A real replica fetches the range from its peers; here the "peers" are a
// ChainSource that regenerates blocks from the chain params, which is what
// every honest peer would serve. The protocol is Concord's: learn the digest
// of the target block (the checkpoint), fetch blocks top-down into st_chain,
// each verified against the parent digest of the block above it, then link
// them bottom-up into `blocks` (LedgerStore re-verifies every parent link).
//
// Thread-safety: one thread (the producer) drives a StateTransfer;
// active() and the range getters may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "common/status.h"
#include "ledger/block.h"
#include "ledger/ledger_store.h"

namespace ledgerkeep::ledger {

// Blocks as the cluster holds them: generated, with digests chained from a
// known base block.
class ChainSource {
 public:
  explicit ChainSource(ChainParams params) : params_(params) {}
  // Forget everything; digests are chained from block `base`.
  void Reset(BlockId base, const Digest& base_digest);
  // Computes up to `max_blocks` more digests toward block `top`; returns how
  // many it computed (block `top` has one once prepared_top() >= top).
  uint64_t PrepareUpTo(BlockId top, uint64_t max_blocks);
  BlockId base() const { return base_; }
  BlockId prepared_top() const { return base_ + digests_.size() - 1; }
  // Digest of block id, base <= id <= prepared_top().
  const Digest& DigestOf(BlockId id) const { return digests_[id - base_]; }
  // Block id, base < id <= prepared_top().
  Block Fetch(BlockId id) const { return GenerateBlock(params_, id, DigestOf(id - 1)); }

 private:
  ChainParams params_;
  BlockId base_ = 0;
  std::vector<Digest> digests_;  // digests_[i] = digest of block base_ + i
};

class StateTransfer {
 public:
  // `fetch_blocks_per_sec` 0 = unlimited.
  StateTransfer(LedgerStore& store, ChainParams params, double fetch_blocks_per_sec,
                std::function<int64_t()> clock);

  bool active() const { return active_.load(); }
  // Work done so far, for a rate: blocks whose digest was learned, blocks
  // fetched and blocks linked (a block counts in each phase).
  uint64_t progress() const { return progress_.load(); }
  // Blocks fetched so far (the phase the fetch rate limits).
  uint64_t fetched() const { return fetched_.load(); }
  // Starts a round up to `target` (> last reachable), or resumes the round
  // whose blocks are already in st_chain (target is then the st_chain top).
  void Begin(BlockId target);
  // One bounded piece of work. `write_mu` is held while blocks are linked
  // and `cap` (the wedge stop point, or UINT64_MAX) is read under it, so a
  // concurrent wedge can never be overtaken. Returns how long to wait before
  // the next step (ms, 0 = continue at once).
  Result<int64_t> Step(std::mutex& write_mu, const std::function<uint64_t()>& cap);

 private:
  enum class Phase { kIdle, kPreparing, kFetching, kLinking };
  void Finish();

  LedgerStore& store_;
  ChainSource source_;
  double rate_;
  std::function<int64_t()> clock_;
  std::atomic<bool> active_{false};
  std::atomic<uint64_t> progress_{0};
  std::atomic<uint64_t> fetched_{0};
  Phase phase_ = Phase::kIdle;
  BlockId base_ = 0;        // last reachable when the round began
  BlockId top_ = 0;         // round target
  BlockId next_fetch_ = 0;  // next block to fetch (top-down); base_ = done
  Digest expected_{};       // digest block next_fetch_ must have
  bool have_expected_ = false;  // false until learned from the source
  double next_due_ms_ = 0;  // rate limiter
  int64_t started_ms_ = 0;
};

}  // namespace ledgerkeep::ledger
