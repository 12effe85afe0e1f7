// wire/backup_wire.h: every field of every backup value survives the trip
// through a packed FlatBuffers message and back (issue 14 point 6).
#include "wire/backup_wire.h"

#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

namespace ledgerkeep {
namespace {

// Packs the object into a buffer and unpacks it: what a peer receives.
template <class T>
T ThroughABuffer(const T& object) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(T::TableType::Pack(fbb, &object));
  T out;
  flatbuffers::GetRoot<typename T::TableType>(fbb.GetBufferPointer())->UnPackTo(&out);
  return out;
}

BackupTarget FullTarget() {
  BackupTarget t;
  t.destination = "backup@host:/b/r1";
  t.rsync_user = "backup";
  t.ssh_key = "/k/id";
  t.ssh_port = 2222;
  t.known_hosts = "/k/known_hosts";
  t.accept_new_host_key = true;
  return t;
}

SnapshotVerification FullVerification() {
  SnapshotVerification v;
  v.snapshot_id = "20261207T120000.000Z";
  v.ok = false;
  v.files_checked = 11;
  v.bytes_checked = 12;
  v.blocks_verified = 13;
  v.genesis = 1;
  v.last_reachable = 14;
  v.last_block_id = 15;
  v.duration_ms = 16;
  v.problems = {{"data/000012.sst", 412, "checksum mismatch"}, {"", 0, "DONE missing"}};
  v.destination = "host:/b/r1";
  return v;
}

TEST(BackupWireTest, ATargetKeepsEveryField) {
  const BackupTarget back = FromWire(ThroughABuffer(ToWire(FullTarget())));
  EXPECT_EQ(back.destination, "backup@host:/b/r1");
  EXPECT_EQ(back.rsync_user, "backup");
  EXPECT_EQ(back.ssh_key, "/k/id");
  EXPECT_EQ(back.ssh_port, 2222);
  EXPECT_EQ(back.known_hosts, "/k/known_hosts");
  EXPECT_TRUE(back.accept_new_host_key);
}

TEST(BackupWireTest, ACommandWithoutATargetGivesTheDefault) {
  const BackupTarget none = FromWire(static_cast<const wire::BackupTarget*>(nullptr));
  EXPECT_TRUE(none.destination.empty());
  EXPECT_EQ(none.ssh_port, 0);
}

TEST(BackupWireTest, AFailedBackupKeepsItsStatusCode) {
  BackupResult r;
  r.snapshot_id = "20261207T120000.000Z";
  r.destination = "host:/b/r1";
  r.bytes_transferred = 1;
  r.bytes_total = 2;
  r.files_total = 3;
  r.duration_ms = 4;
  r.consistent = true;
  r.genesis = 5;
  r.last_reachable = 6;
  r.last_block_id = 7;
  r.manifest_digest = "abc";
  r.scheduled = true;
  r.ok = false;
  r.error = "NoSpace: disk full";
  r.attempts = 8;
  r.streams = 9;
  r.error_code = StatusCode::kNoSpace;
  r.snapshot_count = 10;
  const BackupResult back = FromWire(ThroughABuffer(ToWire(r)));
  EXPECT_EQ(back.error_code, StatusCode::kNoSpace);
  EXPECT_EQ(back.error, r.error);
  EXPECT_FALSE(back.ok);
  EXPECT_EQ(back.snapshot_id, r.snapshot_id);
  EXPECT_EQ(back.destination, r.destination);
  EXPECT_EQ(back.bytes_transferred, 1u);
  EXPECT_EQ(back.bytes_total, 2u);
  EXPECT_EQ(back.files_total, 3u);
  EXPECT_EQ(back.duration_ms, 4);
  EXPECT_TRUE(back.consistent);
  EXPECT_EQ(back.genesis, 5u);
  EXPECT_EQ(back.last_reachable, 6u);
  EXPECT_EQ(back.last_block_id, 7u);
  EXPECT_EQ(back.manifest_digest, "abc");
  EXPECT_TRUE(back.scheduled);
  EXPECT_EQ(back.attempts, 8u);
  EXPECT_EQ(back.streams, 9u);
  EXPECT_EQ(back.snapshot_count, 10u);
}

TEST(BackupWireTest, AnErrorCodeThisBuildDoesNotKnowIsInternal) {
  wire::BackupResultT w;
  w.error_code = kMaxStatusCode + 1;
  EXPECT_EQ(FromWire(w).error_code, StatusCode::kInternal);
}

TEST(BackupWireTest, ASnapshotInfoKeepsEveryField) {
  SnapshotInfo s;
  s.snapshot_id = "20261207T120000.000Z";
  s.complete = true;
  s.consistent = true;
  s.bytes_total = 1;
  s.files_total = 2;
  s.genesis = 3;
  s.last_reachable = 4;
  s.last_block_id = 5;
  s.finished_at_ms = 6;
  s.destination = "host:/b/r1";
  const SnapshotInfo back = FromWire(ThroughABuffer(ToWire(s)));
  EXPECT_EQ(back.snapshot_id, s.snapshot_id);
  EXPECT_TRUE(back.complete);
  EXPECT_TRUE(back.consistent);
  EXPECT_EQ(back.bytes_total, 1u);
  EXPECT_EQ(back.files_total, 2u);
  EXPECT_EQ(back.genesis, 3u);
  EXPECT_EQ(back.last_reachable, 4u);
  EXPECT_EQ(back.last_block_id, 5u);
  EXPECT_EQ(back.finished_at_ms, 6);
  EXPECT_EQ(back.destination, s.destination);
}

void ExpectFullVerification(const SnapshotVerification& back) {
  EXPECT_EQ(back.snapshot_id, "20261207T120000.000Z");
  EXPECT_FALSE(back.ok);
  EXPECT_EQ(back.files_checked, 11u);
  EXPECT_EQ(back.bytes_checked, 12u);
  EXPECT_EQ(back.blocks_verified, 13u);
  EXPECT_EQ(back.genesis, 1u);
  EXPECT_EQ(back.last_reachable, 14u);
  EXPECT_EQ(back.last_block_id, 15u);
  EXPECT_EQ(back.duration_ms, 16);
  ASSERT_EQ(back.problems.size(), 2u);
  EXPECT_EQ(back.problems[0].file, "data/000012.sst");
  EXPECT_EQ(back.problems[0].block, 412u);
  EXPECT_EQ(back.problems[0].what, "checksum mismatch");
  EXPECT_EQ(back.problems[1].what, "DONE missing");
  EXPECT_EQ(back.destination, "host:/b/r1");
}

TEST(BackupWireTest, AVerifyResultKeepsEverySnapshotAndProblem) {
  BackupVerifyResult r;
  r.destination = "host:/b/r1";
  r.method = "in place";
  r.snapshots = {FullVerification(), FullVerification()};
  const BackupVerifyResult back = FromWire(ThroughABuffer(ToWire(r)));
  EXPECT_EQ(back.destination, "host:/b/r1");
  EXPECT_EQ(back.method, "in place");
  ASSERT_EQ(back.snapshots.size(), 2u);
  ExpectFullVerification(back.snapshots[0]);
  ExpectFullVerification(back.snapshots[1]);
}

TEST(BackupWireTest, ARestoreResultKeepsItsVerification) {
  RestoreResult r;
  r.source_node = "r1";
  r.source = "host:/b/r1";
  r.snapshot_id = "20261207T120000.000Z";
  r.db = "/var/lib/ledger/db";
  r.bytes = 1;
  r.files = 2;
  r.fetch_ms = 3;
  r.verify_ms = 4;
  r.duration_ms = 5;
  r.verification = FullVerification();
  r.ledgerd_started = true;
  const RestoreResult back = FromWire(ThroughABuffer(ToWire(r)));
  EXPECT_EQ(back.source_node, "r1");
  EXPECT_EQ(back.source, "host:/b/r1");
  EXPECT_EQ(back.snapshot_id, r.snapshot_id);
  EXPECT_EQ(back.db, "/var/lib/ledger/db");
  EXPECT_EQ(back.bytes, 1u);
  EXPECT_EQ(back.files, 2u);
  EXPECT_EQ(back.fetch_ms, 3);
  EXPECT_EQ(back.verify_ms, 4);
  EXPECT_EQ(back.duration_ms, 5);
  EXPECT_TRUE(back.ledgerd_started);
  ASSERT_TRUE(back.verification.has_value());
  ExpectFullVerification(*back.verification);

  RestoreResult bare;
  EXPECT_FALSE(FromWire(ThroughABuffer(ToWire(bare))).verification.has_value());
}

TEST(BackupWireTest, PlacesKeepTheirTargetsAndOnlyTheFirstIsHome) {
  SnapshotPlaces places(2);
  places[0].target = FullTarget();
  places[0].home = true;
  places[0].newest_snapshot_id = "20261207T120000.000Z";
  places[1].target.destination = "/local/r1";
  places[1].home = true;  // a second home is not one
  auto w = PlacesToWire(places);
  w.push_back(std::make_unique<wire::SnapshotPlaceT>());  // no target: skipped
  const SnapshotPlaces back = PlacesFromWire(w);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_TRUE(back[0].home);
  EXPECT_EQ(back[0].target.known_hosts, "/k/known_hosts");
  EXPECT_EQ(back[0].newest_snapshot_id, "20261207T120000.000Z");
  EXPECT_FALSE(back[1].home);
  EXPECT_EQ(back[1].target.destination, "/local/r1");
}

}  // namespace
}  // namespace ledgerkeep
