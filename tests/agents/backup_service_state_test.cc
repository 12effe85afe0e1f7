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

}  // namespace
}  // namespace ledgerkeep
