// LedgerStore: the RocksDB key-value blockchain of one replica (format in
// ledger/FORMAT.md). Used by ledgerd (read-write) and, read-only, by the
// offline tool ledgerkeep-db and by agents checking a stopped or restored DB.
//
// Ownership: a LedgerStore owns its RocksDB handle; destroying it closes the
// DB (flushing memtables first in read-write mode). Read-write opens take
// RocksDB's LOCK file, so one process writes a DB at a time.
// Thread-safety: every method may be called from any thread; writes are
// serialized internally. Crash behaviour: each block write is one atomic
// WriteBatch (block + key index + counters), so after a crash the chain ends
// at the last fully written block; a partly fetched st_chain is resumed.
// Read-only opens never write to the DB directory (not even RocksDB's LOG).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "ledger/block.h"
#include "ledger/ledger_types.h"

namespace ledgerkeep::ledger {

// Cluster clock: the chain is at height base_block at base_time_ms and grows
// at the configured rate after it (see LedgerNode).
struct ClusterEpoch {
  uint64_t base_block = 0;
  int64_t base_time_ms = 0;
  bool operator==(const ClusterEpoch&) const = default;
};

// Everything kept in the `meta` column family.
struct LedgerMeta {
  ChainParams params;
  ClusterEpoch epoch;
  uint64_t stop_point = 0;  // 0 = not wedged
  uint64_t fast_paths = 0;
  uint64_t slow_paths = 0;
};

struct StoreOptions {
  // Open with rocksdb::DB::OpenForReadOnly. Default: false.
  bool read_only = false;
  // Read-write only: create the DB (and write `params`/`epoch` to meta) if
  // the directory holds none. Default: false.
  bool create_if_missing = false;
  ChainParams params;   // used only when the DB is created
  ClusterEpoch epoch;   // used only when the DB is created
  // Memtable size per column family: small, so SSTs are flushed and
  // compacted continuously like on a busy replica. Default: 4 MiB.
  size_t write_buffer_size = 4 << 20;
  // RocksDB's info LOG rolls over at this size and three old ones are kept,
  // so a replica that runs for months never fills its disk with it (one
  // reached 263 MB in a day of tests). Default: 16 MiB.
  size_t info_log_max_bytes = 16 << 20;
};

struct VerifyReport {
  uint64_t from = 0;
  uint64_t to = 0;
  uint64_t blocks_verified = 0;  // good blocks before the first bad one
  // Set when the chain failed verification: the first bad block and why
  // (unreadable, undecodable, wrong id, missing, parent digest mismatch).
  std::optional<uint64_t> first_bad_block;
  std::string error;
  bool ok() const { return !first_bad_block.has_value(); }
};

struct CompareReport {
  uint64_t from = 0;  // common range; from > to when there is none
  uint64_t to = 0;
  std::optional<uint64_t> first_mismatch;
};

struct RangeStats {
  uint64_t from = 0;
  uint64_t to = 0;
  uint64_t blocks = 0;
  uint64_t bytes = 0;
  uint64_t updates = 0;
  uint64_t distinct_keys = 0;   // keys written in the range
  uint64_t min_block_bytes = 0;  // serialized block sizes (0 when no blocks)
  uint64_t max_block_bytes = 0;
};

// Reads every block of the SST file at `path` and checks its RocksDB block
// checksums (the file need not belong to an open DB: a checkpoint's copy is
// fine). OK for a sound file; Corruption naming the file for a bad checksum,
// a truncated file or a bad footer; NotFound/IOError when it cannot be read.
// Used by backups so a corrupted SST is refused, never shipped silently.
Status VerifySstFile(const std::string& path);

class LedgerStore {
 public:
  // Opens the ledger at `path`. NotFound if the directory does not exist;
  // InvalidArgument ("not a ledgerkeep ledger: ...") if it holds no RocksDB
  // or a RocksDB without the ledger column families.
  static Result<std::unique_ptr<LedgerStore>> Open(const std::string& path,
                                                   const StoreOptions& options);
  static Result<std::unique_ptr<LedgerStore>> OpenReadOnly(const std::string& path);
  ~LedgerStore();
  LedgerStore(const LedgerStore&) = delete;
  LedgerStore& operator=(const LedgerStore&) = delete;

  const std::string& path() const;
  bool read_only() const;
  BlockIds GetBlockIds() const;
  // Lowest block in st_chain (0 when empty).
  uint64_t FirstStateTransferBlockId() const;
  LedgerMeta GetMeta() const;
  // Digest of the last reachable block (zeros when the chain is empty).
  Digest LastReachableDigest() const;

  // Serialized block `id` from `blocks` (NotFound if absent).
  Result<std::string> GetRawBlock(BlockId id) const;
  // Serialized block `id` from `st_chain` (NotFound if absent).
  Result<std::string> GetRawStateTransferBlock(BlockId id) const;
  Result<BlockInfo> GetBlockInfo(BlockId id, bool include_raw) const;
  // Value of `key` as of block `at_block` (0 = last reachable). NotFound if
  // the key was not written at or before that block.
  Result<KeyLookup> GetValue(const std::string& key, uint64_t at_block) const;

  // --- writes (FailedPrecondition on a read-only store) ---

  // Appends `block` as last_reachable + 1. It must link to the last
  // reachable digest and st_chain must be empty.
  Status AppendBlock(const Block& block, bool slow_path);
  // Stores fetched blocks in st_chain. `descending` must be contiguous ids,
  // highest first, each directly below the current st_chain bottom (or any
  // range above last_reachable when st_chain is empty).
  Status AddStateTransferBlocks(const std::vector<Block>& descending);
  // Moves up to `max_blocks` blocks from the bottom of st_chain into
  // `blocks`, verifying parent digests. Returns how many were linked (the
  // good prefix); Corruption if the lowest block does not link, and
  // FailedPrecondition if st_chain does not reach down to last_reachable + 1.
  Result<uint64_t> LinkStateTransferBlocks(uint64_t max_blocks);
  // Deletes st_chain blocks with id > `keep_up_to` (0 = all).
  Status DropStateTransferBlocksAbove(BlockId keep_up_to);
  Status SetEpoch(const ClusterEpoch& epoch);
  // 0 clears the stop point.
  Status SetStopPoint(uint64_t stop_point);
  // Clears the stop point and sets the epoch in one atomic write.
  Status ResumeFromStopPoint(const ClusterEpoch& epoch);
  // Fills an empty ledger with blocks 1..`count` of its own chain (the
  // params in meta), written as SST files in a staging directory inside the
  // DB and ingested in one atomic step with the key index and meta: the
  // fast-path counter is `count` and the cluster clock continues from
  // `count` once the next read-write Open starts it (at that open's
  // StoreOptions::epoch time; replicas given the same time agree). Every
  // ingested SST passes VerifySstFile, as a produced one does. The same
  // params and count give the same blocks on every replica. Returns the
  // serialized bytes of the blocks. `progress` (may be empty) gets the
  // blocks done so far. InvalidArgument for 0 blocks; FailedPrecondition
  // unless the ledger is writable and holds no blocks. Memory: the key
  // index is sorted in memory, ~50 bytes per block. Crash: before the
  // ingestion the ledger stays empty; between it and the meta write (one
  // synced batch right after) the blocks are there but the clock is not
  // set: delete the DB and load again. Staging files are removed by the
  // next BulkLoad or by this one on failure.
  Result<uint64_t> BulkLoad(uint64_t count, const std::function<void(uint64_t)>& progress);
  // Flushes all memtables to SSTs (and the WAL to disk).
  Status Flush();
  // RocksDB checkpoint (hard links where possible) at `dir`, which must not
  // exist. Writes are paused while it is taken, so the returned ids are
  // exactly the blocks it contains.
  Result<CheckpointInfo> CreateCheckpoint(const std::string& dir);

  // --- offline checks ---

  // Recomputes digests and parent links over [from, to] of `blocks`
  // (0 = genesis / last reachable). A bad chain is reported in the
  // VerifyReport; the Status is an error only for a bad range.
  Result<VerifyReport> VerifyChain(uint64_t from, uint64_t to) const;
  // Compares serialized blocks over the range both chains hold.
  Result<CompareReport> CompareTo(const LedgerStore& other) const;
  Result<RangeStats> GetRangeStats(uint64_t from, uint64_t to) const;
  std::vector<std::string> ColumnFamilyNames() const;

 private:
  struct Impl;
  explicit LedgerStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledgerkeep::ledger
