#include "ledger/ledger_store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>

#include "ledger/state_transfer.h"
#include "tests/ledger/ledger_test_util.h"
#include "tests/ledger/rocksdb_edit.h"

namespace ledgerkeep::ledger {
namespace {

using testing::FlipByteInBlock;
using testing::TempDir;

constexpr ChainParams kParams{4242, 512, 50};

std::unique_ptr<LedgerStore> CreateStore(const std::string& path, ChainParams params = kParams) {
  StoreOptions options;
  options.create_if_missing = true;
  options.params = params;
  options.write_buffer_size = 64 << 10;  // tiny memtables: many SSTs
  auto store = LedgerStore::Open(path, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

void Produce(LedgerStore& store, uint64_t count) {
  const ChainParams params = store.GetMeta().params;
  for (uint64_t i = 0; i < count; ++i) {
    const Block block = GenerateBlock(params, store.GetBlockIds().last_reachable + 1, store.LastReachableDigest());
    ASSERT_TRUE(store.AppendBlock(block, false).ok());
  }
}

// Regression: ledgerd's RocksDB info LOG had no size limit (one reached
// 263 MB); it now rolls over and keeps three old files.
TEST(LedgerStoreTest, TheInfoLogRollsOverAndKeepsThreeOldFiles) {
  TempDir dir;
  StoreOptions options;
  options.create_if_missing = true;
  options.params = kParams;
  options.write_buffer_size = 64 << 10;
  options.info_log_max_bytes = 16 << 10;
  auto store = LedgerStore::Open(dir / "db", options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (int round = 0; round < 40; ++round) {  // every flush and compaction writes to the LOG
    Produce(**store, 50);
    ASSERT_TRUE((*store)->Flush().ok());
  }
  uint64_t log_bytes = 0;
  int old_logs = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "db")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("LOG", 0) != 0) continue;
    log_bytes += e.file_size();
    old_logs += name.rfind("LOG.old", 0) == 0 ? 1 : 0;
  }
  EXPECT_GT(old_logs, 0) << "the LOG never rolled over";
  EXPECT_LE(old_logs, 3);
  EXPECT_LT(log_bytes, 4u * (64u << 10)) << "the info logs are not bounded";
}

TEST(LedgerStoreTest, TwoDatabasesWithTheSameSeedHoldByteIdenticalChains) {
  TempDir dir;
  auto a = CreateStore(dir / "a");
  auto b = CreateStore(dir / "b");
  auto other_seed = CreateStore(dir / "c", ChainParams{4243, 512, 50});
  ASSERT_TRUE(a && b && other_seed);
  Produce(*a, 300);
  Produce(*b, 250);
  Produce(*other_seed, 10);
  for (uint64_t id : {1u, 2u, 150u, 250u}) {
    EXPECT_EQ(*a->GetRawBlock(id), *b->GetRawBlock(id)) << id;
    EXPECT_EQ(a->GetBlockInfo(id, false)->digest_hex, b->GetBlockInfo(id, false)->digest_hex);
  }
  auto cmp = a->CompareTo(*b);
  ASSERT_TRUE(cmp.ok());
  EXPECT_EQ(cmp->from, 1u);
  EXPECT_EQ(cmp->to, 250u);
  EXPECT_FALSE(cmp->first_mismatch.has_value());
  auto diff = a->CompareTo(*other_seed);
  ASSERT_TRUE(diff.ok());
  EXPECT_EQ(diff->first_mismatch, std::optional<uint64_t>(1));
}

TEST(LedgerStoreTest, BlockIdsAndKeyLookupsAtABlock) {
  TempDir dir;
  auto store = CreateStore(dir / "db");
  ASSERT_TRUE(store);
  EXPECT_EQ(store->GetBlockIds(), BlockIds{});
  Produce(*store, 120);
  EXPECT_EQ(store->GetBlockIds(), (BlockIds{1, 120, 0, 120}));
  // keyspace 50: key-7 is written by blocks 7, 57, 107.
  auto at_100 = store->GetValue("key-7", 100);
  ASSERT_TRUE(at_100.ok()) << at_100.status().ToString();
  EXPECT_EQ(at_100->block_id, 57u);
  EXPECT_EQ(at_100->value, GenerateBlock(kParams, 57, Digest{}).updates[0].value);
  EXPECT_EQ(store->GetValue("key-7", 0)->block_id, 107u);
  EXPECT_EQ(store->GetValue("time", 0)->value, "120");
  EXPECT_EQ(store->GetValue("key-7", 6).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->GetValue("nope", 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store->GetValue("time", 121).status().code(), StatusCode::kInvalidArgument);
}

TEST(LedgerStoreTest, AppendRefusesBlocksThatDoNotExtendTheChain) {
  TempDir dir;
  auto store = CreateStore(dir / "db");
  ASSERT_TRUE(store);
  Produce(*store, 3);
  EXPECT_EQ(store->AppendBlock(GenerateBlock(kParams, 5, store->LastReachableDigest()), false).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store->AppendBlock(GenerateBlock(kParams, 4, Digest{}), false).code(), StatusCode::kInvalidArgument);
}

TEST(LedgerStoreTest, VerifyChainPassesOnAProducedChain) {
  TempDir dir;
  auto store = CreateStore(dir / "db");
  ASSERT_TRUE(store);
  Produce(*store, 400);
  auto report = store->VerifyChain(0, 0);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << report->error;
  EXPECT_EQ(report->blocks_verified, 400u);
  auto partial = store->VerifyChain(100, 200);
  ASSERT_TRUE(partial.ok());
  EXPECT_TRUE(partial->ok());
  EXPECT_EQ(partial->blocks_verified, 101u);
  EXPECT_FALSE(store->VerifyChain(10, 401).ok());
}

TEST(LedgerStoreTest, FlippedByteInABlockValueIsNamedByVerifyChain) {
  TempDir dir;
  {
    auto store = CreateStore(dir / "db");
    ASSERT_TRUE(store);
    Produce(*store, 200);
  }
  std::filesystem::copy(dir / "db", dir / "payload", std::filesystem::copy_options::recursive);
  std::filesystem::copy(dir / "db", dir / "parent", std::filesystem::copy_options::recursive);
  FlipByteInBlock(dir / "payload", 123, 200);  // inside the payload
  FlipByteInBlock(dir / "parent", 77, 5);      // inside the parent digest

  auto payload = LedgerStore::OpenReadOnly(dir / "payload");
  ASSERT_TRUE(payload.ok());
  auto r1 = (*payload)->VerifyChain(0, 0);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->first_bad_block, std::optional<uint64_t>(123));
  EXPECT_NE(r1->error.find("block 123"), std::string::npos) << r1->error;

  auto parent = LedgerStore::OpenReadOnly(dir / "parent");
  ASSERT_TRUE(parent.ok());
  auto r2 = (*parent)->VerifyChain(0, 0);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->first_bad_block, std::optional<uint64_t>(77));
  EXPECT_NE(r2->error.find("parent digest"), std::string::npos) << r2->error;

  auto original = LedgerStore::OpenReadOnly(dir / "db");
  ASSERT_TRUE(original.ok());
  EXPECT_EQ((*original)->CompareTo(**payload)->first_mismatch, std::optional<uint64_t>(123));
}

TEST(LedgerStoreTest, StateTransferBlocksAreFetchedTopDownThenLinked) {
  TempDir dir;
  auto store = CreateStore(dir / "db");
  ASSERT_TRUE(store);
  Produce(*store, 50);
  ChainSource source(kParams);
  source.Reset(50, store->LastReachableDigest());
  ASSERT_EQ(source.PrepareUpTo(100, 1000), 50u);  // digests of blocks 51..100
  ASSERT_EQ(source.prepared_top(), 100u);
  for (uint64_t top = 100; top > 50; top -= 10) {
    std::vector<Block> batch;
    for (uint64_t id = top; id > top - 10; --id) batch.push_back(source.Fetch(id));
    ASSERT_TRUE(store->AddStateTransferBlocks(batch).ok());
    EXPECT_EQ(store->GetBlockIds(), (BlockIds{1, 50, 100, 100}));
    EXPECT_EQ(store->FirstStateTransferBlockId(), top - 9);
  }
  // Out of order: not directly below the st_chain bottom.
  EXPECT_FALSE(store->AddStateTransferBlocks({source.Fetch(100)}).ok());
  auto linked = store->LinkStateTransferBlocks(30);
  ASSERT_TRUE(linked.ok()) << linked.status().ToString();
  EXPECT_EQ(*linked, 30u);
  EXPECT_EQ(store->GetBlockIds(), (BlockIds{1, 80, 100, 100}));
  ASSERT_EQ(*store->LinkStateTransferBlocks(1000), 20u);
  EXPECT_EQ(store->GetBlockIds(), (BlockIds{1, 100, 0, 100}));
  auto report = store->VerifyChain(0, 0);
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok()) << report->error;
}

TEST(LedgerStoreTest, StateTransferBlockThatDoesNotLinkIsRefused) {
  TempDir dir;
  auto store = CreateStore(dir / "db");
  ASSERT_TRUE(store);
  Produce(*store, 10);
  Block forged = GenerateBlock(kParams, 11, Digest{});  // wrong parent
  ASSERT_TRUE(store->AddStateTransferBlocks({forged}).ok());
  auto linked = store->LinkStateTransferBlocks(10);
  EXPECT_EQ(linked.status().code(), StatusCode::kCorruption);
  EXPECT_EQ(store->GetBlockIds().last_reachable, 10u);
  ASSERT_TRUE(store->DropStateTransferBlocksAbove(0).ok());
  EXPECT_EQ(store->GetBlockIds(), (BlockIds{1, 10, 0, 10}));
}

TEST(LedgerStoreTest, CheckpointHoldsExactlyTheReportedBlocks) {
  TempDir dir;
  auto store = CreateStore(dir / "db");
  ASSERT_TRUE(store);
  Produce(*store, 180);
  auto info = store->CreateCheckpoint(dir / "cp");
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->last_reachable, 180u);
  EXPECT_EQ(store->CreateCheckpoint(dir / "cp").status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store->CreateCheckpoint(dir / "missing/cp").status().code(), StatusCode::kNotFound);
  Produce(*store, 5);
  auto cp = LedgerStore::OpenReadOnly(dir / "cp");
  ASSERT_TRUE(cp.ok()) << cp.status().ToString();
  EXPECT_EQ((*cp)->GetBlockIds(), (BlockIds{1, 180, 0, 180}));
  EXPECT_TRUE((*cp)->VerifyChain(0, 0)->ok());
}

TEST(LedgerStoreTest, MetaSurvivesReopen) {
  TempDir dir;
  {
    StoreOptions options;
    options.create_if_missing = true;
    options.params = kParams;
    options.epoch = {0, 1000};
    auto store = LedgerStore::Open(dir / "db", options);
    ASSERT_TRUE(store.ok());
    Produce(**store, 7);
    ASSERT_TRUE((*store)->SetStopPoint(150).ok());
  }
  StoreOptions options;
  options.params = ChainParams{1, 2, 3};  // ignored: the DB exists
  auto store = LedgerStore::Open(dir / "db", options);
  ASSERT_TRUE(store.ok());
  const LedgerMeta meta = (*store)->GetMeta();
  EXPECT_EQ(meta.params, kParams);
  EXPECT_EQ(meta.epoch, (ClusterEpoch{0, 1000}));
  EXPECT_EQ(meta.stop_point, 150u);
  EXPECT_EQ(meta.fast_paths, 7u);
  ASSERT_TRUE((*store)->ResumeFromStopPoint({150, 2000}).ok());
  EXPECT_EQ((*store)->GetMeta().stop_point, 0u);
}

TEST(LedgerStoreTest, ReadOnlyOpenRefusesWritesAndLeavesTheDirectoryUntouched) {
  TempDir dir;
  {
    auto store = CreateStore(dir / "db");
    ASSERT_TRUE(store);
    Produce(*store, 20);
  }
  std::vector<std::string> before;
  for (const auto& e : std::filesystem::directory_iterator(dir / "db")) before.push_back(e.path().filename());
  {
    auto store = LedgerStore::OpenReadOnly(dir / "db");
    ASSERT_TRUE(store.ok());
    EXPECT_EQ((*store)->SetStopPoint(150).code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ((*store)->CreateCheckpoint(dir / "cp").status().code(), StatusCode::kFailedPrecondition);
    EXPECT_EQ((*store)->GetBlockIds().last_reachable, 20u);
  }
  std::vector<std::string> after;
  for (const auto& e : std::filesystem::directory_iterator(dir / "db")) after.push_back(e.path().filename());
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  EXPECT_EQ(before, after);
}

TEST(LedgerStoreTest, MissingAndForeignDirectoriesAreNotLedgers) {
  TempDir dir;
  EXPECT_EQ(LedgerStore::OpenReadOnly(dir / "missing").status().code(), StatusCode::kNotFound);
  std::filesystem::create_directory(dir / "empty");
  auto empty = LedgerStore::OpenReadOnly(dir / "empty");
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("not a ledgerkeep ledger"), std::string::npos);
  {
    rocksdb::DB* db = nullptr;
    rocksdb::Options o;
    o.create_if_missing = true;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir / "plain", &db).ok());
    delete db;
  }
  auto plain = LedgerStore::OpenReadOnly(dir / "plain");
  EXPECT_EQ(plain.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(plain.status().message().find("has no 'blocks' column family"), std::string::npos)
      << plain.status().message();
}

}  // namespace
}  // namespace ledgerkeep::ledger
