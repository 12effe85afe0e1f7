// BackupService's persisted state (config.json, state.json) read back at
// start: a file edited by hand or by another version, with a field of the
// wrong type, is a Corruption naming where it is, not an exception that
// aborts the agent before it serves.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agents/backup_service.h"
#include "common/file_util.h"

namespace ledgerkeep {
namespace {

class BackupServiceStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-bsvc-XXXXXX";
    dir_ = mkdtemp(tmpl);
    ASSERT_TRUE(CreateDirectories(dir_ + "/backup", 0700).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  Status Load() {
    BackupServiceOptions o;
    o.node_id = "r1";
    o.data_dir = dir_;
    BackupService service(std::move(o));
    return service.Load();
  }
  std::string dir_;
};

TEST_F(BackupServiceStateTest, APersistedConfigWithAFieldOfTheWrongTypeIsCorruptionNotACrash) {
  std::ofstream(dir_ + "/backup/config.json") << R"({"mode": 5, "scheduled": "yes"})";
  Status s = Load();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find(dir_ + "/backup"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("move them aside"), std::string::npos) << s.ToString();
}

TEST_F(BackupServiceStateTest, APersistedLastResultWithAFieldOfTheWrongTypeIsCorruptionNotACrash) {
  std::ofstream(dir_ + "/backup/state.json") << R"({"last": {"snapshot_id": 17, "ok": true}})";
  Status s = Load();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
}

// The agent's metrics start from these after a restart (issue 16).
TEST_F(BackupServiceStateTest, HistoryIsEmptyBeforeAnyRunAndReadsTheEndOfOlderStateFiles) {
  {
    BackupServiceOptions o;
    o.node_id = "r1";
    o.data_dir = dir_;
    BackupService service(std::move(o));
    ASSERT_TRUE(service.Load().ok());
    const BackupHistory h = service.History();
    EXPECT_FALSE(h.last.has_value());
    EXPECT_FALSE(h.last_ok.has_value());
  }
  // A state.json written before finished_at_ms was recorded: the end is the
  // time in the snapshot id plus the run's duration.
  std::ofstream(dir_ + "/backup/state.json")
      << R"({"last": {"snapshot_id": "", "ok": false, "error_code": 5, "finished_at_ms": 1700000100000},)"
      << R"( "last_ok": {"snapshot_id": "20231114T221320.000Z", "ok": true, "duration_ms": 2500, "snapshot_count": 3,)"
      << R"( "finished_at_ms": 0}})";
  BackupServiceOptions o;
  o.node_id = "r1";
  o.data_dir = dir_;
  BackupService service(std::move(o));
  ASSERT_TRUE(service.Load().ok());
  const BackupHistory h = service.History();
  ASSERT_TRUE(h.last.has_value());
  EXPECT_FALSE(h.last->result.ok);
  EXPECT_EQ(h.last->result.error_code, StatusCode::kUnavailable);
  EXPECT_EQ(h.last->finished_at_ms, 1700000100000);
  ASSERT_TRUE(h.last_ok.has_value());
  EXPECT_EQ(h.last_ok->finished_at_ms, 1700000000000 + 2500);
  EXPECT_EQ(h.last_ok->result.snapshot_count, 3u);
}

}  // namespace
}  // namespace ledgerkeep
