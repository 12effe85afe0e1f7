// SnapshotPlaces: the bookkeeping behind "latest" (issue 13 point 2).
#include "backup/snapshot_places.h"

#include <gtest/gtest.h>

#include "wire/backup_wire.h"

namespace ledgerkeep {
namespace {

BackupTarget Target(const std::string& destination) {
  BackupTarget t;
  t.destination = destination;
  return t;
}

TEST(SnapshotPlacesTest, AOneOffDestinationNeverReplacesTheHome) {
  SnapshotPlaces places;
  SetHomePlace(places, Target("root@backup:/backups/r4"));
  RecordSnapshotAt(places, Target("root@backup:/backups/r4"), "20261201T100000.000Z");
  RecordSnapshotAt(places, Target("/tmp/adhoc/r4"), "20261201T110000.000Z");  // run-now --destination
  RecordSnapshotAt(places, Target("root@backup:/backups/r4/"), "20261201T120000.000Z");  // home again
  ASSERT_EQ(places.size(), 2u);
  EXPECT_TRUE(places[0].home);
  EXPECT_EQ(places[0].target.destination, "root@backup:/backups/r4");
  EXPECT_EQ(places[0].newest_snapshot_id, "20261201T120000.000Z");
  EXPECT_FALSE(places[1].home);
  EXPECT_EQ(places[1].newest_snapshot_id, "20261201T110000.000Z");
}

TEST(SnapshotPlacesTest, ANodeWithoutAHomeAdoptsTheFirstPlaceItCompletesASnapshotAt) {
  SnapshotPlaces places;
  RecordSnapshotAt(places, Target("/tmp/adhoc/r4"), "20261201T110000.000Z");
  ASSERT_NE(HomePlace(places), nullptr);
  EXPECT_EQ(HomePlace(places)->target.destination, "/tmp/adhoc/r4");
}

TEST(SnapshotPlacesTest, AnEarlierHomeStaysAPlaceOnlyWhenItHoldsASnapshot) {
  SnapshotPlaces places;
  SetHomePlace(places, Target("/a/r1"));
  SetHomePlace(places, Target("/b/r1"));  // nothing was ever written to /a/r1
  ASSERT_EQ(places.size(), 1u);
  RecordSnapshotAt(places, Target("/b/r1"), "20261201T100000.000Z");
  SetHomePlace(places, Target("/c/r1"));
  ASSERT_EQ(places.size(), 2u);
  EXPECT_EQ(places[0].target.destination, "/c/r1");
  EXPECT_EQ(places[1].target.destination, "/b/r1");
  EXPECT_EQ(places[1].newest_snapshot_id, "20261201T100000.000Z");
  // Back to /b: promoted with what it holds, not duplicated.
  SetHomePlace(places, Target("/b/r1"));
  ASSERT_EQ(places.size(), 1u);
  EXPECT_EQ(places[0].newest_snapshot_id, "20261201T100000.000Z");
}

TEST(SnapshotPlacesTest, ANewestRecordNeverGoesBack) {
  SnapshotPlaces places;
  RecordSnapshotAt(places, Target("/a/r1"), "20261201T100000.000Z");
  RecordSnapshotAt(places, Target("/a/r1"), "20261130T100000.000Z");
  EXPECT_EQ(places[0].newest_snapshot_id, "20261201T100000.000Z");
}

TEST(SnapshotPlacesTest, RoundTripsThroughJsonAndTheWireAndSkipsMalformedEntries) {
  SnapshotPlaces places;
  BackupTarget ssh = Target("root@backup:/b/r1");
  ssh.ssh_key = "/k/id";
  ssh.ssh_port = 2222;
  ssh.known_hosts = "/k/known_hosts";
  ssh.accept_new_host_key = true;
  SetHomePlace(places, ssh);
  RecordSnapshotAt(places, Target("/tmp/adhoc/r1"), "20261201T110000.000Z");
  auto j = PlacesToJson(places);
  j.push_back("garbage");
  j.push_back({{"target", {{"destination", 7}}}});
  const SnapshotPlaces back = PlacesFromJson(j);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_TRUE(back[0].home);
  EXPECT_EQ(back[0].target.ssh_port, 2222);
  EXPECT_EQ(back[0].target.known_hosts, "/k/known_hosts");
  EXPECT_TRUE(back[0].target.accept_new_host_key);
  EXPECT_EQ(back[1].newest_snapshot_id, "20261201T110000.000Z");
  const SnapshotPlaces wire_back = PlacesFromWire(PlacesToWire(places));
  ASSERT_EQ(wire_back.size(), 2u);
  EXPECT_EQ(wire_back[0].target.ssh_key, "/k/id");
  EXPECT_FALSE(wire_back[1].home);
}

}  // namespace
}  // namespace ledgerkeep
