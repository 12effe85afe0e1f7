// LedgerStore::BulkLoad: a chain written as SST files and ingested in one
// step, so a large ledger is built at disk speed instead of the production
// rate (no WAL, no memtable, no compaction).
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ledger/ledger_store.h"
#include "ledger/ledger_store_impl.h"

namespace ledgerkeep::ledger {

using namespace store_internal;  // NOLINT: the store's own internals
namespace fs = std::filesystem;

namespace {

// A new SST file every this many bytes, so no single file is huge.
constexpr uint64_t kMaxSstFileBytes = 256ULL << 20;
constexpr uint64_t kProgressEvery = 4096;
constexpr char kStagingDir[] = "bulk-load.tmp";

// Sorted puts into a sequence of SST files for one column family.
class SstSequence {
 public:
  SstSequence(rocksdb::ColumnFamilyHandle* cf, rocksdb::Options options, std::string dir, std::string prefix)
      : cf_(cf), options_(std::move(options)), dir_(std::move(dir)), prefix_(std::move(prefix)) {}

  Status Put(std::string_view key, std::string_view value) {
    if (!writer_) LK_RETURN_IF_ERROR(OpenNext());
    LK_RETURN_IF_ERROR(FromRocks(writer_->Put(ToSlice(key), ToSlice(value)), "write " + files_.back()));
    bytes_ += key.size() + value.size();
    if (bytes_ >= kMaxSstFileBytes) return Close();
    return Status::OK();
  }
  Status Close() {
    if (!writer_) return Status::OK();
    Status s = FromRocks(writer_->Finish(), "finish " + files_.back());
    writer_.reset();
    bytes_ = 0;
    return s;
  }
  rocksdb::IngestExternalFileArg Arg() const {
    rocksdb::IngestExternalFileArg arg;
    arg.column_family = cf_;
    arg.external_files = files_;
    arg.options.move_files = true;  // hard links: the staging dir is inside the DB's directory
    arg.options.snapshot_consistency = false;
    return arg;
  }

 private:
  Status OpenNext() {
    files_.push_back(dir_ + "/" + prefix_ + "-" + std::to_string(files_.size()) + ".sst");
    writer_ = std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(options_), options_, cf_);
    return FromRocks(writer_->Open(files_.back()), "create " + files_.back());
  }

  rocksdb::ColumnFamilyHandle* cf_;
  rocksdb::Options options_;
  std::string dir_;
  std::string prefix_;
  std::unique_ptr<rocksdb::SstFileWriter> writer_;
  uint64_t bytes_ = 0;
  std::vector<std::string> files_;
};

rocksdb::Options OptionsOf(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf) {
  return rocksdb::Options(db->GetDBOptions(), db->GetOptions(cf));
}

}  // namespace

Result<uint64_t> LedgerStore::BulkLoad(uint64_t count, const std::function<void(uint64_t)>& progress) {
  LK_RETURN_IF_ERROR(impl_->CheckWritable());
  if (count == 0) return Status::InvalidArgument("bulk load of 0 blocks");
  if (impl_->index == nullptr)
    return Status::FailedPrecondition("ledger " + impl_->path + " has no key index");
  std::lock_guard wlock(impl_->write_mu);
  LedgerMeta meta;
  {
    std::lock_guard lock(impl_->state_mu);
    if (impl_->ids.last != 0 || impl_->meta.stop_point != 0) {
      return Status::FailedPrecondition("bulk load needs an empty ledger: " + impl_->path +
                                        " holds blocks up to " + std::to_string(impl_->ids.last));
    }
    meta = impl_->meta;
  }
  const std::string staging = impl_->path + "/" + kStagingDir;
  std::error_code ec;
  fs::remove_all(staging, ec);  // an interrupted earlier load's files
  if (!fs::create_directory(staging, ec)) {
    return Status::IOError("cannot create " + staging + ": " + (ec ? ec.message() : "already exists"));
  }
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  } cleanup{staging};

  rocksdb::DB* db = impl_->db;
  SstSequence blocks(impl_->blocks, OptionsOf(db, impl_->blocks), staging, "blocks");
  SstSequence index(impl_->index, OptionsOf(db, impl_->index), staging, "kv_index");

  // Block keys ascend with the id; index keys sort by (key, id), so they are
  // collected and sorted (tens of bytes per update).
  std::vector<std::string> index_keys;
  index_keys.reserve(count * 2);
  Digest parent{};
  uint64_t bytes = 0;
  for (BlockId id = kGenesisBlockId; id <= count; ++id) {
    const Block block = GenerateBlock(meta.params, id, parent);
    const std::string raw = SerializeBlock(block);
    LK_RETURN_IF_ERROR(blocks.Put(EncodeBlockKey(id), raw));
    for (const auto& kv : block.updates) index_keys.push_back(IndexKey(kv.key, id));
    parent = ComputeBlockDigest(id, raw);
    bytes += raw.size();
    if (progress && id % kProgressEvery == 0) progress(id);
  }
  LK_RETURN_IF_ERROR(blocks.Close());
  std::sort(index_keys.begin(), index_keys.end());
  for (const auto& key : index_keys) LK_RETURN_IF_ERROR(index.Put(key, ""));
  LK_RETURN_IF_ERROR(index.Close());
  index_keys = {};

  // One atomic ingestion into the empty column families, so every file goes
  // to the bottom level with sequence number 0: a file RocksDB had to give a
  // global sequence number fails a standalone checksum check (VerifySstFile,
  // which backups run). That is why meta is an ordinary write, after it.
  LK_RETURN_IF_ERROR(FromRocks(db->IngestExternalFiles({blocks.Arg(), index.Arg()}),
                               "ingest the generated chain into " + impl_->path));
  // The clock continues from the chain's top once a replica starts it (no
  // epoch_base_time_ms until then).
  rocksdb::WriteBatch meta_batch;
  LK_RETURN_IF_ERROR(FromRocks(meta_batch.Put(impl_->meta_cf, kMetaEpochBlock, U64(count)), "batch"));
  LK_RETURN_IF_ERROR(FromRocks(meta_batch.Delete(impl_->meta_cf, kMetaEpochTime), "batch"));
  LK_RETURN_IF_ERROR(FromRocks(meta_batch.Put(impl_->meta_cf, kMetaFastPaths, U64(count)), "batch"));
  LK_RETURN_IF_ERROR(impl_->Write(meta_batch, "write the generated chain's meta"));
  LK_RETURN_IF_ERROR(FromRocks(db->FlushWAL(true), "sync WAL"));
  if (progress) progress(count);

  std::lock_guard lock(impl_->state_mu);
  impl_->ids = BlockIds{kGenesisBlockId, count, 0, count};
  impl_->st_first = 0;
  impl_->last_digest = parent;
  impl_->meta.fast_paths = count;
  impl_->meta.epoch = ClusterEpoch{count, 0};
  impl_->clock_started = false;
  return bytes;
}

}  // namespace ledgerkeep::ledger
