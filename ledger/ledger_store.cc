#include "ledger/ledger_store.h"

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cstdarg>
#include <filesystem>
#include <mutex>
#include <unordered_set>

#include "ledger/ledger_store_impl.h"

namespace ledgerkeep::ledger {

using namespace store_internal;  // NOLINT: the store's own internals
namespace fs = std::filesystem;

LedgerStore::LedgerStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LedgerStore::~LedgerStore() = default;

Result<std::unique_ptr<LedgerStore>> LedgerStore::OpenReadOnly(const std::string& path) {
  StoreOptions options;
  options.read_only = true;
  return Open(path, options);
}

Result<std::unique_ptr<LedgerStore>> LedgerStore::Open(const std::string& path, const StoreOptions& options) {
  std::error_code ec;
  const bool create = options.create_if_missing && !options.read_only;
  if (!fs::exists(path, ec)) {
    if (!create) return Status::NotFound("ledger directory does not exist: " + path);
    fs::create_directories(path, ec);
    if (ec) return Status::IOError("cannot create ledger directory " + path + ": " + ec.message());
  } else if (!fs::is_directory(path, ec)) {
    return Status::InvalidArgument("not a ledgerkeep ledger: " + path + " is not a directory");
  }

  std::vector<std::string> existing;
  rocksdb::DBOptions list_opts;
  rocksdb::Status ls = rocksdb::DB::ListColumnFamilies(list_opts, path, &existing);
  bool fresh = false;
  if (!ls.ok()) {
    if (!fs::exists(fs::path(path) / "CURRENT", ec) && create && fs::is_empty(path, ec)) {
      fresh = true;
    } else if (!fs::exists(fs::path(path) / "CURRENT", ec)) {
      return Status::InvalidArgument("not a ledgerkeep ledger: " + path + " holds no RocksDB database");
    } else {
      return FromRocks(ls, "cannot read column families of " + path);
    }
  } else {
    for (const char* required : {kBlocksCf, kStChainCf, kMetaCf}) {
      if (std::find(existing.begin(), existing.end(), required) == existing.end()) {
        return Status::InvalidArgument("not a ledgerkeep ledger: " + path + " has no '" + required +
                                       "' column family");
      }
    }
  }

  std::vector<std::string> names = existing;
  if (fresh) names = {rocksdb::kDefaultColumnFamilyName};
  if (!options.read_only) {
    for (const char* cf : {kBlocksCf, kStChainCf, kMetaCf, kKvIndexCf}) {
      if (std::find(names.begin(), names.end(), cf) == names.end()) names.emplace_back(cf);
    }
  }

  rocksdb::DBOptions db_opts;
  db_opts.create_if_missing = create;
  db_opts.create_missing_column_families = !options.read_only;
  db_opts.max_background_jobs = 2;
  db_opts.keep_log_file_num = 3;
  db_opts.max_log_file_size = options.info_log_max_bytes;
  db_opts.max_manifest_file_size = 16 << 20;
  if (options.read_only) db_opts.info_log = std::make_shared<NullLogger>();

  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& name : names) {
    rocksdb::ColumnFamilyOptions cf;
    cf.write_buffer_size = options.write_buffer_size;
    cf.max_write_buffer_number = 2;
    cf.target_file_size_base = 2 * options.write_buffer_size;
    cf.max_bytes_for_level_base = 8 * options.write_buffer_size;
    cf.level0_file_num_compaction_trigger = 4;
    if (name == kBlocksCf || name == kStChainCf) {
      // Payloads are incompressible PRNG output: don't burn CPU on them.
      cf.compression = rocksdb::kNoCompression;
    }
    descs.emplace_back(name, cf);
  }

  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->read_only = options.read_only;
  rocksdb::Status s = options.read_only
                          ? rocksdb::DB::OpenForReadOnly(db_opts, path, descs, &impl->handles, &impl->db)
                          : rocksdb::DB::Open(db_opts, path, descs, &impl->handles, &impl->db);
  if (!s.ok()) return FromRocks(s, "cannot open ledger " + path);
  for (auto* h : impl->handles) {
    if (h->GetName() == kBlocksCf) impl->blocks = h;
    if (h->GetName() == kStChainCf) impl->st = h;
    if (h->GetName() == kMetaCf) impl->meta_cf = h;
    if (h->GetName() == kKvIndexCf) impl->index = h;
  }

  if (fresh) {
    rocksdb::WriteBatch batch;
    auto put = [&](const char* k, uint64_t v) { return batch.Put(impl->meta_cf, k, U64(v)); };
    rocksdb::Status b = put(kMetaFormat, kMetaFormatVersion);
    if (b.ok()) b = put(kMetaGenesis, kGenesisBlockId);
    if (b.ok()) b = put(kMetaSeed, options.params.seed);
    if (b.ok()) b = put(kMetaPayloadBytes, options.params.payload_bytes);
    if (b.ok()) b = put(kMetaKeyspace, options.params.keyspace);
    if (b.ok()) b = put(kMetaEpochBlock, options.epoch.base_block);
    if (b.ok()) b = put(kMetaEpochTime, static_cast<uint64_t>(options.epoch.base_time_ms));
    if (b.ok()) b = impl->db->Write(rocksdb::WriteOptions(), &batch);
    if (b.ok()) b = impl->db->FlushWAL(true);
    LK_RETURN_IF_ERROR(FromRocks(b, "cannot initialize ledger meta in " + path));
  }
  LK_RETURN_IF_ERROR(impl->LoadState().WithContext("ledger " + path));
  if (!impl->clock_started && !options.read_only) {
    // A generated chain (BulkLoad) waits for its cluster clock: it starts
    // now, at `options.epoch`'s time, from the height the chain has.
    LK_RETURN_IF_ERROR(impl->StartClock(options.epoch.base_time_ms).WithContext("ledger " + path));
  }
  return std::unique_ptr<LedgerStore>(new LedgerStore(std::move(impl)));
}

const std::string& LedgerStore::path() const { return impl_->path; }
bool LedgerStore::read_only() const { return impl_->read_only; }

BlockIds LedgerStore::GetBlockIds() const {
  std::lock_guard lock(impl_->state_mu);
  return impl_->ids;
}

uint64_t LedgerStore::FirstStateTransferBlockId() const {
  std::lock_guard lock(impl_->state_mu);
  return impl_->st_first;
}

LedgerMeta LedgerStore::GetMeta() const {
  std::lock_guard lock(impl_->state_mu);
  return impl_->meta;
}

Digest LedgerStore::LastReachableDigest() const {
  std::lock_guard lock(impl_->state_mu);
  return impl_->last_digest;
}

Result<std::string> LedgerStore::GetRawBlock(BlockId id) const { return impl_->GetRaw(impl_->blocks, id); }

Result<std::string> LedgerStore::GetRawStateTransferBlock(BlockId id) const {
  return impl_->GetRaw(impl_->st, id);
}

Result<BlockInfo> LedgerStore::GetBlockInfo(BlockId id, bool include_raw) const {
  LK_ASSIGN_OR_RETURN(std::string raw, GetRawBlock(id));
  auto block = ParseBlock(raw);
  if (!block.ok()) return block.status().WithContext("block " + std::to_string(id));
  BlockInfo info;
  info.id = id;
  info.parent_digest_hex = DigestToHex(block->parent_digest);
  info.digest_hex = DigestToHex(ComputeBlockDigest(id, raw));
  info.num_updates = static_cast<uint32_t>(block->updates.size());
  info.size = raw.size();
  if (include_raw) info.raw = std::move(raw);
  return info;
}

Result<KeyLookup> LedgerStore::GetValue(const std::string& key, uint64_t at_block) const {
  const BlockIds ids = GetBlockIds();
  if (at_block == 0) at_block = ids.last_reachable;
  if (at_block == 0) return Status::NotFound("the ledger has no blocks");
  if (at_block > ids.last_reachable) {
    return Status::InvalidArgument("block " + std::to_string(at_block) + " is beyond the last reachable block " +
                                   std::to_string(ids.last_reachable));
  }
  if (impl_->index == nullptr) return Status::NotFound("ledger has no key index");
  const std::string prefix = IndexPrefix(key);
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->index));
  it->SeekForPrev(IndexKey(key, at_block));
  if (!it->Valid()) LK_RETURN_IF_ERROR(FromRocks(it->status(), "key index"));
  const std::string_view found = it->Valid() ? std::string_view(it->key().data(), it->key().size()) : "";
  if (!it->Valid() || found.size() != prefix.size() + 8 || found.substr(0, prefix.size()) != prefix) {
    return Status::NotFound("key '" + key + "' has no value at block " + std::to_string(at_block));
  }
  LK_ASSIGN_OR_RETURN(BlockId id, DecodeBlockKey(found.substr(prefix.size())));
  LK_ASSIGN_OR_RETURN(std::string raw, GetRawBlock(id));
  auto block = ParseBlock(raw);
  if (!block.ok()) return block.status().WithContext("block " + std::to_string(id));
  for (auto it2 = block->updates.rbegin(); it2 != block->updates.rend(); ++it2) {
    if (it2->key == key) return KeyLookup{key, std::move(it2->value), id};
  }
  return Status::Corruption("key index names block " + std::to_string(id) + " for key '" + key +
                            "' but the block does not write it");
}

Status LedgerStore::AppendBlock(const Block& block, bool slow_path) {
  LK_RETURN_IF_ERROR(impl_->CheckWritable());
  std::lock_guard wlock(impl_->write_mu);
  BlockIds ids;
  Digest last_digest;
  LedgerMeta meta;
  {
    std::lock_guard lock(impl_->state_mu);
    ids = impl_->ids;
    last_digest = impl_->last_digest;
    meta = impl_->meta;
  }
  if (ids.last_state_transfer != 0) {
    return Status::FailedPrecondition("cannot append block " + std::to_string(block.id) +
                                      " while a state transfer holds blocks in st_chain");
  }
  const uint64_t expected = ids.last_reachable == 0 ? kGenesisBlockId : ids.last_reachable + 1;
  if (block.id != expected) {
    return Status::InvalidArgument("append of block " + std::to_string(block.id) + ", expected " +
                                   std::to_string(expected));
  }
  if (block.parent_digest != last_digest) {
    return Status::InvalidArgument("block " + std::to_string(block.id) + " does not link to the last block");
  }
  const std::string raw = SerializeBlock(block);
  rocksdb::WriteBatch batch;
  LK_RETURN_IF_ERROR(FromRocks(batch.Put(impl_->blocks, EncodeBlockKey(block.id), raw), "batch"));
  LK_RETURN_IF_ERROR(impl_->IndexUpdates(batch, block));
  if (slow_path) {
    ++meta.slow_paths;
    LK_RETURN_IF_ERROR(FromRocks(batch.Put(impl_->meta_cf, kMetaSlowPaths, U64(meta.slow_paths)), "batch"));
  } else {
    ++meta.fast_paths;
    LK_RETURN_IF_ERROR(FromRocks(batch.Put(impl_->meta_cf, kMetaFastPaths, U64(meta.fast_paths)), "batch"));
  }
  LK_RETURN_IF_ERROR(impl_->Write(batch, "append block " + std::to_string(block.id)));
  std::lock_guard lock(impl_->state_mu);
  if (impl_->ids.genesis == 0) impl_->ids.genesis = block.id;
  impl_->ids.last_reachable = block.id;
  impl_->ids.last = std::max(impl_->ids.last, block.id);
  impl_->last_digest = ComputeBlockDigest(block.id, raw);
  impl_->meta.fast_paths = meta.fast_paths;
  impl_->meta.slow_paths = meta.slow_paths;
  return Status::OK();
}

Status LedgerStore::AddStateTransferBlocks(const std::vector<Block>& descending) {
  LK_RETURN_IF_ERROR(impl_->CheckWritable());
  if (descending.empty()) return Status::OK();
  std::lock_guard wlock(impl_->write_mu);
  BlockIds ids;
  uint64_t st_first;
  {
    std::lock_guard lock(impl_->state_mu);
    ids = impl_->ids;
    st_first = impl_->st_first;
  }
  uint64_t expected = st_first != 0 ? st_first - 1 : descending.front().id;
  rocksdb::WriteBatch batch;
  for (const auto& block : descending) {
    if (block.id != expected || block.id <= ids.last_reachable) {
      return Status::InvalidArgument("state transfer block " + std::to_string(block.id) + " out of order (expected " +
                                     std::to_string(expected) + ", last reachable " +
                                     std::to_string(ids.last_reachable) + ")");
    }
    LK_RETURN_IF_ERROR(FromRocks(batch.Put(impl_->st, EncodeBlockKey(block.id), SerializeBlock(block)), "batch"));
    --expected;
  }
  LK_RETURN_IF_ERROR(impl_->Write(batch, "store state transfer blocks"));
  std::lock_guard lock(impl_->state_mu);
  if (impl_->st_first == 0) impl_->ids.last_state_transfer = descending.front().id;
  impl_->st_first = descending.back().id;
  impl_->ids.last = std::max(impl_->ids.last_reachable, impl_->ids.last_state_transfer);
  return Status::OK();
}

Result<uint64_t> LedgerStore::LinkStateTransferBlocks(uint64_t max_blocks) {
  LK_RETURN_IF_ERROR(impl_->CheckWritable());
  std::lock_guard wlock(impl_->write_mu);
  BlockIds ids;
  uint64_t st_first;
  Digest digest;
  {
    std::lock_guard lock(impl_->state_mu);
    ids = impl_->ids;
    st_first = impl_->st_first;
    digest = impl_->last_digest;
  }
  if (st_first == 0) return uint64_t{0};
  if (st_first != ids.last_reachable + 1) {
    return Status::FailedPrecondition("st_chain starts at block " + std::to_string(st_first) +
                                      ", not at last reachable + 1 = " + std::to_string(ids.last_reachable + 1));
  }
  rocksdb::WriteBatch batch;
  uint64_t id = st_first;
  uint64_t linked = 0;
  Status problem;
  for (; linked < max_blocks && id <= ids.last_state_transfer; ++id, ++linked) {
    auto raw = impl_->GetRaw(impl_->st, id);
    if (!raw.ok()) {
      problem = raw.status();
      break;
    }
    auto block = ParseBlock(*raw);
    if (!block.ok()) {
      problem = block.status().WithContext("state transfer block " + std::to_string(id));
      break;
    }
    const Digest want = id == kGenesisBlockId ? Digest{} : digest;
    if (block->id != id || block->parent_digest != want) {
      problem = Status::Corruption("state transfer block " + std::to_string(id) +
                                   " does not link to block " + std::to_string(id - 1));
      break;
    }
    LK_RETURN_IF_ERROR(FromRocks(batch.Put(impl_->blocks, EncodeBlockKey(id), *raw), "batch"));
    LK_RETURN_IF_ERROR(impl_->IndexUpdates(batch, *block));
    LK_RETURN_IF_ERROR(FromRocks(batch.Delete(impl_->st, EncodeBlockKey(id)), "batch"));
    digest = ComputeBlockDigest(id, *raw);
  }
  if (linked == 0) return problem.ok() ? Status::Internal("nothing to link") : problem;
  LK_RETURN_IF_ERROR(impl_->Write(batch, "link state transfer blocks"));
  std::lock_guard lock(impl_->state_mu);
  const uint64_t top = st_first + linked - 1;
  if (impl_->ids.genesis == 0) impl_->ids.genesis = st_first;
  impl_->ids.last_reachable = top;
  impl_->last_digest = digest;
  if (top >= impl_->ids.last_state_transfer) {
    impl_->st_first = 0;
    impl_->ids.last_state_transfer = 0;
  } else {
    impl_->st_first = top + 1;
  }
  impl_->ids.last = std::max(impl_->ids.last_reachable, impl_->ids.last_state_transfer);
  return linked;
}

Status LedgerStore::DropStateTransferBlocksAbove(BlockId keep_up_to) {
  LK_RETURN_IF_ERROR(impl_->CheckWritable());
  std::lock_guard wlock(impl_->write_mu);
  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->st));
  for (it->Seek(EncodeBlockKey(keep_up_to + 1)); it->Valid(); it->Next()) {
    LK_RETURN_IF_ERROR(FromRocks(batch.Delete(impl_->st, it->key()), "batch"));
  }
  LK_RETURN_IF_ERROR(FromRocks(it->status(), "scan st_chain"));
  LK_RETURN_IF_ERROR(impl_->Write(batch, "drop state transfer blocks"));
  std::lock_guard lock(impl_->state_mu);
  if (impl_->st_first == 0 || keep_up_to < impl_->st_first) {
    impl_->st_first = 0;
    impl_->ids.last_state_transfer = 0;
  } else {
    impl_->ids.last_state_transfer = std::min(impl_->ids.last_state_transfer, keep_up_to);
  }
  impl_->ids.last = std::max(impl_->ids.last_reachable, impl_->ids.last_state_transfer);
  return Status::OK();
}

Status LedgerStore::SetEpoch(const ClusterEpoch& epoch) {
  LK_RETURN_IF_ERROR(impl_->CheckWritable());
  std::lock_guard wlock(impl_->write_mu);
  rocksdb::WriteBatch batch;
  LK_RETURN_IF_ERROR(FromRocks(batch.Put(impl_->meta_cf, kMetaEpochBlock, U64(epoch.base_block)), "batch"));
  LK_RETURN_IF_ERROR(FromRocks(
      batch.Put(impl_->meta_cf, kMetaEpochTime, U64(static_cast<uint64_t>(epoch.base_time_ms))), "batch"));
  LK_RETURN_IF_ERROR(impl_->Write(batch, "set epoch"));
  std::lock_guard lock(impl_->state_mu);
  impl_->meta.epoch = epoch;
  return Status::OK();
}

Status LedgerStore::SetStopPoint(uint64_t stop_point) {
  LK_RETURN_IF_ERROR(impl_->CheckWritable());
  std::lock_guard wlock(impl_->write_mu);
  rocksdb::WriteBatch batch;
  LK_RETURN_IF_ERROR(FromRocks(stop_point == 0 ? batch.Delete(impl_->meta_cf, kMetaStopPoint)
                                               : batch.Put(impl_->meta_cf, kMetaStopPoint, U64(stop_point)),
                               "batch"));
  LK_RETURN_IF_ERROR(impl_->Write(batch, "set stop point"));
  // The stop point must survive a crash right after the wedge is acked.
  LK_RETURN_IF_ERROR(FromRocks(impl_->db->FlushWAL(true), "sync WAL"));
  std::lock_guard lock(impl_->state_mu);
  impl_->meta.stop_point = stop_point;
  return Status::OK();
}

Status LedgerStore::ResumeFromStopPoint(const ClusterEpoch& epoch) {
  LK_RETURN_IF_ERROR(impl_->CheckWritable());
  std::lock_guard wlock(impl_->write_mu);
  rocksdb::WriteBatch batch;
  LK_RETURN_IF_ERROR(FromRocks(batch.Delete(impl_->meta_cf, kMetaStopPoint), "batch"));
  LK_RETURN_IF_ERROR(FromRocks(batch.Put(impl_->meta_cf, kMetaEpochBlock, U64(epoch.base_block)), "batch"));
  LK_RETURN_IF_ERROR(FromRocks(
      batch.Put(impl_->meta_cf, kMetaEpochTime, U64(static_cast<uint64_t>(epoch.base_time_ms))), "batch"));
  LK_RETURN_IF_ERROR(impl_->Write(batch, "unwedge"));
  LK_RETURN_IF_ERROR(FromRocks(impl_->db->FlushWAL(true), "sync WAL"));
  std::lock_guard lock(impl_->state_mu);
  impl_->meta.stop_point = 0;
  impl_->meta.epoch = epoch;
  return Status::OK();
}

Status LedgerStore::Flush() {
  LK_RETURN_IF_ERROR(impl_->CheckWritable());
  rocksdb::FlushOptions fo;
  fo.wait = true;
  LK_RETURN_IF_ERROR(FromRocks(impl_->db->Flush(fo, impl_->handles), "flush"));
  return FromRocks(impl_->db->FlushWAL(true), "sync WAL");
}

Result<CheckpointInfo> LedgerStore::CreateCheckpoint(const std::string& dir) {
  LK_RETURN_IF_ERROR(impl_->CheckWritable());
  if (dir.empty()) return Status::InvalidArgument("checkpoint path is empty");
  std::error_code ec;
  if (fs::exists(dir, ec)) return Status::AlreadyExists("checkpoint path already exists: " + dir);
  const fs::path parent = fs::path(dir).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec)) {
    return Status::NotFound("checkpoint parent directory does not exist: " + parent.string());
  }
  std::lock_guard wlock(impl_->write_mu);
  rocksdb::Checkpoint* raw_cp = nullptr;
  LK_RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(impl_->db, &raw_cp), "checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> cp(raw_cp);
  // log_size_for_flush = 0: always flush, so the checkpoint holds no WAL tail.
  LK_RETURN_IF_ERROR(FromRocks(cp->CreateCheckpoint(dir, 0), "create checkpoint at " + dir));
  const BlockIds ids = GetBlockIds();
  return CheckpointInfo{dir, ids.genesis, ids.last_reachable, ids.last};
}

Result<VerifyReport> LedgerStore::VerifyChain(uint64_t from, uint64_t to) const {
  const BlockIds ids = GetBlockIds();
  VerifyReport report;
  if (ids.last_reachable == 0) {
    if (from != 0 || to != 0) return Status::InvalidArgument("the ledger has no blocks");
    return report;
  }
  report.from = from == 0 ? ids.genesis : from;
  report.to = to == 0 ? ids.last_reachable : to;
  if (report.from < ids.genesis || report.to > ids.last_reachable || report.from > report.to) {
    return Status::InvalidArgument("range [" + std::to_string(report.from) + ", " + std::to_string(report.to) +
                                   "] is outside the chain [" + std::to_string(ids.genesis) + ", " +
                                   std::to_string(ids.last_reachable) + "]");
  }
  auto fail = [&](uint64_t id, std::string why) {
    report.first_bad_block = id;
    report.error = "block " + std::to_string(id) + ": " + std::move(why);
    return report;
  };
  std::optional<Digest> expected_parent;
  if (report.from == kGenesisBlockId) {
    expected_parent = Digest{};
  } else if (report.from > ids.genesis) {
    auto prev = GetRawBlock(report.from - 1);
    if (!prev.ok()) return fail(report.from - 1, prev.status().ToString());
    expected_parent = ComputeBlockDigest(report.from - 1, *prev);
  }
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  ro.fill_cache = false;
  ro.readahead_size = 2 << 20;
  const std::string upper = EncodeBlockKey(report.to + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->blocks));
  uint64_t expected = report.from;
  for (it->Seek(EncodeBlockKey(report.from)); it->Valid(); it->Next()) {
    auto id = DecodeBlockKey(std::string_view(it->key().data(), it->key().size()));
    if (!id.ok()) return fail(expected, "undecodable key: " + id.status().message());
    if (*id != expected) return fail(expected, "missing (next present block is " + std::to_string(*id) + ")");
    const std::string_view raw(it->value().data(), it->value().size());
    auto block = ParseBlock(raw);
    if (!block.ok()) return fail(expected, block.status().message());
    if (block->id != expected) return fail(expected, "header names block " + std::to_string(block->id));
    if (expected_parent && block->parent_digest != *expected_parent) {
      // Either block N-1's content or block N's parent field changed. If
      // block N+1 still links to N, N is intact and N-1 is the bad one.
      const Digest own = ComputeBlockDigest(expected, raw);
      auto child = GetRawBlock(expected + 1);
      auto child_header = child.ok() ? ParseBlockHeader(*child) : Result<Block>(child.status());
      if (expected > report.from && child_header.ok() && child_header->parent_digest == own) {
        --report.blocks_verified;
        return fail(expected - 1, "content does not match the digest recorded in block " + std::to_string(expected) +
                                      " (recomputed " + DigestToHex(*expected_parent) + ", recorded " +
                                      DigestToHex(block->parent_digest) + ")");
      }
      return fail(expected, "parent digest " + DigestToHex(block->parent_digest) + " does not match digest " +
                                DigestToHex(*expected_parent) + " of block " + std::to_string(expected - 1));
    }
    expected_parent = ComputeBlockDigest(expected, raw);
    ++report.blocks_verified;
    ++expected;
  }
  if (!it->status().ok()) return fail(expected, "unreadable: " + it->status().ToString());
  if (expected != report.to + 1) return fail(expected, "missing");
  return report;
}

Result<CompareReport> LedgerStore::CompareTo(const LedgerStore& other) const {
  const BlockIds a = GetBlockIds();
  const BlockIds b = other.GetBlockIds();
  CompareReport report;
  report.from = std::max(a.genesis, b.genesis);
  report.to = std::min(a.last_reachable, b.last_reachable);
  if (a.last_reachable == 0 || b.last_reachable == 0 || report.from > report.to) {
    report.from = 1;
    report.to = 0;
    return report;
  }
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  ro.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> ia(impl_->db->NewIterator(ro, impl_->blocks));
  std::unique_ptr<rocksdb::Iterator> ib(other.impl_->db->NewIterator(ro, other.impl_->blocks));
  const std::string start = EncodeBlockKey(report.from);
  ia->Seek(start);
  ib->Seek(start);
  for (uint64_t id = report.from; id <= report.to; ++id, ia->Next(), ib->Next()) {
    const std::string key = EncodeBlockKey(id);
    for (auto* it : {ia.get(), ib.get()}) {
      if (!it->Valid()) {
        LK_RETURN_IF_ERROR(FromRocks(it->status(), "block " + std::to_string(id)));
      }
    }
    if (!ia->Valid() || !ib->Valid() || ia->key() != key || ib->key() != key || ia->value() != ib->value()) {
      report.first_mismatch = id;
      return report;
    }
  }
  return report;
}

Result<RangeStats> LedgerStore::GetRangeStats(uint64_t from, uint64_t to) const {
  if (from > to) return Status::InvalidArgument("range start " + std::to_string(from) + " is above its end");
  RangeStats stats;
  stats.from = from;
  stats.to = to;
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  const std::string upper = to == UINT64_MAX ? std::string() : EncodeBlockKey(to + 1);
  rocksdb::Slice upper_slice(upper);
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->blocks));
  std::unordered_set<std::string> keys;
  for (it->Seek(EncodeBlockKey(from)); it->Valid(); it->Next()) {
    const std::string_view raw(it->value().data(), it->value().size());
    auto block = ParseBlock(raw);
    if (!block.ok()) return block.status().WithContext("block " + std::to_string(from + stats.blocks));
    stats.min_block_bytes =
        stats.blocks == 0 ? raw.size() : std::min<uint64_t>(stats.min_block_bytes, raw.size());
    stats.max_block_bytes = std::max<uint64_t>(stats.max_block_bytes, raw.size());
    ++stats.blocks;
    stats.bytes += raw.size();
    stats.updates += block->updates.size();
    for (const auto& kv : block->updates) keys.insert(kv.key);
  }
  LK_RETURN_IF_ERROR(FromRocks(it->status(), "scan blocks"));
  stats.distinct_keys = keys.size();
  return stats;
}

std::vector<std::string> LedgerStore::ColumnFamilyNames() const {
  std::vector<std::string> names;
  for (auto* h : impl_->handles) names.push_back(h->GetName());
  return names;
}

Status VerifySstFile(const std::string& path) {
  rocksdb::Options options;
  options.info_log = std::make_shared<NullLogger>();
  rocksdb::ReadOptions read;
  read.verify_checksums = true;
  read.fill_cache = false;
  rocksdb::Status s = rocksdb::VerifySstFileChecksum(options, rocksdb::EnvOptions(options), read, path);
  if (!s.ok() && !s.IsNotFound() && !s.IsIOError()) {
    return Status::Corruption("SST file " + path + " fails its RocksDB checksums: " + s.ToString());
  }
  return FromRocks(s, "verify SST file " + path);
}

}  // namespace ledgerkeep::ledger
