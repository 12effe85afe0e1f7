#include "broker/node_registry.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/curve_keys.h"

namespace ledgerkeep {
namespace {

class NodeRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-reg-XXXXXX";
    dir_ = mkdtemp(tmpl);
    config_.heartbeat_ms = 100;
    config_.suspect_after = 3;
    config_.lost_after = 10;
    config_.allow.push_back({"r1", wire::Role::Replica, GenerateCurveKeyPair("r1")->public_z85});
    config_.allow.push_back({"c1", wire::Role::Client, GenerateCurveKeyPair("c1")->public_z85});
    config_.allow.push_back({"op", wire::Role::Operator, GenerateCurveKeyPair("op")->public_z85});
    store_ = std::move(*KvStore::Open(dir_, {"nodes"}));
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string dir_;
  ClusterConfig config_;
  std::unique_ptr<KvStore> store_;
};

TEST_F(NodeRegistryTest, AllowlistedAgentsAreKnownBeforeTheyConnect) {
  NodeRegistry reg(config_, store_.get(), 0);
  ASSERT_NE(reg.Find("r1"), nullptr);
  EXPECT_EQ(reg.Find("r1")->state, wire::NodeState::Unknown);
  EXPECT_EQ(reg.Find("op"), nullptr);  // operators are not agent nodes
  EXPECT_EQ(reg.IdsWithRole(wire::Role::Client), std::vector<std::string>{"c1"});
}

TEST_F(NodeRegistryTest, GoesAliveSuspectLostAndBack) {
  NodeRegistry reg(config_, store_.get(), 0);
  NodeEntry& r1 = *reg.Find("r1");
  auto t = reg.MarkSeen(r1, "rid", 1000);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, wire::NodeState::Alive);
  EXPECT_TRUE(reg.Tick(1250).empty());  // 2.5 beats: still alive
  auto s = reg.Tick(1350);              // > 3 beats
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].to, wire::NodeState::Suspect);
  auto l = reg.Tick(2050);  // > 10 beats
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].from, wire::NodeState::Suspect);
  EXPECT_EQ(l[0].to, wire::NodeState::Lost);
  auto back = reg.MarkSeen(r1, "rid2", 2100);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->from, wire::NodeState::Lost);
}

TEST_F(NodeRegistryTest, ReportSeqSurvivesARestart) {
  {
    NodeRegistry reg(config_, store_.get(), 0);
    NodeEntry& r1 = *reg.Find("r1");
    reg.MarkSeen(r1, "rid", 1000);
    r1.last_report_seq = 77;
    KvStore::Batch b;
    reg.Persist(b, r1);
    ASSERT_TRUE(store_->Write(b, true).ok());
  }
  NodeRegistry reg(config_, store_.get(), 0);
  ASSERT_TRUE(reg.Load(5000).ok());
  EXPECT_EQ(reg.Find("r1")->last_report_seq, 77u);
  // A restarted broker gives known nodes a grace period instead of calling
  // them lost at once.
  EXPECT_EQ(reg.Find("r1")->state, wire::NodeState::Suspect);
  EXPECT_TRUE(reg.Tick(5100).empty());
}

TEST_F(NodeRegistryTest, ClonesAreLeftOutOfRoleTargetingAndKeepTheirBackupSourceAcrossARestart) {
  config_.allow.push_back({"clone1", wire::Role::Replica, GenerateCurveKeyPair("clone1")->public_z85});
  {
    NodeRegistry reg(config_, store_.get(), 0);
    NodeEntry& clone = *reg.Find("clone1");
    clone.clone = true;  // said so in its Hello
    NodeEntry& r1 = *reg.Find("r1");
    r1.backup_target.destination = "backup@nas:/backups/r1";
    r1.backup_target.ssh_port = 2222;
    KvStore::Batch b;
    reg.Persist(b, clone);
    reg.Persist(b, r1);
    ASSERT_TRUE(store_->Write(b, true).ok());
    EXPECT_EQ(reg.IdsWithRole(wire::Role::Replica), std::vector<std::string>{"r1"});
    EXPECT_EQ(reg.IdsWithRole(wire::Role::Unknown), (std::vector<std::string>{"c1", "r1"}));
  }
  NodeRegistry reg(config_, store_.get(), 0);
  ASSERT_TRUE(reg.Load(5000).ok());
  EXPECT_TRUE(reg.Find("clone1")->clone);
  EXPECT_EQ(reg.IdsWithRole(wire::Role::Replica), std::vector<std::string>{"r1"});
  EXPECT_EQ(reg.Find("r1")->backup_target.destination, "backup@nas:/backups/r1");
  EXPECT_EQ(reg.Find("r1")->backup_target.ssh_port, 2222);
}

}  // namespace
TEST_F(NodeRegistryTest, NodeIndexesAreAssignedOnceAndNeverReused) {
  uint32_t r1 = 0, c1 = 0;
  {
    NodeRegistry reg(config_, store_.get(), 0);
    ASSERT_TRUE(reg.Load(1000).ok());
    r1 = reg.Find("r1")->index;
    c1 = reg.Find("c1")->index;
    EXPECT_GE(r1, 1u);
    EXPECT_GE(c1, 1u);
    EXPECT_NE(r1, c1);
  }
  // The allowlist changes: c1 leaves, r2 joins (sorted before r1's slot
  // would be, if indexes came from positions). Known nodes keep their index
  // and the newcomer never gets the one c1 had.
  config_.allow.erase(config_.allow.begin() + 1);
  config_.allow.insert(config_.allow.begin(),
                       {"a0", wire::Role::Replica, GenerateCurveKeyPair("a0")->public_z85});
  NodeRegistry reg(config_, store_.get(), 0);
  ASSERT_TRUE(reg.Load(2000).ok());
  EXPECT_EQ(reg.Find("r1")->index, r1);
  ASSERT_NE(reg.Find("a0"), nullptr);
  EXPECT_NE(reg.Find("a0")->index, r1);
  EXPECT_NE(reg.Find("a0")->index, c1);
  EXPECT_GT(reg.Find("a0")->index, std::max(r1, c1));
}

TEST_F(NodeRegistryTest, APersistedRecordWithAFieldOfTheWrongTypeIsCorruptionNotACrash) {
  ASSERT_TRUE(store_->Put(0, "r1", R"({"index": "one", "version": 7})", true).ok());
  NodeRegistry reg(config_, store_.get(), 0);
  Status s = reg.Load(1000);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("broker state for node 'r1' is unreadable"), std::string::npos) << s.ToString();
}

TEST_F(NodeRegistryTest, StringsThatAreNotUtf8ArePersistedReplacedInsteadOfThrowing) {
  NodeRegistry reg(config_, store_.get(), 0);
  ASSERT_TRUE(reg.Load(1000).ok());
  NodeEntry& r1 = *reg.Find("r1");
  r1.version = "1.0\xff\xfe";  // from an agent's Hello: nothing makes it UTF-8
  r1.backup_target.destination = "/backups/\xc3(";
  KvStore::Batch b;
  reg.Persist(b, r1);
  ASSERT_TRUE(store_->Write(b, true).ok());
  NodeRegistry again(config_, store_.get(), 0);
  ASSERT_TRUE(again.Load(2000).ok());
  EXPECT_EQ(again.Find("r1")->version, "1.0\xEF\xBF\xBD\xEF\xBF\xBD");  // U+FFFD twice
}

}  // namespace ledgerkeep
