// ParseByteSize: sizes as operators write them (common/byte_size.h).
#include "common/byte_size.h"

#include <gtest/gtest.h>

namespace ledgerkeep {
namespace {

TEST(ByteSizeTest, SuffixesArePowersOf1024InEitherCase) {
  EXPECT_EQ(*ParseByteSize("--x", "1073741824"), 1073741824u);
  EXPECT_EQ(*ParseByteSize("--x", "64K"), 64u << 10);
  EXPECT_EQ(*ParseByteSize("--x", "512m"), 512u << 20);
  EXPECT_EQ(*ParseByteSize("--x", "1G"), 1ull << 30);
  EXPECT_EQ(*ParseByteSize("--x", "2t"), 2ull << 40);
}

TEST(ByteSizeTest, AnythingElseIsAnErrorNamingWhat) {
  for (const char* bad : {"", "0", "-1", "+5", " 1G", "1G ", "1.5G", "1GB", "1KiB", "G", "99999999999T",
                          "18446744073709551616"}) {
    auto r = ParseByteSize("--bwlimit", bad);
    ASSERT_FALSE(r.ok()) << "'" << bad << "'";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("--bwlimit"), std::string::npos) << r.status().ToString();
  }
}

}  // namespace
}  // namespace ledgerkeep
