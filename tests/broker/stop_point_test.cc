// The wedge stop point (DESIGN.md §5): the next-but-one checkpoint (window
// 150) above the highest replica's block, (seq + 300) - ((seq + 300) % 150).
// A stop point one window lower leaves a replica that is a little behind no
// room to catch up before it; one window higher pauses the cluster longer
// than needed. Each expectation below fails if the formula is off by ±150.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "broker/wedge_workflows.h"
#include "tests/support/status_macros.h"

namespace ledgerkeep {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

uint64_t StopPointOf(uint64_t seq) {
  auto r = ChooseStopPoint(seq);
  EXPECT_TRUE(r.ok()) << "seq " << seq << ": " << r.status().ToString();
  return r.ok() ? *r : 0;
}

TEST(StopPointTest, IsTheNextButOneCheckpointAtTheWindowBoundaries) {
  EXPECT_EQ(StopPointOf(0), 300u);
  EXPECT_EQ(StopPointOf(1), 300u);
  EXPECT_EQ(StopPointOf(149), 300u);
  EXPECT_EQ(StopPointOf(150), 450u);  // on a checkpoint: the next-but-one after it
  EXPECT_EQ(StopPointOf(151), 450u);
  EXPECT_EQ(StopPointOf(299), 450u);
  EXPECT_EQ(StopPointOf(300), 600u);
  EXPECT_EQ(StopPointOf(449), 600u);
  EXPECT_EQ(StopPointOf(450), 750u);
  EXPECT_EQ(StopPointOf(1'000'000), 1'000'200u);
}

TEST(StopPointTest, IsAMultipleOfTheWindowMoreThanOneAndAtMostTwoWindowsAbove) {
  for (uint64_t seq = 0; seq < 3000; ++seq) {
    const uint64_t stop = StopPointOf(seq);
    ASSERT_EQ(stop % 150, 0u) << "seq " << seq;
    ASSERT_GT(stop, seq + 150) << "seq " << seq << ": not the next-but-one checkpoint";
    ASSERT_LE(stop, seq + 300) << "seq " << seq << ": past the next-but-one checkpoint";
  }
}

// Near UINT64_MAX: the highest seq whose seq + 300 fits still gets the last
// checkpoint of the 64-bit range; above it no stop point is picked (it would
// wrap around to a small number below the chain).
TEST(StopPointTest, HugeBlockIdsNeverWrapAround) {
  const uint64_t last_checkpoint = kMax - kMax % 150;  // 18446744073709551600
  EXPECT_EQ(StopPointOf(kMax - 300), last_checkpoint);
  EXPECT_EQ(StopPointOf(last_checkpoint - 300), last_checkpoint);
  EXPECT_EQ(StopPointOf(last_checkpoint - 301), last_checkpoint - 150);
  for (uint64_t seq : {kMax - 299, kMax - 150, kMax - 1, kMax}) {
    auto r = ChooseStopPoint(seq);
    ASSERT_FALSE(r.ok()) << "seq " << seq << " gave stop point " << *r;
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().ToString();
    EXPECT_NE(r.status().message().find(std::to_string(seq)), std::string::npos) << r.status().ToString();
  }
}

}  // namespace
}  // namespace ledgerkeep
