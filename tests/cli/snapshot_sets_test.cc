// Snapshot sets (cli/snapshot_sets.h): grouping the replicas' listings.
#include "cli/snapshot_sets.h"

#include <gtest/gtest.h>

namespace ledgerkeep {
namespace {

SnapshotInfo Snap(const std::string& id, uint64_t run, uint64_t block, bool complete = true, uint64_t last = 0) {
  SnapshotInfo s;
  s.snapshot_id = id;
  s.complete = complete;
  s.set_run = run;
  s.set_block = block;
  s.last_block_id = last != 0 ? last : block;
  s.last_reachable = s.last_block_id;
  return s;
}

const std::vector<std::string> kReplicas = {"r1", "r2", "r3"};

TEST(SnapshotSetsTest, ASetIsCompleteWhenEveryReplicaHasItsSnapshot) {
  auto sets = GroupSnapshotSets(kReplicas,
                                {{"r1", {Snap("a1", 0, 0, true, 100), Snap("a2", 7, 450)}},
                                 {"r2", {Snap("b2", 7, 450)}},
                                 {"r3", {Snap("c2", 7, 450)}}},
                                {});
  ASSERT_EQ(sets.size(), 1u);  // the snapshot outside any set is not a set
  EXPECT_EQ(sets[0].run, 7u);
  EXPECT_EQ(sets[0].block, 450u);
  EXPECT_TRUE(sets[0].complete);
  EXPECT_EQ(sets[0].snapshots.at("r2"), "b2");
  EXPECT_TRUE(sets[0].missing.empty());
}

TEST(SnapshotSetsTest, AMissingOrIncompleteSnapshotMakesTheSetIncompleteAndIsNamed) {
  auto sets = GroupSnapshotSets(kReplicas,
                                {{"r1", {Snap("a", 7, 450)}}, {"r2", {Snap("b", 7, 450, /*complete=*/false)}}},
                                {{"r3", "backup host down"}});
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_FALSE(sets[0].complete);
  EXPECT_EQ(sets[0].missing, (std::vector<std::string>{"r2", "r3 (not listed: backup host down)"}));
}

TEST(SnapshotSetsTest, ASnapshotNotAtTheSetsBlockIsNotAMember) {
  auto sets = GroupSnapshotSets({"r1", "r2"}, {{"r1", {Snap("a", 7, 450)}}, {"r2", {Snap("b", 7, 450, true, 600)}}},
                                {});
  ASSERT_EQ(sets.size(), 1u);
  EXPECT_FALSE(sets[0].complete);
  EXPECT_EQ(sets[0].missing, (std::vector<std::string>{"r2"}));
}

TEST(SnapshotSetsTest, SetsComeOldestRunFirst) {
  auto sets = GroupSnapshotSets({"r1"}, {{"r1", {Snap("b", 9, 900), Snap("a", 3, 300)}}}, {});
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(sets[0].run, 3u);
  EXPECT_EQ(sets[1].run, 9u);
}

}  // namespace
}  // namespace ledgerkeep
