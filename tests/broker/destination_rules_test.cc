// The broker's destination rules (broker/destination_rules.h) over a real
// node registry: one destination per node, restores onto clones only, and
// where each node's snapshots are once its agent accepted a command.
#include "broker/destination_rules.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "common/curve_keys.h"

namespace ledgerkeep {
namespace {

wire::BackupTargetT Target(const std::string& destination) {
  wire::BackupTargetT t;
  t.destination = destination;
  return t;
}

wire::CommandBodyUnion Schedule(const std::string& destination,
                                wire::BackupMode mode = wire::BackupMode::Rsync) {
  wire::ScheduleBackupT s;
  s.mode = mode;
  s.frequency = "hourly";
  if (!destination.empty()) s.target = std::make_unique<wire::BackupTargetT>(Target(destination));
  wire::CommandBodyUnion b;
  b.Set(std::move(s));
  return b;
}

wire::CommandBodyUnion Configure(const std::string& destination) {
  wire::ConfigureBackupT c;
  c.target = std::make_unique<wire::BackupTargetT>(Target(destination));
  wire::CommandBodyUnion b;
  b.Set(std::move(c));
  return b;
}

wire::CommandBodyUnion RunNow(const std::string& destination) {
  wire::RunBackupNowT r;
  if (!destination.empty()) r.target = std::make_unique<wire::BackupTargetT>(Target(destination));
  wire::CommandBodyUnion b;
  b.Set(std::move(r));
  return b;
}

wire::CommandBodyUnion Restore(const std::string& source_node) {
  wire::RestoreSnapshotT r;
  r.source_node = source_node;
  r.snapshot_id = "latest";
  wire::CommandBodyUnion b;
  b.Set(std::move(r));
  return b;
}

wire::CommandResultT Ok() {
  wire::CommandResultT r;
  r.status = wire::ResultStatus::Ok;
  return r;
}

wire::CommandResultT BackupOk(const std::string& snapshot_id) {
  wire::CommandResultT r = Ok();
  wire::BackupResultT b;
  b.ok = true;
  b.snapshot_id = snapshot_id;
  r.detail.Set(std::move(b));
  return r;
}

class DestinationRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto [id, role] : std::vector<std::pair<std::string, wire::Role>>{{"r1", wire::Role::Replica},
                                                                           {"r2", wire::Role::Replica},
                                                                           {"c1", wire::Role::Client},
                                                                           {"clone1", wire::Role::Replica},
                                                                           {"fresh", wire::Role::Replica}}) {
      config_.allow.push_back({id, role, GenerateCurveKeyPair(id)->public_z85});
    }
    char tmpl[] = "/tmp/lk-dest-rules-XXXXXX";
    dir_ = mkdtemp(tmpl);
    store_ = std::move(*KvStore::Open(dir_, {"nodes"}));
    registry_ = std::make_unique<NodeRegistry>(config_, store_.get(), 0);
    ASSERT_TRUE(registry_->Load(1000).ok());
    for (const char* id : {"r1", "r2", "c1", "clone1"})
      registry_->MarkSeen(*registry_->Find(id), "rid", 1000);
    registry_->Find("clone1")->clone = true;  // it said so in its Hello
    rules_ = std::make_unique<DestinationRules>(registry_.get());
  }

  void TearDown() override {
    rules_.reset();
    registry_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  NodeEntry& Node(const std::string& id) { return *registry_->Find(id); }

  std::string dir_;
  ClusterConfig config_;
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<NodeRegistry> registry_;
  std::unique_ptr<DestinationRules> rules_;
};

TEST_F(DestinationRulesTest, EachNodeGetsItsOwnDirectoryThroughTheNodePlaceholder) {
  EXPECT_TRUE(rules_->CheckUnique(Schedule("/backups/{node}"), {"r1", "r2"}).ok());
  auto r1 = DestinationRules::DestinationFor(Schedule("/backups/{node}"), "r1");
  auto r2 = DestinationRules::DestinationFor(Schedule("/backups/{node}/"), "r2");
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_NE(*r1, *r2);
  EXPECT_NE(r1->find("/backups/r1"), std::string::npos) << *r1;
}

TEST_F(DestinationRulesTest, TwoTargetsSharingOneDirectoryAreRefusedNamingBoth) {
  Status s = rules_->CheckUnique(Schedule("/backups/shared"), {"r1", "r2"});
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("r1 and r2"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("{node}"), std::string::npos) << s.message();
  // The same place written differently is still the same place.
  ASSERT_TRUE(rules_->RememberAccepted(Configure("/backups/shared"), Node("r1"), Ok()));
  EXPECT_EQ(rules_->CheckUnique(Configure("/backups//shared/"), {"r2"}).code(), StatusCode::kInvalidArgument);
}

TEST_F(DestinationRulesTest, AnotherNodesHomeOrOneOffPlaceIsTaken) {
  ASSERT_TRUE(rules_->RememberAccepted(Configure("/backups/{node}"), Node("r1"), Ok()));
  Status home = rules_->CheckUnique(Configure("/backups/r1/"), {"r2"});
  ASSERT_EQ(home.code(), StatusCode::kInvalidArgument) << home.ToString();
  EXPECT_NE(home.message().find("already used by r1"), std::string::npos) << home.message();
  // r1 itself may name its own home again.
  EXPECT_TRUE(rules_->CheckUnique(Configure("/backups/r1"), {"r1"}).ok());

  // A one-off run elsewhere makes that place r1's too.
  ASSERT_TRUE(rules_->RememberAccepted(RunNow("/elsewhere/r1"), Node("r1"), BackupOk("20260101T000000Z")));
  Status one_off = rules_->CheckUnique(RunNow("/elsewhere/r1"), {"r2"});
  EXPECT_EQ(one_off.code(), StatusCode::kInvalidArgument) << one_off.ToString();
}

TEST_F(DestinationRulesTest, CheckpointModeAndCommandsWithoutDestinationNeedNoDirectory) {
  EXPECT_EQ(
      *DestinationRules::DestinationFor(Schedule("/backups/shared", wire::BackupMode::Checkpoint), "r1"), "");
  EXPECT_TRUE(
      rules_->CheckUnique(Schedule("/backups/shared", wire::BackupMode::Checkpoint), {"r1", "r2"}).ok());
  EXPECT_TRUE(rules_->CheckUnique(RunNow(""), {"r1", "r2"}).ok());
  wire::CommandBodyUnion ping;
  ping.Set(wire::PingT{});
  EXPECT_TRUE(rules_->CheckUnique(ping, {"r1", "r2"}).ok());
}

TEST_F(DestinationRulesTest, DestinationThatDoesNotParseIsRefusedNamingTheNode) {
  Status s = rules_->CheckUnique(Configure("relative/path"), {"r2"});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("r2"), std::string::npos) << s.message();
}

TEST_F(DestinationRulesTest, RestoreOntoALiveMemberOrANodeNeverSeenIsRefused) {
  ASSERT_TRUE(rules_->RememberAccepted(Configure("/backups/{node}"), Node("r1"), Ok()));
  auto body = Restore("r1");
  Status live = rules_->PrepareRestore(body, {"r2"});
  EXPECT_EQ(live.code(), StatusCode::kFailedPrecondition) << live.ToString();
  EXPECT_NE(live.message().find("live member"), std::string::npos) << live.message();
  Status never = rules_->PrepareRestore(body, {"fresh"});
  EXPECT_EQ(never.code(), StatusCode::kFailedPrecondition) << never.ToString();
  EXPECT_NE(never.message().find("never connected"), std::string::npos) << never.message();
}

TEST_F(DestinationRulesTest, RestoreOntoACloneGetsEveryPlaceOfTheSourceHomeFirst) {
  ASSERT_TRUE(rules_->RememberAccepted(Configure("/backups/{node}"), Node("r1"), Ok()));
  ASSERT_TRUE(rules_->RememberAccepted(RunNow("/elsewhere/r1"), Node("r1"), BackupOk("20260101T000000Z")));
  auto body = Restore("r1");
  ASSERT_TRUE(rules_->PrepareRestore(body, {"clone1"}).ok());
  const auto* r = body.AsRestoreSnapshot();
  EXPECT_EQ(r->source, nullptr);
  ASSERT_EQ(r->places.size(), 2u);
  EXPECT_TRUE(r->places[0]->home);
  EXPECT_EQ(r->places[0]->target->destination, "/backups/r1");
  EXPECT_EQ(r->places[1]->target->destination, "/elsewhere/r1");
  EXPECT_EQ(r->places[1]->newest_snapshot_id, "20260101T000000Z");
}

TEST_F(DestinationRulesTest, RestoreOfASourceWithoutDestinationOrUnknownIsRefused) {
  auto none = Restore("r2");
  EXPECT_EQ(rules_->PrepareRestore(none, {"clone1"}).code(), StatusCode::kFailedPrecondition);
  auto unknown = Restore("nobody");
  EXPECT_EQ(rules_->PrepareRestore(unknown, {"clone1"}).code(), StatusCode::kNotFound);
  auto empty = Restore("");
  EXPECT_EQ(rules_->PrepareRestore(empty, {"clone1"}).code(), StatusCode::kInvalidArgument);
}

TEST_F(DestinationRulesTest, AOneOffRunNeverReplacesTheHome) {
  ASSERT_TRUE(rules_->RememberAccepted(Schedule("/backups/{node}"), Node("r1"), Ok()));
  EXPECT_EQ(Node("r1").backup_target.destination, "/backups/r1");
  ASSERT_TRUE(rules_->RememberAccepted(RunNow("/once/{node}"), Node("r1"), BackupOk("20260102T000000Z")));
  EXPECT_EQ(Node("r1").backup_target.destination, "/backups/r1");
  ASSERT_EQ(Node("r1").backup_places.size(), 2u);
  EXPECT_EQ(Node("r1").backup_places[1].target.destination, "/once/r1");
  // A run to the home records the snapshot there.
  ASSERT_TRUE(rules_->RememberAccepted(RunNow(""), Node("r1"), BackupOk("20260103T000000Z")));
  EXPECT_EQ(Node("r1").backup_places[0].newest_snapshot_id, "20260103T000000Z");
}

TEST_F(DestinationRulesTest, NothingIsRecordedForARunWithoutSnapshotOrACheckpointSchedule) {
  EXPECT_FALSE(rules_->RememberAccepted(RunNow("/once/{node}"), Node("r1"), Ok()));  // no BackupResult
  EXPECT_FALSE(rules_->RememberAccepted(RunNow(""), Node("r1"), BackupOk("20260101T000000Z")));  // no home
  EXPECT_FALSE(rules_->RememberAccepted(Schedule("", wire::BackupMode::Checkpoint), Node("r1"), Ok()));
  EXPECT_TRUE(Node("r1").backup_places.empty());
  EXPECT_TRUE(Node("r1").backup_destination.empty());
  EXPECT_TRUE(DestinationRules::RecordsPlaces(wire::CommandBody::RunBackupNow));
  EXPECT_FALSE(DestinationRules::RecordsPlaces(wire::CommandBody::GetBackupStatus));
}

TEST_F(DestinationRulesTest, AScheduledRunIsRecordedAtThePlaceItNames) {
  ASSERT_TRUE(rules_->RememberAccepted(Schedule("/backups/{node}"), Node("r1"), Ok()));
  wire::BackupResultT res;
  res.ok = true;
  res.snapshot_id = "20260104T000000Z";
  res.destination = "/backups/r1";
  EXPECT_TRUE(DestinationRules::RememberScheduledRun(Node("r1"), res));
  EXPECT_EQ(Node("r1").backup_places[0].newest_snapshot_id, "20260104T000000Z");
  res.destination = "/not/a/place/of/r1";
  EXPECT_FALSE(DestinationRules::RememberScheduledRun(Node("r1"), res));
  res.destination = "/backups/r1";
  res.ok = false;
  EXPECT_FALSE(DestinationRules::RememberScheduledRun(Node("r1"), res));
}

}  // namespace
}  // namespace ledgerkeep
