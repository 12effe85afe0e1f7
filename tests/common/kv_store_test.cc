#include "common/kv_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/codec.h"

namespace ledgerkeep {
namespace {

class KvStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-kv-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(KvStoreTest, BatchIsAtomicAcrossColumnFamiliesAndSurvivesReopen) {
  {
    auto s = KvStore::Open(dir_, {"a", "b"});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    KvStore::Batch b;
    b.Put(0, "k", "va");
    b.Put(1, "k", "vb");
    ASSERT_TRUE((*s)->Write(b, true).ok());
  }
  auto s = KvStore::Open(dir_, {"a", "b"});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*(*(*s)->Get(0, "k")), "va");
  EXPECT_EQ(*(*(*s)->Get(1, "k")), "vb");
  EXPECT_FALSE((*(*s)->Get(0, "missing")).has_value());
}

TEST_F(KvStoreTest, ScanDeleteRangeAndBounds) {
  auto s = KvStore::Open(dir_, {"seq"});
  ASSERT_TRUE(s.ok());
  KvStore::Batch b;
  for (uint64_t i = 1; i <= 100; ++i) b.Put(0, EncodeU64BE(i), std::to_string(i));
  ASSERT_TRUE((*s)->Write(b, false).ok());
  KvStore::Batch d;
  d.DeleteRange(0, EncodeU64BE(1), EncodeU64BE(51));
  ASSERT_TRUE((*s)->Write(d, false).ok());
  EXPECT_EQ(DecodeU64BE(**(*s)->FirstKey(0)), 51u);
  EXPECT_EQ(DecodeU64BE(**(*s)->LastKey(0)), 100u);
  std::vector<uint64_t> seen;
  ASSERT_TRUE((*s)->Scan(0, EncodeU64BE(60), EncodeU64BE(63), [&](std::string_view k, std::string_view) {
                    seen.push_back(DecodeU64BE(k));
                    return true;
                  }).ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{60, 61, 62}));
}

TEST_F(KvStoreTest, ScanBackwardVisitsTheSameRangeFromTheTop) {
  auto s = KvStore::Open(dir_, {"seq"});
  ASSERT_TRUE(s.ok());
  KvStore::Batch b;
  for (uint64_t i = 1; i <= 100; ++i) b.Put(0, EncodeU64BE(i), std::to_string(i));
  ASSERT_TRUE((*s)->Write(b, false).ok());
  auto backward = [&](std::string_view start, std::string_view end, size_t limit) {
    std::vector<uint64_t> seen;
    EXPECT_TRUE((*s)->ScanBackward(0, start, end,
                                   [&](std::string_view k, std::string_view v) {
                                     EXPECT_EQ(v, std::to_string(DecodeU64BE(k)));
                                     seen.push_back(DecodeU64BE(k));
                                     return seen.size() < limit;
                                   })
                    .ok());
    return seen;
  };
  EXPECT_EQ(backward(EncodeU64BE(60), EncodeU64BE(63), 100), (std::vector<uint64_t>{62, 61, 60}));
  EXPECT_EQ(backward("", "", 2), (std::vector<uint64_t>{100, 99}));
  EXPECT_EQ(backward(EncodeU64BE(99), "", 100), (std::vector<uint64_t>{100, 99}));
  EXPECT_EQ(backward("", EncodeU64BE(3), 100), (std::vector<uint64_t>{2, 1}));
  EXPECT_EQ(backward(EncodeU64BE(50), EncodeU64BE(1000), 3), (std::vector<uint64_t>{100, 99, 98}));
  EXPECT_TRUE(backward(EncodeU64BE(60), EncodeU64BE(60), 100).empty());
}

TEST_F(KvStoreTest, SecondOpenOfTheSameDirectoryIsBusy) {
  auto first = KvStore::Open(dir_, {"x"});
  ASSERT_TRUE(first.ok());
  auto second = KvStore::Open(dir_, {"x"});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kBusy) << second.status().ToString();
}

TEST_F(KvStoreTest, RefusesADirectoryWithOtherColumnFamilies) {
  { ASSERT_TRUE(KvStore::Open(dir_, {"events"}).ok()); }
  auto other = KvStore::Open(dir_, {"nodes", "events"});
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kCorruption);
}

TEST_F(KvStoreTest, ColumnFamiliesAppendedLaterKeepTheirIndexes) {
  {
    auto s = KvStore::Open(dir_, {"a"});
    ASSERT_TRUE((*s)->Put(0, "k", "1", true).ok());
  }
  auto s = KvStore::Open(dir_, {"a", "b"});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*(*(*s)->Get(0, "k")), "1");
  ASSERT_TRUE((*s)->Put(1, "k", "2", true).ok());
  EXPECT_EQ(*(*(*s)->Get(1, "k")), "2");
}

}  // namespace
}  // namespace ledgerkeep
