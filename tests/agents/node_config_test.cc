#include "agents/node_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace ledgerkeep {
namespace {

class NodeConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-nodecfg-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& body) {
    std::ofstream(dir_ + "/node.toml") << body;
    return dir_ + "/node.toml";
  }
  std::string dir_;
};

TEST_F(NodeConfigTest, ParsesManagedAndExternalComponentsAndResolvesPaths) {
  auto c = LoadNodeConfig(Write(R"(
[ledger]
db = "data/db"
control = "/run/ledgerd.sock"
[[component]]
name = "ledgerd"
exec = ["ledgerd", "--db", "data/db"]
stop_timeout_s = 5
[[component]]
name = "concord"
start = ["docker", "start", "concord"]
stop = ["docker", "stop", "concord"]
status = ["docker", "inspect", "concord"]
)"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->ledger_db, dir_ + "/data/db");
  EXPECT_EQ(c->ledger_control, "/run/ledgerd.sock");
  ASSERT_EQ(c->components.size(), 2u);
  EXPECT_TRUE(c->components[0].managed());
  EXPECT_EQ(c->components[0].stop_timeout_ms, 5000);
  EXPECT_FALSE(c->components[1].managed());
}

TEST_F(NodeConfigTest, RefusesAmbiguousOrIncompleteComponents) {
  auto both = LoadNodeConfig(Write("[[component]]\nname='x'\nexec=['a']\nstart=['b']\nstop=['c']\n"));
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("pick managed or external"), std::string::npos);
  auto partial = LoadNodeConfig(Write("[[component]]\nname='x'\nstart=['b']\n"));
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.status().message().find("needs exec"), std::string::npos);
  EXPECT_FALSE(LoadNodeConfig(Write("[[component]]\nname='x'\nexec='notalist'\n")).ok());
  EXPECT_FALSE(LoadNodeConfig(dir_ + "/missing.toml").ok());
}

TEST_F(NodeConfigTest, BackupTransferStreamsDefaultsToTwoAndRefusesOutOfRange) {
  auto none = LoadNodeConfig(Write("[ledger]\ndb = 'db'\n"));
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->backup_transfer_streams, 2);
  auto four = LoadNodeConfig(Write("[backup]\ntransfer_streams = 4\n"));
  ASSERT_TRUE(four.ok()) << four.status().ToString();
  EXPECT_EQ(four->backup_transfer_streams, 4);
  for (const char* bad : {"0", "9", "'two'", "1.5"}) {
    auto c = LoadNodeConfig(Write(std::string("[backup]\ntransfer_streams = ") + bad + "\n"));
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("transfer_streams must be"), std::string::npos)
        << c.status().ToString();
  }
}

TEST_F(NodeConfigTest, BackupFlushAsWrittenDefaultsToOnAndRefusesANonBoolean) {
  auto none = LoadNodeConfig(Write("[ledger]\ndb = 'db'\n"));
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->backup_flush_as_written);
  auto off = LoadNodeConfig(Write("[backup]\nflush_as_written = false\n"));
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_FALSE(off->backup_flush_as_written);
  for (const char* bad : {"0", "'no'", "1.5"}) {
    auto c = LoadNodeConfig(Write(std::string("[backup]\nflush_as_written = ") + bad + "\n"));
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("flush_as_written must be true or false"), std::string::npos)
        << c.status().ToString();
  }
}

}  // namespace
}  // namespace ledgerkeep
