// The one SHA-256 of the project (common/sha256.h) and the directory fsync
// of common/file_util.h.
#include "common/sha256.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/file_util.h"
#include "tests/support/temp_dir.h"

namespace ledgerkeep {
namespace {

constexpr char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(Sha256Test, KnownVectorsOneShotAndIncremental) {
  EXPECT_EQ(Sha256Hex(""), kEmpty);
  EXPECT_EQ(Sha256Hex("abc"), kAbc);
  Sha256 sha;
  sha.Update("a");
  sha.Update(std::string_view("bc"));
  ASSERT_TRUE(sha.ok());
  auto hex = sha.FinishHex();
  ASSERT_TRUE(hex.ok()) << hex.status().ToString();
  EXPECT_EQ(*hex, kAbc);
}

TEST(Sha256Test, DigestBytesMatchTheHexForm) {
  Sha256 sha;
  sha.Update("abc");
  auto digest = sha.Finish();
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(LowerHex(std::string_view(reinterpret_cast<const char*>(digest->data()), digest->size())), kAbc);
}

TEST(Sha256Test, FinishTwiceIsAnErrorNotAWrongDigest) {
  Sha256 sha;
  sha.Update("abc");
  ASSERT_TRUE(sha.Finish().ok());
  EXPECT_EQ(sha.Finish().status().code(), StatusCode::kInternal);
}

TEST(Sha256Test, FileIsHashedWholeAndAMissingFileIsNotFound) {
  test::TempDir dir("lk-sha-");
  const std::string path = dir.path() + "/f";
  std::string big(3 << 20, 'x');  // more than one read buffer
  std::ofstream(path, std::ios::binary) << big;
  auto h = Sha256File(path);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(*h, Sha256Hex(big));
  EXPECT_EQ(Sha256File(dir.path() + "/missing").status().code(), StatusCode::kNotFound);
}

TEST(SyncDirectoryTest, SyncsADirectoryAndReportsOneThatIsNotThere) {
  test::TempDir dir("lk-sync-");
  EXPECT_TRUE(SyncDirectory(dir.path()).ok());
  EXPECT_TRUE(SyncParentDirectory(dir.path() + "/not-yet").ok());
  const Status missing = SyncDirectory(dir.path() + "/gone");
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find(dir.path() + "/gone"), std::string::npos) << missing.ToString();
  std::ofstream(dir.path() + "/file") << "x";
  EXPECT_FALSE(SyncDirectory(dir.path() + "/file").ok()) << "a file is not a directory";
}

}  // namespace
}  // namespace ledgerkeep
