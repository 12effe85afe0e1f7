#include "common/node_config.h"

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

TEST_F(NodeConfigTest, BackupBwlimitIsASizePerSecondAndBackgroundIsOffByDefault) {
  auto none = LoadNodeConfig(Write("[ledger]\ndb = 'db'\n"));
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->backup_bwlimit_bytes_per_s, 0u);
  EXPECT_FALSE(none->backup_background);
  auto set = LoadNodeConfig(Write("[backup]\nbwlimit = '20M'\nbackground = true\n"));
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->backup_bwlimit_bytes_per_s, 20u << 20);
  EXPECT_TRUE(set->backup_background);
  for (const char* bad : {"'20MB'", "'-1'", "'0'", "' 20M'", "20"}) {
    auto c = LoadNodeConfig(Write(std::string("[backup]\nbwlimit = ") + bad + "\n"));
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("bwlimit"), std::string::npos) << c.status().ToString();
  }
}

TEST_F(NodeConfigTest, WrongTypesAreConfigErrorsNamingTheFileTheKeyAndTheExpectedType) {
  struct Case {
    std::string text, want;
  };
  const std::vector<Case> cases = {
      {"[ledger]\ndb = 5\n", "ledger.db must be a string, got an integer 5"},
      {"[ledger]\ncontrol = ['a']\n", "ledger.control must be a string, got an array"},
      {"ledger = 'db'\n", "ledger must be a table ([ledger]), got a string"},
      {"[backup]\nssh_options = '-o X'\n", "backup.ssh_options must be an array of strings, got a string"},
      {"[backup]\nssh_options = ['-o', 1]\n",
       "backup.ssh_options must be an array of strings, but element 2"},
      {"[client]\npaths = '/etc'\n", "client.paths must be an array of strings"},
      {"[[component]]\nname = 'x'\nexec = ['a']\nstop_timeout_s = '30'\n",
       "[[component]] entry 1: stop_timeout_s must be a whole number from 1 to 86400"},
      {"[[component]]\nname = 'x'\nexec = ['a']\nstop_timeout_s = 0\n",
       "[[component]] entry 1: stop_timeout_s must be a whole number from 1 to 86400"},
      {"[[component]]\nname = 'x'\nexec = ['a']\nstop_timeout_s = -5\n", "stop_timeout_s must be"},
      {"[[component]]\nname = 7\nexec = ['a']\n", "[[component]] entry 1: name must be a string"},
      {"component = 'x'\n", "component must be an array of tables ([[component]])"},
  };
  for (const auto& c : cases) {
    const std::string path = Write(c.text);
    auto loaded = LoadNodeConfig(path);
    ASSERT_FALSE(loaded.ok()) << c.text << " was accepted";
    EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(loaded.status().message().find("node config " + path + ": "), std::string::npos)
        << loaded.status().ToString();
    EXPECT_NE(loaded.status().message().find(c.want), std::string::npos)
        << "want '" << c.want << "' in: " << loaded.status().ToString();
  }
}

TEST_F(NodeConfigTest, UnknownKeysAreRefusedNamingTheKey) {
  struct Case {
    std::string text, want;
  };
  const std::vector<Case> cases = {
      {"[ledger]\ndbpath = 'db'\n", "ledger.dbpath is not a known key (ledger takes db, control)"},
      {"[backup]\ntransfer_stream = 4\n", "backup.transfer_stream is not a known key"},
      {"[client]\npath = ['/etc']\n", "client.path is not a known key (client takes paths)"},
      {"[[component]]\nname = 'x'\nexec = ['a']\nstop_timeout = 5\n",
       "[[component]] entry 1: stop_timeout is not a known key"},
      {"[ledgr]\ndb = 'db'\n",
       "ledgr is not a known key (the top level takes ledger, backup, http, client, component)"},
  };
  for (const auto& c : cases) {
    auto loaded = LoadNodeConfig(Write(c.text));
    ASSERT_FALSE(loaded.ok()) << c.text << " was ignored";
    EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(loaded.status().message().find(c.want), std::string::npos)
        << "want '" << c.want << "' in: " << loaded.status().ToString();
  }
}

// The writer `ledgerkeep config init` uses: what it writes loads back as the
// same config, whatever the strings hold.
TEST_F(NodeConfigTest, WrittenConfigsLoadBackAsWritten) {
  NodeConfig replica;
  replica.ledger_db = dir_ + "/data/r1/db";
  replica.ledger_control = dir_ + "/data/r1/ledgerd.sock";
  ComponentSpec ledgerd;
  ledgerd.name = "ledgerd";
  ledgerd.exec = {"/usr/bin/ledgerd", "--db", "/a b/it's \"db\"\n[client]", "--x", "$(touch /tmp/x)"};
  ledgerd.stop_timeout_ms = 20'000;
  replica.components.push_back(ledgerd);
  ComponentSpec external;
  external.name = "concord";
  external.start = {"docker", "start", "concord"};
  external.stop = {"docker", "stop", "concord"};
  external.status = {"docker", "inspect", "-f", "{{.State.Running}}", "concord"};
  external.stop_timeout_ms = 60'000;
  replica.components.push_back(external);
  replica.backup_ssh_options = {"-o", "UserKnownHostsFile=/etc/ledgerkeep/known_hosts"};
  replica.backup_transfer_streams = 4;
  replica.backup_flush_as_written = false;
  replica.backup_bwlimit_bytes_per_s = 20 << 20;
  replica.backup_background = true;

  NodeConfig client;
  ComponentSpec api;
  api.name = "ledger-api";
  api.exec = {"/bin/sh", "-c", "echo \"$1\"", "ledger-api", "/data/c1/client/db"};
  api.stop_timeout_ms = 10'000;
  client.components.push_back(api);
  client.client_paths = {"/data/c1/client/config", "/data/c1/client/db"};

  NodeConfig empty;
  for (const NodeConfig* want : {&replica, &client, &empty}) {
    const std::string text = NodeConfigToml(*want, "generated by a test\nsecond line");
    EXPECT_EQ(text.rfind("# generated by a test\n# second line\n", 0), 0u) << text;
    auto got = LoadNodeConfig(Write(text));
    ASSERT_TRUE(got.ok()) << got.status().ToString() << "\n" << text;
    EXPECT_EQ(got->ledger_db, want->ledger_db);
    EXPECT_EQ(got->ledger_control, want->ledger_control);
    ASSERT_EQ(got->components.size(), want->components.size()) << text;
    for (size_t i = 0; i < want->components.size(); ++i) {
      EXPECT_EQ(got->components[i].name, want->components[i].name);
      EXPECT_EQ(got->components[i].exec, want->components[i].exec);
      EXPECT_EQ(got->components[i].start, want->components[i].start);
      EXPECT_EQ(got->components[i].stop, want->components[i].stop);
      EXPECT_EQ(got->components[i].status, want->components[i].status);
      EXPECT_EQ(got->components[i].stop_timeout_ms, want->components[i].stop_timeout_ms);
    }
    EXPECT_EQ(got->backup_ssh_options, want->backup_ssh_options);
    EXPECT_EQ(got->backup_transfer_streams, want->backup_transfer_streams);
    EXPECT_EQ(got->backup_flush_as_written, want->backup_flush_as_written);
    EXPECT_EQ(got->backup_bwlimit_bytes_per_s, want->backup_bwlimit_bytes_per_s);
    EXPECT_EQ(got->backup_background, want->backup_background);
    EXPECT_EQ(got->client_paths, want->client_paths);
  }
  // Defaults are left out: a file says what differs.
  EXPECT_EQ(NodeConfigToml(client, "").find("[backup]"), std::string::npos);
}

}  // namespace
}  // namespace ledgerkeep
