#include "agents/agent_journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace ledgerkeep {
namespace {

class AgentJournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-journal-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(AgentJournalTest, AcceptedButUnfinishedCommandIsInterruptedAfterRestart) {
  {
    auto j = AgentJournal::OpenDurable(dir_);
    ASSERT_TRUE(j.ok());
    ASSERT_TRUE((*j)->Accept(5, {1, "ack5"}).ok());
    ASSERT_TRUE((*j)->Accept(6, {2, "ack6"}).ok());
    ASSERT_TRUE((*j)->Complete(6, "result6", {3, "res6"}).ok());
  }  // "crash"
  auto j = AgentJournal::OpenDurable(dir_);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)->last_seq(), 3u);
  EXPECT_EQ(*(*j)->Interrupted(), std::vector<uint64_t>{5});
  auto six = (*j)->GetCommand(6);
  ASSERT_TRUE(six.ok() && six->has_value());
  EXPECT_TRUE((*six)->done);
  EXPECT_EQ((*six)->result, "result6");
}

TEST_F(AgentJournalTest, OutboxKeepsReportsUntilAcked) {
  auto j = std::move(*AgentJournal::OpenDurable(dir_));
  for (uint64_t s = 1; s <= 5; ++s) ASSERT_TRUE(j->Append({s, "r" + std::to_string(s)}).ok());
  ASSERT_TRUE(j->AckUpTo(3).ok());
  auto rest = j->Unacked(0);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ((*rest)[0].seq, 4u);
  EXPECT_EQ((*rest)[1].envelope, "r5");
}

TEST(MemoryJournalTest, BehavesLikeTheDurableOne) {
  auto j = AgentJournal::InMemory();
  ASSERT_TRUE(j->Accept(1, {1, "a"}).ok());
  ASSERT_TRUE(j->Complete(1, "res", {2, "b"}).ok());
  EXPECT_TRUE((*j->GetCommand(1))->done);
  ASSERT_TRUE(j->AckUpTo(1).ok());
  EXPECT_EQ(j->Unacked(0)->size(), 1u);
  EXPECT_EQ(j->last_seq(), 2u);
}

}  // namespace
}  // namespace ledgerkeep
