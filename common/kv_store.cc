#include "common/kv_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <filesystem>
#include <mutex>

namespace ledgerkeep {
namespace {

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsNoSpace()) return Status::NoSpace(msg);
  if (s.IsBusy() || s.IsTryAgain()) return Status::Busy(msg);
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return Status::Busy(std::string(what) + ": the database is locked by another process (" + s.ToString() +
                        ")");
  }
  if (s.IsIOError()) return Status::IOError(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  return Status::Internal(msg);
}

rocksdb::Slice ToSlice(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

struct KvStore::Rep {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  ~Rep() {
    if (db) {
      for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
      db->Close().PermitUncheckedError();
    }
  }
};

// Operations are recorded and bound to column family handles at Write time,
// so a Batch is a plain value not tied to one open store.
struct KvStore::Batch::Rep {
  enum Kind { kPut, kDelete, kDeleteRange };
  struct Op {
    Kind kind;
    int cf;
    std::string a;
    std::string b;
  };
  std::vector<Op> ops;
};

KvStore::Batch::Batch() : rep_(std::make_unique<Rep>()) {}
KvStore::Batch::~Batch() = default;
KvStore::Batch::Batch(Batch&&) noexcept = default;
KvStore::Batch& KvStore::Batch::operator=(Batch&&) noexcept = default;
size_t KvStore::Batch::Count() const { return rep_->ops.size(); }
void KvStore::Batch::Clear() { rep_->ops.clear(); }

void KvStore::Batch::Put(int cf, std::string_view key, std::string_view value) {
  rep_->ops.push_back({Rep::kPut, cf, std::string(key), std::string(value)});
}

void KvStore::Batch::Delete(int cf, std::string_view key) {
  rep_->ops.push_back({Rep::kDelete, cf, std::string(key), {}});
}

void KvStore::Batch::DeleteRange(int cf, std::string_view begin, std::string_view end) {
  rep_->ops.push_back({Rep::kDeleteRange, cf, std::string(begin), std::string(end)});
}

KvStore::KvStore(std::string path, std::unique_ptr<Rep> rep) : path_(std::move(path)), rep_(std::move(rep)) {}
KvStore::~KvStore() = default;

Result<std::unique_ptr<KvStore>> KvStore::Open(const std::string& path,
                                               const std::vector<std::string>& column_families) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status::FromErrno(ec.value(), "create state directory " + path);

  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.max_open_files = 256;
  options.keep_log_file_num = 3;
  options.max_log_file_size = 4 << 20;
  options.write_buffer_size = 8 << 20;
  options.IncreaseParallelism(2);
  // Flushes and compactions run at low CPU priority: the WAL is synced
  // before anything is acknowledged, so when a memtable reaches its SST
  // matters less than the latency of the bus running on the same cores.
  static std::once_flag lowered;
  std::call_once(lowered, [&] {
    for (auto pool : {rocksdb::Env::Priority::HIGH, rocksdb::Env::Priority::LOW}) {
      options.env->LowerThreadPoolCPUPriority(pool, rocksdb::CpuPriority::kLow).PermitUncheckedError();
    }
  });

  // Existing column families must all be opened; ids must match the list
  // order, which holds when the list only ever grows at the end.
  std::vector<std::string> existing;
  auto ls = rocksdb::DB::ListColumnFamilies(options, path, &existing);
  std::vector<std::string> names = {rocksdb::kDefaultColumnFamilyName};
  for (const auto& cf : column_families) names.push_back(cf);
  if (ls.ok()) {
    for (size_t i = 0; i < existing.size(); ++i) {
      if (i >= names.size() || existing[i] != names[i]) {
        return Status::Corruption("state store " + path + " has column family '" + existing[i] + "' where '" +
                                  (i < names.size() ? names[i] : "") +
                                  "' was expected: is this directory another program's DB?");
      }
    }
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  // Open only what exists, then create the rest in order so ids == indexes.
  size_t open_count = ls.ok() ? existing.size() : 1;
  for (size_t i = 0; i < open_count; ++i) descs.emplace_back(names[i], rocksdb::ColumnFamilyOptions(options));
  auto rep = std::make_unique<Rep>();
  rocksdb::DB* raw = nullptr;
  options.create_missing_column_families = false;
  auto s = rocksdb::DB::Open(options, path, descs, &rep->handles, &raw);
  if (!s.ok()) return FromRocks(s, "open state store " + path);
  rep->db.reset(raw);
  for (size_t i = open_count; i < names.size(); ++i) {
    rocksdb::ColumnFamilyHandle* h = nullptr;
    s = rep->db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(options), names[i], &h);
    if (!s.ok()) return FromRocks(s, "create column family " + names[i] + " in " + path);
    rep->handles.push_back(h);
  }
  for (size_t i = 0; i < rep->handles.size(); ++i) {
    if (rep->handles[i]->GetID() != i) {
      return Status::Corruption("state store " + path + ": column family '" + names[i] + "' has id " +
                                std::to_string(rep->handles[i]->GetID()) + ", expected " + std::to_string(i));
    }
  }
  return std::unique_ptr<KvStore>(new KvStore(path, std::move(rep)));
}

Status KvStore::Write(Batch& batch, bool sync) {
  rocksdb::WriteBatch wb;
  for (const auto& op : batch.rep_->ops) {
    if (op.cf < 0 || static_cast<size_t>(op.cf) + 1 >= rep_->handles.size()) {
      return Status::Internal("write to " + path_ + ": bad column family index " + std::to_string(op.cf));
    }
    auto* h = rep_->handles[static_cast<size_t>(op.cf) + 1];
    rocksdb::Status s;
    switch (op.kind) {
      case Batch::Rep::kPut:
        s = wb.Put(h, op.a, op.b);
        break;
      case Batch::Rep::kDelete:
        s = wb.Delete(h, op.a);
        break;
      case Batch::Rep::kDeleteRange:
        s = wb.DeleteRange(h, op.a, op.b);
        break;
    }
    if (!s.ok()) return FromRocks(s, "write to " + path_);
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  return FromRocks(rep_->db->Write(wo, &wb), "write to " + path_);
}

Status KvStore::Put(int cf, std::string_view key, std::string_view value, bool sync) {
  Batch b;
  b.Put(cf, key, value);
  return Write(b, sync);
}

Status KvStore::Delete(int cf, std::string_view key, bool sync) {
  Batch b;
  b.Delete(cf, key);
  return Write(b, sync);
}

Result<std::optional<std::string>> KvStore::Get(int cf, std::string_view key) const {
  std::string value;
  auto s = rep_->db->Get(rocksdb::ReadOptions(), rep_->handles.at(static_cast<size_t>(cf) + 1), ToSlice(key),
                         &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, "read from " + path_);
  return std::optional<std::string>(std::move(value));
}

Status KvStore::Scan(int cf, std::string_view start, std::string_view end,
                     const std::function<bool(std::string_view, std::string_view)>& fn) const {
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper = ToSlice(end);
  if (!end.empty()) ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(ro, rep_->handles.at(static_cast<size_t>(cf) + 1)));
  for (it->Seek(ToSlice(start)); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    if (!fn({k.data(), k.size()}, {v.data(), v.size()})) break;
  }
  return FromRocks(it->status(), "scan " + path_);
}

Status KvStore::ScanBackward(int cf, std::string_view start, std::string_view end,
                             const std::function<bool(std::string_view, std::string_view)>& fn) const {
  rocksdb::ReadOptions ro;
  rocksdb::Slice lower = ToSlice(start);
  if (!start.empty()) ro.iterate_lower_bound = &lower;
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(ro, rep_->handles.at(static_cast<size_t>(cf) + 1)));
  if (end.empty()) {
    it->SeekToLast();
  } else {
    it->SeekForPrev(ToSlice(end));  // the last key <= end; end itself is excluded
    if (it->Valid() && it->key() == ToSlice(end)) it->Prev();
  }
  for (; it->Valid(); it->Prev()) {
    auto k = it->key();
    auto v = it->value();
    if (!fn({k.data(), k.size()}, {v.data(), v.size()})) break;
  }
  return FromRocks(it->status(), "scan " + path_);
}

Result<std::optional<std::string>> KvStore::LastKey(int cf) const {
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(rocksdb::ReadOptions(), rep_->handles.at(static_cast<size_t>(cf) + 1)));
  it->SeekToLast();
  if (!it->status().ok()) return FromRocks(it->status(), "scan " + path_);
  if (!it->Valid()) return std::optional<std::string>();
  return std::optional<std::string>(it->key().ToString());
}

Result<std::optional<std::string>> KvStore::FirstKey(int cf) const {
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(rocksdb::ReadOptions(), rep_->handles.at(static_cast<size_t>(cf) + 1)));
  it->SeekToFirst();
  if (!it->status().ok()) return FromRocks(it->status(), "scan " + path_);
  if (!it->Valid()) return std::optional<std::string>();
  return std::optional<std::string>(it->key().ToString());
}

}  // namespace ledgerkeep
