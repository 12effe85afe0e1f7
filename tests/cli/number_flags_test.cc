// ParseWholeNumber (cli/number_flags.h): what a numeric option accepts.
#include "cli/number_flags.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace ledgerkeep {
namespace {

constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

TEST(NumberFlagsTest, WholeNumbersInTheRangeAreTheirValue) {
  EXPECT_EQ(ParseWholeNumber("0", 0, 10).value(), 0u);
  EXPECT_EQ(ParseWholeNumber("10", 0, 10).value(), 10u);
  EXPECT_EQ(ParseWholeNumber("0012", 1, 100).value(), 12u);
  EXPECT_EQ(ParseWholeNumber("1", 1, 1).value(), 1u);
  EXPECT_EQ(ParseWholeNumber("18446744073709551615", 0, kU64Max).value(), kU64Max);
}

TEST(NumberFlagsTest, SignsSpacesExponentsHexFractionsAndOtherDigitsAreRefused) {
  for (const std::string bad :
       {"",    "-3",    "-0",    "+3",  " 3",  "3 ", "3\n", "1e3",  "1E3", "0x10", "0X10",
        "3.0", "3,000", "1_000", "inf", "nan", "٣",  "３",  "3abc", "--3", "$(id)"}) {
    auto r = ParseWholeNumber(bad, 0, kU64Max);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << "'" << bad << "'";
  }
}

TEST(NumberFlagsTest, OverflowIsRefusedNotWrapped) {
  for (const std::string& big :
       std::vector<std::string>{"18446744073709551616", "18446744073709551620", "99999999999999999999",
                                "000000000000000000000000018446744073709551616", std::string(5000, '9')}) {
    EXPECT_EQ(ParseWholeNumber(big, 0, kU64Max).status().code(), StatusCode::kInvalidArgument)
        << big.substr(0, 50);
  }
  // Leading zeros do not count as digits of the value.
  EXPECT_EQ(ParseWholeNumber("000000000000000000000000018446744073709551615", 0, kU64Max).value(), kU64Max);
}

TEST(NumberFlagsTest, ValuesOutsideTheRangeAreRefusedAtBothEnds) {
  EXPECT_FALSE(ParseWholeNumber("0", 1, 65535).ok());
  EXPECT_TRUE(ParseWholeNumber("1", 1, 65535).ok());
  EXPECT_TRUE(ParseWholeNumber("65535", 1, 65535).ok());
  EXPECT_FALSE(ParseWholeNumber("65536", 1, 65535).ok());
  // --max-age-days: the value that wrapped days * 86400.
  EXPECT_FALSE(ParseWholeNumber("999999999999999", 0, 36500).ok());
}

TEST(NumberFlagsTest, MessageGivesTheRangeAndAShortCleanEcho) {
  auto r = ParseWholeNumber("-3", 1, 1000000);
  EXPECT_EQ(r.status().message(), "must be a whole number from 1 to 1000000, got '-3'");
  auto hostile = ParseWholeNumber("1\n2" + std::string(5000, 'x'), 0, 9);
  const std::string& m = hostile.status().message();
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_LT(m.size(), 200u) << m;
  EXPECT_NE(m.find("from 0 to 9"), std::string::npos) << m;
}

}  // namespace
}  // namespace ledgerkeep
