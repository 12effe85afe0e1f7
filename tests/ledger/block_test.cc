#include "ledger/block.h"

#include <gtest/gtest.h>

namespace ledgerkeep::ledger {
namespace {

TEST(BlockFormatTest, SerializedBlockRoundTrips) {
  Block block;
  block.id = 42;
  block.parent_digest.fill(0xab);
  block.updates = {{"key-42", std::string("\x00\x01\xff payload", 11)}, {"time", "42"}, {"", ""}};
  const std::string bytes = SerializeBlock(block);
  auto parsed = ParseBlock(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, block);
  EXPECT_EQ(SerializeBlock(*parsed), bytes);
}

TEST(BlockFormatTest, HeaderLayoutIsVersionDigestIdCount) {
  Block block;
  block.id = 0x0102030405060708ULL;
  block.parent_digest.fill(0x11);
  block.updates = {{"k", "v"}};
  const std::string bytes = SerializeBlock(block);
  ASSERT_EQ(bytes.size(), 1u + 32 + 8 + 4 + 4 + 1 + 4 + 1);
  EXPECT_EQ(bytes[0], 1);
  EXPECT_EQ(static_cast<uint8_t>(bytes[1]), 0x11);
  EXPECT_EQ(bytes.substr(33, 8), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  EXPECT_EQ(bytes.substr(41, 4), std::string("\x00\x00\x00\x01", 4));
}

TEST(BlockFormatTest, TruncatedOrPaddedBlocksAreCorruption) {
  const std::string bytes = SerializeBlock(GenerateBlock(ChainParams{7, 100, 10}, 3, Digest{}));
  for (size_t n : {size_t{0}, size_t{10}, size_t{44}, bytes.size() - 1}) {
    auto parsed = ParseBlock(bytes.substr(0, n));
    ASSERT_FALSE(parsed.ok()) << n;
    EXPECT_EQ(parsed.status().code(), StatusCode::kCorruption);
  }
  EXPECT_EQ(ParseBlock(bytes + "x").status().code(), StatusCode::kCorruption);
  std::string bad_version = bytes;
  bad_version[0] = 9;
  EXPECT_EQ(ParseBlock(bad_version).status().code(), StatusCode::kCorruption);
  std::string huge_count = bytes;
  huge_count[41] = '\x7f';
  EXPECT_EQ(ParseBlock(huge_count).status().code(), StatusCode::kCorruption);
}

TEST(BlockFormatTest, GeneratedContentDependsOnlyOnSeedAndId) {
  const ChainParams params{12345, 4096, 100};
  const Block a = GenerateBlock(params, 777, Digest{});
  const Block b = GenerateBlock(params, 777, Digest{});
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.updates.size(), 2u);
  EXPECT_EQ(a.updates[0].key, "key-77");
  EXPECT_EQ(a.updates[0].value.size(), 4096u);
  EXPECT_EQ(a.updates[1].key, "time");
  EXPECT_NE(GenerateBlock(params, 778, Digest{}).updates[0].value, a.updates[0].value);
  EXPECT_NE(GenerateBlock(ChainParams{12346, 4096, 100}, 777, Digest{}).updates[0].value, a.updates[0].value);
}

TEST(BlockFormatTest, DigestCoversIdAndEveryByte) {
  const std::string bytes = SerializeBlock(GenerateBlock(ChainParams{1, 64, 10}, 5, Digest{}));
  const Digest d = ComputeBlockDigest(5, bytes);
  EXPECT_EQ(d, ComputeBlockDigest(5, bytes));
  EXPECT_NE(d, ComputeBlockDigest(6, bytes));
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 1;
  EXPECT_NE(d, ComputeBlockDigest(5, flipped));
  EXPECT_EQ(DigestToHex(d).size(), 64u);
}

TEST(BlockFormatTest, SHA256OfKnownInputMatchesReference) {
  // SHA-256 of 8 zero bytes (id 0) followed by nothing.
  EXPECT_EQ(DigestToHex(ComputeBlockDigest(0, "")),
            "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc");
}

TEST(BlockFormatTest, BlockKeysSortInBlockOrder) {
  EXPECT_LT(EncodeBlockKey(255), EncodeBlockKey(256));
  EXPECT_LT(EncodeBlockKey(1), EncodeBlockKey(1ULL << 40));
  EXPECT_EQ(*DecodeBlockKey(EncodeBlockKey(123456789)), 123456789u);
  EXPECT_FALSE(DecodeBlockKey("short").ok());
}

}  // namespace
}  // namespace ledgerkeep::ledger
