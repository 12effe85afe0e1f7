// Test-only direct edits of a closed ledger DB through RocksDB (fault injection).
#pragma once

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <string>
#include <vector>

#include "ledger/block.h"

namespace ledgerkeep::ledger::testing {

// Flips one bit of byte `offset` of block `id`'s stored value.
inline void FlipByteInBlock(const std::string& db_path, uint64_t id, size_t offset) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), db_path, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), db_path, descs, &handles, &db).ok());
  rocksdb::ColumnFamilyHandle* blocks = nullptr;
  for (auto* h : handles) {
    if (h->GetName() == "blocks") blocks = h;
  }
  ASSERT_NE(blocks, nullptr);
  std::string value;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), blocks, EncodeBlockKey(id), &value).ok());
  ASSERT_LT(offset, value.size());
  value[offset] ^= 0x01;
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), blocks, EncodeBlockKey(id), value).ok());
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  ASSERT_TRUE(db->Close().ok());
  delete db;
}

}  // namespace ledgerkeep::ledger::testing
