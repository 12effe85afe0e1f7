// Bulk-generated chains (LedgerStore::BulkLoad, `ledgerkeep-db DIR
// generate`): a benchmark's large DB built before its replica starts.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ledger/db_tool_generate.h"
#include "ledger/ledger_node.h"
#include "ledger/ledger_store.h"
#include "tests/ledger/ledger_test_util.h"

namespace ledgerkeep::ledger {
namespace {

using nlohmann::json;
using testing::RunDbTool;
using testing::TempDir;
using testing::WaitUntil;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr ChainParams kParams{77, 512, 40};

std::unique_ptr<LedgerStore> OpenNew(const std::string& path, ClusterEpoch epoch = {}) {
  StoreOptions o;
  o.create_if_missing = true;
  o.params = kParams;
  o.epoch = epoch;
  o.write_buffer_size = 256 << 10;
  auto store = LedgerStore::Open(path, o);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

TEST(ChainGeneratorTest, GeneratedChainVerifiesAndEqualsTheProducedChain) {
  TempDir dir;
  auto produced = OpenNew(dir / "produced");
  ASSERT_TRUE(produced);
  for (BlockId id = 1; id <= 500; ++id) {
    ASSERT_TRUE(
        produced->AppendBlock(GenerateBlock(kParams, id, produced->LastReachableDigest()), false).ok());
  }
  auto generated = OpenNew(dir / "generated");
  ASSERT_TRUE(generated);
  uint64_t last_progress = 0;
  auto bytes = generated->BulkLoad(500, [&](uint64_t done) { last_progress = done; });
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_EQ(last_progress, 500u);
  EXPECT_GT(*bytes, 500u * kParams.payload_bytes);

  EXPECT_EQ(generated->GetBlockIds(), (BlockIds{1, 500, 0, 500}));
  EXPECT_EQ(generated->LastReachableDigest(), produced->LastReachableDigest());
  EXPECT_EQ(generated->GetMeta().fast_paths, 500u);
  auto verify = generated->VerifyChain(0, 0);
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->ok()) << verify->error;
  EXPECT_EQ(verify->blocks_verified, 500u);
  auto cmp = generated->CompareTo(*produced);
  ASSERT_TRUE(cmp.ok());
  EXPECT_FALSE(cmp->first_mismatch.has_value()) << *cmp->first_mismatch;
  EXPECT_EQ(cmp->to, 500u);
  // The key index came along: lookups at a block work as on a produced chain.
  auto value = generated->GetValue("key-3", 100);
  ASSERT_TRUE(value.ok()) << value.status().ToString();
  EXPECT_EQ(value->block_id, 83u);
  EXPECT_EQ(value->value, produced->GetValue("key-3", 100)->value);
  EXPECT_FALSE(fs::exists(dir / "generated/bulk-load.tmp"));  // staging removed

  // Reopened, the chain and the index are there; the clock starts at the
  // open's epoch time and continues from the chain's top.
  generated.reset();
  auto reopened = OpenNew(dir / "generated", ClusterEpoch{0, 123456});
  ASSERT_TRUE(reopened);
  EXPECT_EQ(reopened->GetBlockIds().last_reachable, 500u);
  EXPECT_EQ(reopened->GetMeta().epoch, (ClusterEpoch{500, 123456}));
  EXPECT_EQ(reopened->GetValue("time", 0)->value, "500");
}

// A backup of a generated replica refused every run with "corrupted SST
// file": the meta SST got a global sequence number when ingested, which
// RocksDB's standalone checksum check (VerifySstFile) rejects.
TEST(ChainGeneratorTest, EverySstOfAGeneratedLedgerPassesTheBackupChecksumCheck) {
  TempDir dir;
  {
    auto store = OpenNew(dir / "db");
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->BulkLoad(400, nullptr).ok());
  }
  {
    auto started = OpenNew(dir / "db", ClusterEpoch{0, 1000});  // as ledgerd's first open
    ASSERT_TRUE(started);
    ASSERT_TRUE(started->Flush().ok());
  }
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir / "db")) {
    if (entry.path().extension() != ".sst") continue;
    ++files;
    const Status s = VerifySstFile(entry.path().string());
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  EXPECT_GE(files, 2);
}

TEST(ChainGeneratorTest, BulkLoadRefusesALedgerThatHoldsBlocksAndZeroBlocks) {
  TempDir dir;
  auto store = OpenNew(dir / "db");
  ASSERT_TRUE(store);
  EXPECT_EQ(store->BulkLoad(0, nullptr).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->AppendBlock(GenerateBlock(kParams, 1, Digest{}), false).ok());
  auto refused = store->BulkLoad(10, nullptr);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("needs an empty ledger"), std::string::npos)
      << refused.status().ToString();
  EXPECT_EQ(store->GetBlockIds().last, 1u);
}

TEST(ChainGeneratorTest, LedgerdContinuesAGeneratedChainOnTheClusterClock) {
  TempDir dir;
  {
    auto store = OpenNew(dir / "db");
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->BulkLoad(300, nullptr).ok());
  }
  std::atomic<int64_t> now{5000};
  LedgerNodeOptions o;
  o.db_path = dir / "db";
  o.params = kParams;
  o.genesis_time_ms = 5000;  // the cluster starts now: no backlog
  o.blocks_per_sec = 1000;
  o.write_buffer_size = 256 << 10;
  o.clock = [&] { return now.load(); };
  auto node = LedgerNode::Open(o);
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  ASSERT_TRUE((*node)->Start().ok());
  now = 5100;
  ASSERT_TRUE(WaitUntil([&] { return (*node)->GetStatus().last_reachable == 400; }, 20s))
      << (*node)->GetStatus().last_reachable;
  EXPECT_FALSE((*node)->GetStatus().state_transfer_active);  // produced, not transferred
  ASSERT_TRUE((*node)->Stop().ok());
  node->reset();
  auto store = LedgerStore::OpenReadOnly(dir / "db");
  ASSERT_TRUE(store.ok());
  auto verify = (*store)->VerifyChain(0, 0);
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->ok()) << verify->error;
  EXPECT_EQ(verify->blocks_verified, 400u);
}

class GenerateCommandTest : public ::testing::Test {
 protected:
  testing::CommandResult Generate(const std::string& db, std::vector<std::string> args) {
    args.insert(args.begin(), {db, "generate"});
    return RunDbTool(args, dir_.path());
  }
  json Json(const testing::CommandResult& r) {
    auto j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "stdout: " << r.out << "\nstderr: " << r.err;
    return j;
  }
  TempDir dir_;
};

TEST_F(GenerateCommandTest, ReplicasGeneratedWithTheSameFlagsAgreeBlockForBlock) {
  const std::vector<std::string> flags{"--blocks", "700", "--payload-bytes", "1024", "--seed", "5"};
  auto a = Generate(dir_ / "r1", flags);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b = Generate(dir_ / "r2", flags);
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(Json(a)["lastBlockID"], "700");
  EXPECT_EQ(Json(a)["lastDigest"], Json(b)["lastDigest"]);
  auto verify = RunDbTool({dir_ / "r1", "verifyChain"}, dir_.path());
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  EXPECT_EQ(Json(verify)["blocksVerified"], "700");
  auto cmp = RunDbTool({dir_ / "r1", "compareTo", dir_ / "r2"}, dir_.path());
  EXPECT_EQ(cmp.exit_code, 0) << cmp.out << cmp.err;
  EXPECT_EQ(Json(cmp)["result"], "match");
  EXPECT_EQ(Json(cmp)["commonTo"], "700");
  // Another seed is another chain.
  ASSERT_EQ(Generate(dir_ / "r3", {"--blocks", "700", "--payload-bytes", "1024", "--seed", "6"}).exit_code,
            0);
  EXPECT_EQ(RunDbTool({dir_ / "r1", "compareTo", dir_ / "r3"}, dir_.path()).exit_code, 1);
  // The DB is private to its owner, as ledgerd's.
  EXPECT_EQ(fs::status(dir_ / "r1").permissions() & (fs::perms::group_all | fs::perms::others_all),
            fs::perms::none);
}

TEST_F(GenerateCommandTest, GenerateBySizeWritesRoughlyThatManyBytes) {
  auto r = Generate(dir_ / "db", {"--bytes", "8M", "--payload-bytes", "8192"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = Json(r);
  EXPECT_EQ(j["blocks"], "1024");  // 8 MiB of 8 KiB payloads
  const uint64_t db_bytes = std::stoull(j["dbBytes"].get<std::string>());
  EXPECT_GE(db_bytes, 8u << 20);
  EXPECT_LE(db_bytes, (8u << 20) + (1u << 20)) << "headers, key index and RocksDB files: under 1 MiB here";
  EXPECT_EQ(Json(RunDbTool({dir_ / "db", "getBlockInfo", "1024"}, dir_.path()))["blockID"], "1024");
}

TEST_F(GenerateCommandTest, RefusesADirectoryThatIsNotEmptyAndLeavesItAlone) {
  fs::create_directory(dir_ / "used");
  std::ofstream(dir_ / "used/keep.txt") << "mine";
  auto r = Generate(dir_ / "used", {"--blocks", "10"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("refusing to generate into " + (dir_ / "used") +
                       ": it exists and is not an empty directory"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "used"), fs::directory_iterator()), 1);
  // A ledger that exists already is refused the same way.
  ASSERT_EQ(Generate(dir_ / "db", {"--blocks", "10"}).exit_code, 0);
  EXPECT_EQ(Generate(dir_ / "db", {"--blocks", "10"}).exit_code, 2);
  // An empty directory is fine.
  fs::create_directory(dir_ / "empty");
  EXPECT_EQ(Generate(dir_ / "empty", {"--blocks", "10"}).exit_code, 0);
}

TEST_F(GenerateCommandTest, BadNumbersAreUsageErrorsNamingTheFlag) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--blocks", "0"}, "--blocks must be a whole number from 1"},
      {{"--blocks", "-5"}, "--blocks must be"},
      {{"--blocks", "1e3"}, "--blocks must be"},
      {{"--blocks", "10x"}, "--blocks must be"},
      {{"--blocks", "18446744073709551616"}, "--blocks must be"},
      {{"--bytes", "1X"}, "--bytes must be a positive size"},
      {{"--bytes", "0"}, "--bytes must be a positive size"},
      {{"--bytes", "99999999999T"}, "--bytes must be a positive size"},
      {{"--bytes", "1T", "--payload-bytes", "1"}, "at most 1000000000"},
      {{"--blocks", "10", "--payload-bytes", "0"}, "--payload-bytes must be a whole number from 1"},
      {{"--blocks", "10", "--keyspace", "0"}, "--keyspace must be"},
      {{"--blocks", "10", "--bytes", "1M"}, "exactly one of --blocks N and --bytes SIZE"},
      {{}, "exactly one of --blocks N and --bytes SIZE"},
      {{"--blocks"}, "--blocks needs a value"},
      {{"--blocks", "10", "--frobnicate", "1"}, "unknown flag '--frobnicate'"},
  };
  for (const auto& [args, want] : cases) {
    auto r = Generate(dir_ / "db", args);
    EXPECT_EQ(r.exit_code, 2) << want;
    EXPECT_NE(r.err.find(want), std::string::npos) << "want '" << want << "' in: " << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "db")) << want;
  }
  auto parsed = ParseGenerateArgs({"--bytes", "1G", "--payload-bytes", "8192"});
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->blocks, 131072u);
  EXPECT_EQ(ParseGenerateArgs({"--bytes", "8193", "--payload-bytes", "8192"})->blocks, 2u);  // rounded up
}

}  // namespace
}  // namespace ledgerkeep::ledger
