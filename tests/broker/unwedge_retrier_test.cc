// The needs-unwedge list's persistence (broker/unwedge_retrier.h); its
// retries against a real cluster are in tests/integration/maintenance_test.cc.
#include "broker/unwedge_retrier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "broker/workflow.h"
#include "tests/support/status_macros.h"

namespace ledgerkeep {
namespace {

class UnwedgeRetrierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-unwedge-XXXXXX";
    dir_ = mkdtemp(tmpl);
    Open();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open() {
    store_.reset();
    auto s = KvStore::Open(dir_, {"workflows"});
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  std::string dir_;
  std::unique_ptr<KvStore> store_;
};

TEST_F(UnwedgeRetrierTest, TheListSurvivesABrokerRestart) {
  {
    UnwedgeRetrier r(store_.get(), 0, Clock::System());
    LK_ASSERT_OK(r.Load());
    LK_ASSERT_OK_AND_ASSIGN(bool added, r.Add("r3", "its unwedge in workflow 7 failed: timeout", 7));
    EXPECT_TRUE(added);
    LK_ASSERT_OK_AND_ASSIGN(added, r.Add("r3", "lost when workflow 8 unwedged the replicas", 8));
    EXPECT_FALSE(added) << "already on the list";
    LK_ASSERT_OK_AND_ASSIGN(added, r.Add("r4", "lost", 8));
    LK_ASSERT_OK_AND_ASSIGN(bool removed, r.Remove("r4"));
    EXPECT_TRUE(removed);
    LK_ASSERT_OK_AND_ASSIGN(removed, r.Remove("r4"));
    EXPECT_FALSE(removed);
  }
  Open();
  UnwedgeRetrier again(store_.get(), 0, Clock::System());
  LK_ASSERT_OK(again.Load());
  auto list = again.List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].node, "r3");
  EXPECT_EQ(list[0].reason, "lost when workflow 8 unwedged the replicas");
  EXPECT_EQ(list[0].run_id, 8u);
  EXPECT_GT(list[0].since_ms, 0);
  EXPECT_EQ(list[0].next_attempt_mono_ms, 0) << "due at once after a restart";
}

// The list shares the workflows' column family: a workflow manager loading
// its records must not take an entry for a workflow to resume.
TEST_F(UnwedgeRetrierTest, WorkflowRecordsAndTheListShareAColumnFamilyWithoutMixingUp) {
  {
    UnwedgeRetrier r(store_.get(), 0, Clock::System());
    LK_ASSERT_OK(r.Load());
    LK_ASSERT_OK(r.Add("r3", "timeout", 1).status());
  }
  WorkflowManager manager(store_.get(), 0, nullptr, "inproc://unused", ClusterConfig{}, Clock::System());
  LK_ASSERT_OK(manager.Load());
  EXPECT_FALSE(manager.Latest().has_value()) << "a needs-unwedge entry was loaded as a workflow record";
  ASSERT_EQ(manager.unwedge_retrier().List().size(), 1u);
  EXPECT_EQ(manager.unwedge_retrier().List()[0].node, "r3");
}

// Pause() waits only for an attempt in flight; with none it returns at once,
// and nested pauses need as many resumes.
TEST_F(UnwedgeRetrierTest, PauseReturnsAtOnceWithNoAttemptInFlight) {
  UnwedgeRetrier r(store_.get(), 0, Clock::System());
  LK_ASSERT_OK(r.Load());
  r.Pause();
  r.Pause();
  r.Resume();
  r.Resume();
  r.Resume();  // one too many: harmless
}

}  // namespace
}  // namespace ledgerkeep
