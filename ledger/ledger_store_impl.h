// Internals of LedgerStore shared by its implementation files
// (ledger_store.cc, ledger_store_bulk.cc): column family and meta key names,
// the RocksDB status mapping and the store's state. Not for use outside
// ledger/; RocksDB types stay here.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdarg>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ledger/ledger_store.h"

namespace ledgerkeep::ledger::store_internal {

inline constexpr char kBlocksCf[] = "blocks";
inline constexpr char kStChainCf[] = "st_chain";
inline constexpr char kMetaCf[] = "meta";
inline constexpr char kKvIndexCf[] = "kv_index";
inline constexpr uint64_t kMetaFormatVersion = 1;

// meta keys (values are 8-byte big-endian integers)
inline constexpr char kMetaFormat[] = "format_version";
inline constexpr char kMetaGenesis[] = "genesis";
inline constexpr char kMetaSeed[] = "chain_seed";
inline constexpr char kMetaPayloadBytes[] = "payload_bytes";
inline constexpr char kMetaKeyspace[] = "keyspace";
inline constexpr char kMetaEpochBlock[] = "epoch_base_block";
inline constexpr char kMetaEpochTime[] = "epoch_base_time_ms";
inline constexpr char kMetaStopPoint[] = "stop_point";
inline constexpr char kMetaFastPaths[] = "fast_paths";
inline constexpr char kMetaSlowPaths[] = "slow_paths";

// Read-only opens must not touch the directory, so RocksDB's LOG goes nowhere.
class NullLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

inline Status FromRocks(const rocksdb::Status& s, std::string_view context) {
  if (s.ok()) return Status::OK();
  std::string msg = std::string(context) + ": " + s.ToString();
  if (s.IsNotFound()) return Status::NotFound(std::move(msg));
  if (s.IsCorruption()) return Status::Corruption(std::move(msg));
  if (s.IsInvalidArgument()) return Status::InvalidArgument(std::move(msg));
  if (s.IsBusy() || s.IsTryAgain()) return Status::Busy(std::move(msg));
  if (s.IsNoSpace()) return Status::NoSpace(std::move(msg));
  if (s.IsIOError()) return Status::IOError(std::move(msg));
  return Status::Internal(std::move(msg));
}

inline std::string U64(uint64_t v) { return EncodeBlockKey(v); }

// kv_index key: u32 BE key length ‖ key ‖ u64 BE block id.
inline std::string IndexPrefix(std::string_view key) {
  std::string out;
  const auto n = static_cast<uint32_t>(key.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(key);
  return out;
}

inline std::string IndexKey(std::string_view key, BlockId id) { return IndexPrefix(key) + EncodeBlockKey(id); }

inline rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace ledgerkeep::ledger::store_internal

namespace ledgerkeep::ledger {

struct LedgerStore::Impl {
  std::string path;
  bool read_only = false;
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::ColumnFamilyHandle* blocks = nullptr;
  rocksdb::ColumnFamilyHandle* st = nullptr;
  rocksdb::ColumnFamilyHandle* meta_cf = nullptr;
  rocksdb::ColumnFamilyHandle* index = nullptr;  // may be null on old/foreign DBs

  std::mutex write_mu;  // serializes writes and checkpoints

  mutable std::mutex state_mu;  // guards the in-memory mirror below
  BlockIds ids;
  uint64_t st_first = 0;
  Digest last_digest{};
  LedgerMeta meta;
  // False for a bulk-generated chain whose cluster clock has not started
  // (no epoch_base_time_ms in meta): the first read-write open starts it.
  bool clock_started = true;

  ~Impl() {
    if (db == nullptr) return;
    if (!read_only) {
      rocksdb::FlushOptions fo;
      fo.wait = true;
      db->Flush(fo, handles).PermitUncheckedError();
      db->FlushWAL(true).PermitUncheckedError();
    }
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db->Close().PermitUncheckedError();
    delete db;
  }

  Status CheckWritable() const {
    if (read_only) return Status::FailedPrecondition("ledger " + path + " is open read-only");
    return Status::OK();
  }

  Result<std::optional<std::string>> GetOpt(rocksdb::ColumnFamilyHandle* cf, std::string_view key) const {
    std::string value;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), cf, store_internal::ToSlice(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return store_internal::FromRocks(s, "read " + cf->GetName());
    return std::optional<std::string>(std::move(value));
  }

  Result<uint64_t> GetMetaU64(std::string_view key, uint64_t dflt) const {
    LK_ASSIGN_OR_RETURN(auto v, GetOpt(meta_cf, key));
    if (!v) return dflt;
    auto r = DecodeBlockKey(*v);
    if (!r.ok()) return Status::Corruption("meta key '" + std::string(key) + "': " + r.status().message());
    return *r;
  }

  // First and last block id of a column family (0, 0 when empty).
  Result<std::pair<uint64_t, uint64_t>> Bounds(rocksdb::ColumnFamilyHandle* cf) const {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
    it->SeekToFirst();
    if (!it->Valid()) {
      LK_RETURN_IF_ERROR(store_internal::FromRocks(it->status(), "scan " + cf->GetName()));
      return std::pair<uint64_t, uint64_t>{0, 0};
    }
    LK_ASSIGN_OR_RETURN(uint64_t first, DecodeBlockKey(std::string_view(it->key().data(), it->key().size())));
    it->SeekToLast();
    if (!it->Valid()) return store_internal::FromRocks(it->status(), "scan " + cf->GetName());
    LK_ASSIGN_OR_RETURN(uint64_t last, DecodeBlockKey(std::string_view(it->key().data(), it->key().size())));
    return std::pair<uint64_t, uint64_t>{first, last};
  }

  Status LoadState() {
    LK_ASSIGN_OR_RETURN(auto b, Bounds(blocks));
    LK_ASSIGN_OR_RETURN(auto s, Bounds(st));
    ids.genesis = b.first;
    ids.last_reachable = b.second;
    ids.last_state_transfer = s.second;
    ids.last = std::max(b.second, s.second);
    st_first = s.first;
    if (ids.last_reachable != 0) {
      LK_ASSIGN_OR_RETURN(auto raw, GetOpt(blocks, EncodeBlockKey(ids.last_reachable)));
      if (!raw) return Status::Corruption("last block " + std::to_string(ids.last_reachable) + " vanished");
      last_digest = ComputeBlockDigest(ids.last_reachable, *raw);
    }
    LK_ASSIGN_OR_RETURN(uint64_t seed, GetMetaU64(store_internal::kMetaSeed, meta.params.seed));
    LK_ASSIGN_OR_RETURN(uint64_t payload,
                        GetMetaU64(store_internal::kMetaPayloadBytes, meta.params.payload_bytes));
    LK_ASSIGN_OR_RETURN(uint64_t keyspace, GetMetaU64(store_internal::kMetaKeyspace, meta.params.keyspace));
    LK_ASSIGN_OR_RETURN(meta.epoch.base_block, GetMetaU64(store_internal::kMetaEpochBlock, 0));
    LK_ASSIGN_OR_RETURN(auto base_time_raw, GetOpt(meta_cf, store_internal::kMetaEpochTime));
    clock_started = base_time_raw.has_value();
    LK_ASSIGN_OR_RETURN(uint64_t base_time, GetMetaU64(store_internal::kMetaEpochTime, 0));
    LK_ASSIGN_OR_RETURN(meta.stop_point, GetMetaU64(store_internal::kMetaStopPoint, 0));
    LK_ASSIGN_OR_RETURN(meta.fast_paths, GetMetaU64(store_internal::kMetaFastPaths, 0));
    LK_ASSIGN_OR_RETURN(meta.slow_paths, GetMetaU64(store_internal::kMetaSlowPaths, 0));
    meta.params.seed = seed;
    meta.params.payload_bytes = static_cast<uint32_t>(payload);
    meta.params.keyspace = static_cast<uint32_t>(keyspace);
    meta.epoch.base_time_ms = static_cast<int64_t>(base_time);
    return Status::OK();
  }

  // Writes epoch_base_time_ms (fsynced) for a chain whose clock had not started.
  Status StartClock(int64_t base_time_ms) {
    rocksdb::WriteBatch batch;
    LK_RETURN_IF_ERROR(store_internal::FromRocks(
        batch.Put(meta_cf, store_internal::kMetaEpochTime, store_internal::U64(static_cast<uint64_t>(base_time_ms))),
        "batch"));
    LK_RETURN_IF_ERROR(Write(batch, "start the cluster clock"));
    LK_RETURN_IF_ERROR(store_internal::FromRocks(db->FlushWAL(true), "sync WAL"));
    std::lock_guard lock(state_mu);
    meta.epoch.base_time_ms = base_time_ms;
    clock_started = true;
    return Status::OK();
  }

  Status Write(rocksdb::WriteBatch& batch, std::string_view what) {
    return store_internal::FromRocks(db->Write(rocksdb::WriteOptions(), &batch), what);
  }

  Status IndexUpdates(rocksdb::WriteBatch& batch, const Block& block) {
    if (index == nullptr) return Status::OK();
    for (const auto& kv : block.updates) {
      LK_RETURN_IF_ERROR(store_internal::FromRocks(
          batch.Put(index, store_internal::IndexKey(kv.key, block.id), rocksdb::Slice()), "batch"));
    }
    return Status::OK();
  }

  Result<std::string> GetRaw(rocksdb::ColumnFamilyHandle* cf, BlockId id) const {
    LK_ASSIGN_OR_RETURN(auto v, GetOpt(cf, EncodeBlockKey(id)));
    if (!v) return Status::NotFound("block " + std::to_string(id) + " not found in '" + cf->GetName() + "'");
    return std::move(*v);
  }
};

}  // namespace ledgerkeep::ledger
