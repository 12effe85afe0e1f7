#include "broker/command_tracker.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace ledgerkeep {
namespace {

class CommandTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-cmd-XXXXXX";
    dir_ = mkdtemp(tmpl);
    store_ = std::move(*KvStore::Open(dir_, {"commands", "targets"}));
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string Envelope(uint64_t id) {
    wire::CommandT c;
    c.cmd_id = id;
    c.deadline_ms = 5000;
    c.targets = {"r1", "r2"};
    c.body.Set(wire::PingT{});
    wire::BodyUnion b;
    b.Set(std::move(c));
    return BuildEnvelope(EnvelopeHeader{"broker"}, std::move(b));
  }
  std::string dir_;
  std::unique_ptr<KvStore> store_;
};

TEST_F(CommandTrackerTest, FinishesWhenEveryTargetIsDone) {
  CommandTracker t(store_.get(), 0, 1, {});
  KvStore::Batch b;
  CommandEntry& c = t.Add(b, 1, wire::CommandBody::Ping, Envelope(1), "cmd.all", 0, 5000, "op", {"r1", "r2"});
  EXPECT_EQ(t.PendingFor("r1").size(), 1u);
  EXPECT_TRUE(t.OnAck(b, c, "r1", true, "", 10));
  EXPECT_TRUE(t.PendingFor("r1").empty());
  EXPECT_FALSE(t.OnAck(b, c, "r1", true, "", 11));  // duplicate ack changes nothing
  wire::CommandResultT ok;
  ok.cmd_id = 1;
  EXPECT_TRUE(t.OnResult(b, c, "r1", ok, 20));
  EXPECT_FALSE(t.UpdateFinished(c));
  EXPECT_TRUE(t.OnAck(b, c, "r2", false, "busy", 30));  // a refusal completes the target
  EXPECT_TRUE(t.UpdateFinished(c));
  auto st = CommandTracker::StatusOf(c);
  EXPECT_TRUE(st.finished);
  ASSERT_EQ(st.targets.size(), 2u);
  EXPECT_EQ(st.targets[1]->result->status, wire::ResultStatus::Rejected);
  EXPECT_EQ(st.targets[1]->result->message, "busy");
}

TEST_F(CommandTrackerTest, PendingCommandsSurviveARestart) {
  {
    CommandTracker t(store_.get(), 0, 1, {});
    KvStore::Batch b;
    CommandEntry& c =
        t.Add(b, 7, wire::CommandBody::Ping, Envelope(7), "cmd.all", 0, 5000, "op", {"r1", "r2"});
    t.OnAck(b, c, "r1", true, "", 10);
    ASSERT_TRUE(store_->Write(b, true).ok());
  }
  CommandTracker t(store_.get(), 0, 1, {});
  auto next = t.Load();
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(*next, 8u);
  CommandEntry* c = t.Find(7);
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->finished);
  EXPECT_EQ(c->targets.at("r1").state, wire::TargetState::Acked);
  EXPECT_EQ(t.PendingFor("r2").size(), 1u);
  EXPECT_TRUE(t.PendingFor("r1").empty());
}

}  // namespace
}  // namespace ledgerkeep
