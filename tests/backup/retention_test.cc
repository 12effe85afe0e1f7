// Retention (backup/retention.h): which complete snapshots a run deletes,
// with boundary values for both rules, hostile ages and odd ids. "Now" comes
// from a ManualClock.
#include "backup/retention.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "backup/backup_engine.h"
#include "common/clock.h"

namespace ledgerkeep {
namespace {

using Ids = std::vector<std::string>;

constexpr int64_t kSecond = 1000;
constexpr int64_t kDay = 86'400 * kSecond;
constexpr uint64_t kDayS = 86'400;

class RetentionTest : public ::testing::Test {
 protected:
  // 2026-03-01T12:00:00.000Z, right after a leap-free February.
  ManualClock clock_{1'772'366'400'000};

  // The id of a snapshot taken `ms_ago` before now.
  std::string Ago(int64_t ms_ago) const { return SnapshotIdFor(clock_.NowMs() - ms_ago); }

  Ids Delete(const Ids& complete, uint32_t keep_last, uint64_t max_age_s) const {
    return SnapshotsToDelete(complete, clock_.NowMs(), RetentionPolicy{keep_last, max_age_s});
  }
};

TEST_F(RetentionTest, NoRulesDeleteNothing) {
  const Ids ids = {Ago(400 * kDay), Ago(3 * kDay), Ago(0)};
  EXPECT_TRUE(Delete(ids, 0, 0).empty());
}

TEST_F(RetentionTest, MaxAgeDeletesSnapshotsOlderThanItAndKeepsYoungerOnes) {
  // Fails if the comparison is reversed (young ones deleted, old ones kept)
  // or the age is taken from the wrong end.
  const Ids ids = {Ago(30 * kDay), Ago(8 * kDay), Ago(6 * kDay), Ago(1 * kDay), Ago(0)};
  EXPECT_EQ(Delete(ids, 0, 7 * kDayS), (Ids{ids[0], ids[1]}));
}

TEST_F(RetentionTest, AgeExactlyAtTheLimitIsKeptAndOneMillisecondMoreIsDeleted) {
  const uint64_t max_age_s = 3600;
  const int64_t limit = 3600 * kSecond;
  const Ids ids = {Ago(limit + 1), Ago(limit), Ago(limit - 1), Ago(0)};
  EXPECT_EQ(Delete(ids, 0, max_age_s), (Ids{ids[0]}));
}

TEST_F(RetentionTest, OneSecondMaxAgeKeepsOnlyTheLastSecondAndTheNewest) {
  const Ids ids = {Ago(2 * kSecond), Ago(kSecond + 1), Ago(kSecond), Ago(999), Ago(0)};
  EXPECT_EQ(Delete(ids, 0, 1), (Ids{ids[0], ids[1]}));
}

TEST_F(RetentionTest, NeverTheNewestEvenWhenEverySnapshotIsTooOld) {
  const Ids ids = {Ago(30 * kDay), Ago(20 * kDay), Ago(10 * kDay)};
  EXPECT_EQ(Delete(ids, 0, 1), (Ids{ids[0], ids[1]}));
  EXPECT_EQ(Delete(ids, 1, 0), (Ids{ids[0], ids[1]}));
  EXPECT_TRUE(Delete({ids[0]}, 1, 1).empty());
  EXPECT_TRUE(Delete({}, 1, 1).empty());
  // Listed in any order, the newest is still the one kept.
  EXPECT_EQ(Delete({ids[2], ids[0], ids[1]}, 1, 1), (Ids{ids[0], ids[1]}));
}

TEST_F(RetentionTest, KeepLastKeepsTheNewestN) {
  const Ids ids = {Ago(5 * kDay), Ago(4 * kDay), Ago(3 * kDay), Ago(2 * kDay), Ago(kDay)};
  EXPECT_EQ(Delete(ids, 2, 0), (Ids{ids[0], ids[1], ids[2]}));
  EXPECT_EQ(Delete(ids, 5, 0), Ids{});
  EXPECT_EQ(Delete(ids, kMaxKeepLast, 0), Ids{});
  EXPECT_EQ(Delete(ids, std::numeric_limits<uint32_t>::max(), 0), Ids{});
}

TEST_F(RetentionTest, EitherRuleDeletes) {
  const Ids ids = {Ago(9 * kDay), Ago(8 * kDay), Ago(3 * kDay), Ago(2 * kDay), Ago(kDay)};
  EXPECT_EQ(Delete(ids, 4, 5 * kDayS), (Ids{ids[0], ids[1]}));               // the age rule deletes more
  EXPECT_EQ(Delete(ids, 2, 17 * kDayS / 2), (Ids{ids[0], ids[1], ids[2]}));  // the count rule does
}

TEST_F(RetentionTest, LargestAcceptedMaxAgeDeletesOnlyWhatIsOlderThanAHundredYears) {
  const Ids ids = {"19000101T000000.000Z", Ago(99 * 365 * kDay), Ago(kDay), Ago(0)};
  EXPECT_EQ(Delete(ids, 0, kMaxRetentionAgeS), (Ids{ids[0]}));
  clock_.Set(*SnapshotTimeMs("21000101T000000.000Z"));  // so the edge is after 1970
  const int64_t limit = static_cast<int64_t>(kMaxRetentionAgeS) * kSecond;
  const Ids edge = {Ago(limit + 1), Ago(limit), Ago(0)};
  EXPECT_EQ(Delete(edge, 0, kMaxRetentionAgeS), (Ids{edge[0]}));
}

TEST_F(RetentionTest, HugeMaxAgeDeletesNothing) {
  // What `--max-age-days 999999999999999` became before the CLI checked it:
  // days * 86400 wrapped, and read as a signed age limit it was negative.
  const uint64_t days = 999'999'999'999'999;
  const uint64_t wrapped = days * kDayS;
  const Ids ids = {"00010101T000000.000Z", "19700101T000000.000Z", Ago(50 * 365 * kDay), Ago(kDay), Ago(0)};
  for (const uint64_t max_age_s :
       {wrapped, std::numeric_limits<uint64_t>::max(), std::numeric_limits<uint64_t>::max() / 1000,
        std::numeric_limits<uint64_t>::max() / 1000 + 1, uint64_t{std::numeric_limits<int64_t>::max()},
        uint64_t{std::numeric_limits<int64_t>::max()} + 1}) {
    EXPECT_EQ(Delete(ids, 0, max_age_s), Ids{}) << "max_age_s " << max_age_s;
  }
}

TEST_F(RetentionTest, LargerMaxAgeNeverDeletesMore) {
  Ids ids;
  for (int64_t ago : {900 * 365 * kDay, 200 * 365 * kDay, 40 * kDay, 7 * kDay + 1, 7 * kDay, kDay, kSecond,
                      int64_t{1}, int64_t{0}}) {
    ids.push_back(Ago(ago));
  }
  const std::vector<uint64_t> ages = {1,
                                      59,
                                      kDayS,
                                      7 * kDayS - 1,
                                      7 * kDayS,
                                      7 * kDayS + 1,
                                      kMaxRetentionAgeS,
                                      kMaxRetentionAgeS + 1,
                                      std::numeric_limits<uint64_t>::max() / 1000,
                                      std::numeric_limits<uint64_t>::max()};
  size_t previous = ids.size();
  for (uint64_t age : ages) {
    const size_t deleted = Delete(ids, 0, age).size();
    EXPECT_LE(deleted, previous) << "max_age_s " << age;
    previous = deleted;
  }
  EXPECT_EQ(Delete(ids, 0, 1).size(), ids.size() - 3);  // all but the last second's
  EXPECT_EQ(previous, 0u);
}

TEST_F(RetentionTest, SnapshotFromTheFutureIsNeverDeletedByAge) {
  // A clock that went back (or a wrong clock on the node that took it).
  const Ids ids = {Ago(-365 * kDay), Ago(-1), Ago(10 * kDay), Ago(0)};
  EXPECT_EQ(Delete(ids, 0, 1), (Ids{ids[2]}));
}

TEST_F(RetentionTest, UnparseableIdsAreNeverDeletedByAge) {
  for (const std::string odd :
       {"garbage", "", "20231301T000000.000Z", "20230230T000000.000Z", "20220229T000000.000Z",
        "20230101T240000.000Z", "20230101T006000.000Z", "20230101T000060.000Z", "2023010ST000000.000Z",
        "20230101T000000.000", "20230101T000000.000ZZ", "20230101-000000.000Z", "-0230101T000000.000Z"}) {
    EXPECT_FALSE(SnapshotTimeMs(odd).has_value()) << odd;
    EXPECT_EQ(Delete({odd, Ago(0)}, 0, 1), Ids{}) << odd;
  }
  // A real leap day parses.
  EXPECT_TRUE(SnapshotTimeMs("20240229T000000.000Z").has_value());
}

TEST_F(RetentionTest, ExtremeClockReadingsDeleteNothingUnexpected) {
  const Ids ids = {"00010101T000000.000Z", "99991231T235959.999Z", Ago(0)};
  EXPECT_EQ(SnapshotsToDelete(ids, std::numeric_limits<int64_t>::min(), {0, 1}), Ids{});
  // At the end of int64 time every id is in the past; the newest (year
  // 9999) stays anyway.
  EXPECT_EQ(SnapshotsToDelete(ids, std::numeric_limits<int64_t>::max(), {0, kMaxRetentionAgeS}),
            (Ids{ids[0], ids[2]}));
}

TEST_F(RetentionTest, SnapshotTimeIsTheTimeItsIdWasMadeFrom) {
  for (int64_t ms : {int64_t{0}, int64_t{1}, int64_t{951'782'400'123}, int64_t{1'709'164'800'999},
                     clock_.NowMs(), int64_t{253'402'300'799'999}}) {
    EXPECT_EQ(SnapshotTimeMs(SnapshotIdFor(ms)), ms) << SnapshotIdFor(ms);
  }
}

TEST(RetentionLimitsTest, ValidateAcceptsTheDocumentedRangeAndNamesTheFieldOutsideIt) {
  EXPECT_TRUE(ValidateRetention({0, 0}).ok());
  EXPECT_TRUE(ValidateRetention({kMaxKeepLast, kMaxRetentionAgeS}).ok());
  Status keep = ValidateRetention({kMaxKeepLast + 1, 0});
  EXPECT_EQ(keep.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(keep.message().find("keep_last"), std::string::npos) << keep.message();
  EXPECT_NE(keep.message().find(std::to_string(kMaxKeepLast)), std::string::npos) << keep.message();
  Status age = ValidateRetention({0, kMaxRetentionAgeS + 1});
  EXPECT_EQ(age.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(age.message().find("max_age_s"), std::string::npos) << age.message();
  EXPECT_NE(age.message().find("36500 days"), std::string::npos) << age.message();
  EXPECT_EQ(ValidateRetention({0, std::numeric_limits<uint64_t>::max()}).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ledgerkeep
