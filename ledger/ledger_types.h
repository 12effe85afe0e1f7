// Plain value types describing a ledger node, shared by ledgerd, its control
// client (used by the agent) and the offline reader. No zmq/rocksdb types.
#pragma once

#include <cstdint>
#include <string>

namespace ledgerkeep::ledger {

// Block ids of one ledger. 0 means "none" everywhere.
struct BlockIds {
  uint64_t genesis = 0;                    // first block in `blocks`
  uint64_t last_reachable = 0;             // top of the contiguous chain from genesis
  uint64_t last_state_transfer = 0;        // top of `st_chain` (0 = empty)
  uint64_t last = 0;                       // max(last_reachable, last_state_transfer)
  bool operator==(const BlockIds&) const = default;
};

// What a running ledgerd reports (control Status reply).
struct LedgerStatus {
  uint64_t genesis = 0;
  uint64_t last_reachable = 0;
  uint64_t last = 0;
  bool wedged = false;           // true only when last_reachable == last == stop_point
  int64_t wedged_since_ms = 0;   // node clock when it reached the stop point (wedged only)
  uint64_t stop_point = 0;       // 0 = no wedge requested
  bool state_transfer_active = false;
  double blocks_per_sec = 0;     // blocks produced by consensus, last few seconds
  // How far the chain is below the cluster clock's target (capped at the
  // stop point): a producing replica is within a few blocks.
  uint64_t lag_blocks = 0;
  // Blocks state transfer fetched per second, last few seconds (it closes
  // the gap only when this exceeds the cluster's rate).
  double catch_up_blocks_per_sec = 0;
  // Behind the cluster (state transfer running, or further behind than the
  // state transfer threshold) and moving: catching up, not stuck. See
  // IsCatchingUp (ledger_node.h).
  bool catching_up = false;
  uint64_t fast_paths = 0;
  uint64_t slow_paths = 0;
  bool read_only = false;
  bool slow_path_fault = false;  // the fault flag forcing slow path is set
  int64_t pid = 0;
};

// A RocksDB checkpoint created by ledgerd, and the blocks it holds.
struct CheckpointInfo {
  std::string path;
  uint64_t genesis = 0;
  uint64_t last_reachable = 0;
  uint64_t last = 0;
};

struct BlockInfo {
  uint64_t id = 0;
  std::string parent_digest_hex;  // 64 hex chars
  std::string digest_hex;         // 64 hex chars
  uint32_t num_updates = 0;
  uint64_t size = 0;              // serialized bytes
  std::string raw;                // serialized block, only when requested
};

// The value of a key as of a block.
struct KeyLookup {
  std::string key;
  std::string value;
  uint64_t block_id = 0;  // the block that wrote `value`
};

}  // namespace ledgerkeep::ledger
