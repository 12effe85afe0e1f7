#include "common/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/curve_keys.h"

namespace ledgerkeep {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-config-XXXXXX";
    dir_ = mkdtemp(tmpl);
    broker_ = *GenerateCurveKeyPair("broker");
    r1_ = *GenerateCurveKeyPair("r1");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& body) {
    std::string path = dir_ + "/cluster.toml";
    std::ofstream(path) << body;
    return path;
  }
  std::string Base() {
    return "[broker]\npublic_key = \"" + broker_.public_z85 + "\"\n[operator]\nkey_file = \"keys/op.key\"\n";
  }
  std::string Allow(const std::string& id, const std::string& role, const std::string& key) {
    return "[[allow]]\nnode_id = \"" + id + "\"\nrole = \"" + role + "\"\npublic_key = \"" + key + "\"\n";
  }

  std::string dir_;
  CurveKeyPair broker_, r1_;
};

TEST_F(ConfigTest, LoadsAllowlistAndResolvesRelativeKeyFile) {
  auto c = LoadClusterConfig(Write(Base() + Allow("r1", "replica", r1_.public_z85)));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->ctl_port, 7002);
  ASSERT_EQ(c->allow.size(), 1u);
  EXPECT_EQ(c->FindKey(r1_.public_z85)->node_id, "r1");
  EXPECT_EQ(c->operator_key_file, dir_ + "/keys/op.key");
  EXPECT_EQ(c->ConnectEndpoint(c->ctl_port), "tcp://127.0.0.1:7002");
}

TEST_F(ConfigTest, RefusesOneKeyBoundToTwoNodes) {
  auto c = LoadClusterConfig(Write(Base() + Allow("r1", "replica", r1_.public_z85) +
                                   Allow("r2", "replica", r1_.public_z85)));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("already bound"), std::string::npos);
}

TEST_F(ConfigTest, RefusesDuplicateNodeIdUnknownRoleAndBadKey) {
  auto other = *GenerateCurveKeyPair("x");
  EXPECT_FALSE(LoadClusterConfig(Write(Base() + Allow("r1", "replica", r1_.public_z85) +
                                       Allow("r1", "client", other.public_z85)))
                   .ok());
  auto role = LoadClusterConfig(Write(Base() + Allow("r1", "king", r1_.public_z85)));
  ASSERT_FALSE(role.ok());
  EXPECT_NE(role.status().message().find("unknown role 'king'"), std::string::npos);
  EXPECT_FALSE(LoadClusterConfig(Write(Base() + Allow("r1", "replica", "short"))).ok());
}

TEST_F(ConfigTest, MaintenanceHooksAreNamedArgvListsWithAnAbsoluteProgram) {
  auto c = LoadClusterConfig(Write(Base() + "[[hook]]\nname = \"stop-apps\"\nexec = [\"/usr/local/bin/stop\", "
                                            "\"--all\"]\ntimeout_s = 60\n\n[[hook]]\nname = \"start.apps\"\n"
                                            "exec = [\"/usr/local/bin/start\"]\n"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_NE(c->FindHook("stop-apps"), nullptr);
  EXPECT_EQ(c->FindHook("stop-apps")->exec, (std::vector<std::string>{"/usr/local/bin/stop", "--all"}));
  EXPECT_EQ(c->FindHook("stop-apps")->timeout_s, 60);
  EXPECT_EQ(c->FindHook("start.apps")->timeout_s, 300);
  EXPECT_EQ(c->FindHook("nope"), nullptr);
  for (const char* bad : {
           "[[hook]]\nname = \"x\"\nexec = \"/bin/true\"\n",                   // a string, not a list
           "[[hook]]\nname = \"x\"\nexec = [\"true\"]\n",                       // not an absolute path
           "[[hook]]\nname = \"x\"\nexec = []\n",                                 // nothing to run
           "[[hook]]\nname = \"a b\"\nexec = [\"/bin/true\"]\n",                 // not a name
           "[[hook]]\nname = \"x\"\nexec = [\"/bin/true\"]\ntimeout_s = 0\n",    // out of range
           "[[hook]]\nname = \"x\"\nexec = [\"/bin/true\"]\n[[hook]]\nname = \"x\"\nexec = [\"/bin/true\"]\n",
           "[[hook]]\nname = \"x\"\ncommand = \"/bin/true\"\n",                  // unknown key
       }) {
    auto r = LoadClusterConfig(Write(Base() + bad));
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(ValidateHookName("stop-apps").ok());
  for (const std::string& bad : std::vector<std::string>{"", "touch /tmp/x", "$(id)", "-x", "../x", std::string(65, 'a')}) {
    EXPECT_FALSE(ValidateHookName(bad).ok()) << bad;
  }
}

TEST_F(ConfigTest, MissingFileAndBadTomlSayWhatIsWrong) {
  auto missing = LoadClusterConfig(dir_ + "/nope.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  auto empty = LoadClusterConfig("");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("LEDGERKEEP_CONFIG"), std::string::npos);
  auto bad = LoadClusterConfig(Write("[broker\n"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not valid TOML"), std::string::npos);
}

TEST_F(ConfigTest, KeyFilesRoundTripAndSecretIsPrivate) {
  ASSERT_TRUE(WriteKeyFiles(dir_ + "/keys", r1_, false).ok());
  auto loaded = LoadKeyFile(dir_ + "/keys/r1.key", true);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->secret_z85, r1_.secret_z85);
  EXPECT_EQ(std::filesystem::status(dir_ + "/keys/r1.key").permissions() &
                std::filesystem::perms::others_read,
            std::filesystem::perms::none);
  EXPECT_FALSE(LoadKeyFile(dir_ + "/keys/r1.pub", true).ok());  // no secret in a .pub
  EXPECT_TRUE(LoadKeyFile(dir_ + "/keys/r1.pub", false).ok());
  auto again = WriteKeyFiles(dir_ + "/keys", r1_, false);
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists);
}

// A config with `line` added at the top level (section "") or at the start
// of [section], which is created if the base has none.
std::string WithLine(const std::string& base, const std::string& section, const std::string& line) {
  if (section.empty()) return line + "\n" + base;
  const std::string header = "[" + section + "]\n";
  const size_t at = base.find(header);
  if (at == std::string::npos) return base + header + line + "\n";
  return base.substr(0, at + header.size()) + line + "\n" + base.substr(at + header.size());
}

TEST_F(ConfigTest, WrongTypesAreConfigErrorsNamingTheFileTheKeyAndTheExpectedType) {
  struct Case {
    std::string section, line, key, expected;
  };
  const std::vector<Case> cases = {
      {"broker", "connect_host = 10", "broker.connect_host", "must be a non-empty string, got an integer 10"},
      {"broker", "ctl_port = \"7002\"", "broker.ctl_port", "must be a whole number from 1 to 65535"},
      {"broker", "cmd_port = 7001.0", "broker.cmd_port", "got a floating-point number"},
      {"broker", "bind_host = true", "broker.bind_host", "got a boolean true"},
      {"broker", "public_key = 5", "broker.public_key", "must be a string"},
      {"liveness", "heartbeat_ms = \"1000\"", "liveness.heartbeat_ms", "got a string \"1000\""},
      {"liveness", "suspect_after = 1.5", "liveness.suspect_after", "must be a whole number"},
      {"liveness", "lost_after = [10]", "liveness.lost_after", "got an array"},
      {"", "cluster_id = 7", "cluster_id", "must be a non-empty string"},
      {"", "liveness = 3", "liveness", "must be a table ([liveness])"},
      {"", "allow = \"everyone\"", "allow", "must be an array of tables ([[allow]])"},
  };
  const std::string base = Base() + Allow("r1", "replica", r1_.public_z85);
  for (const auto& c : cases) {
    // The key must not also appear in the base: replace a line of the same key.
    std::string text = c.key == "allow" ? Base() : base;
    const std::string key_name = c.line.substr(0, c.line.find(' '));
    if (size_t at = text.find("\n" + key_name + " = "); at != std::string::npos && c.section == "broker") {
      text.erase(at + 1, text.find('\n', at + 1) - at);
    }
    const std::string path = Write(WithLine(text, c.section, c.line));
    auto loaded = LoadClusterConfig(path);
    ASSERT_FALSE(loaded.ok()) << c.line << " was accepted (silently replaced by a default)";
    EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument) << loaded.status().ToString();
    const std::string& m = loaded.status().message();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find(c.key + " must be "), std::string::npos) << m;
    EXPECT_NE(m.find(c.expected), std::string::npos) << "want '" << c.expected << "' in: " << m;
  }
  // In an [[allow]] entry: the entry is named.
  auto role = LoadClusterConfig(
      Write(Base() + "[[allow]]\nnode_id = \"r1\"\nrole = 1\npublic_key = \"" + r1_.public_z85 + "\"\n"));
  ASSERT_FALSE(role.ok());
  EXPECT_NE(role.status().message().find("[[allow]] entry 1: role must be a string, got an integer 1"),
            std::string::npos)
      << role.status().ToString();
}

TEST_F(ConfigTest, OutOfRangeValuesAreRefusedNamingTheKeyAndTheRange) {
  const std::string base = Base() + Allow("r1", "replica", r1_.public_z85);
  struct Case {
    std::string section, line, want;
  };
  const std::vector<Case> cases = {
      {"broker", "ctl_port = 0",
       "broker.ctl_port must be a whole number from 1 to 65535 (a TCP port), got an integer 0"},
      {"broker", "events_port = 65536", "broker.events_port must be a whole number from 1 to 65535"},
      {"broker", "cmd_port = -1", "broker.cmd_port must be a whole number from 1 to 65535"},
      {"broker", "connect_host = \"\"", "broker.connect_host must be a non-empty string"},
      {"liveness", "heartbeat_ms = 0", "liveness.heartbeat_ms must be a whole number from 10 to"},
      {"liveness", "heartbeat_ms = 99999999999", "liveness.heartbeat_ms must be a whole number from 10 to"},
      {"liveness", "suspect_after = 0", "liveness.suspect_after must be a whole number from 1 to"},
      {"liveness", "suspect_after = 5\nlost_after = 5", "needs 1 <= suspect_after < lost_after, got 5 and 5"},
      {"broker", "cmd_port = 7002", "must be three different ports, got 7002, 7002 and 7003"},
  };
  for (const auto& c : cases) {
    auto loaded = LoadClusterConfig(Write(WithLine(base, c.section, c.line)));
    ASSERT_FALSE(loaded.ok()) << c.line << " was accepted";
    EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(loaded.status().message().find(c.want), std::string::npos)
        << "want '" << c.want << "' in: " << loaded.status().ToString();
  }
  // The limits themselves are fine.
  auto edge =
      LoadClusterConfig(Write(WithLine(WithLine(base, "broker", "cmd_port = 1\nctl_port = 65535"), "liveness",
                                       "heartbeat_ms = 10\nsuspect_after = 1\nlost_after = 2")));
  ASSERT_TRUE(edge.ok()) << edge.status().ToString();
  EXPECT_EQ(edge->cmd_port, 1);
  EXPECT_EQ(edge->ctl_port, 65535);
  EXPECT_EQ(edge->heartbeat_ms, 10);
}

TEST_F(ConfigTest, UnknownKeysAreRefusedNamingTheKeyAndWhatTheTableTakes) {
  const std::string base = Base() + Allow("r1", "replica", r1_.public_z85);
  struct Case {
    std::string section, line, want;
  };
  const std::vector<Case> cases = {
      {"broker", "ctl_prot = 7002",
       "broker.ctl_prot is not a known key (broker takes connect_host, bind_host"},
      {"liveness", "heartbeat_msec = 100", "liveness.heartbeat_msec is not a known key"},
      {"", "heartbeat_ms = 100", "heartbeat_ms is not a known key (the top level takes cluster_id, broker"},
      {"logging", "level = \"debug\"", "logging is not a known key"},
      {"operator", "keyfile = \"k\"", "operator.keyfile is not a known key (operator takes key_file)"},
  };
  for (const auto& c : cases) {
    auto loaded = LoadClusterConfig(Write(WithLine(base, c.section, c.line)));
    ASSERT_FALSE(loaded.ok()) << c.line << " was ignored";
    EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(loaded.status().message().find(c.want), std::string::npos)
        << "want '" << c.want << "' in: " << loaded.status().ToString();
  }
  auto entry =
      LoadClusterConfig(Write(Base() + Allow("r1", "replica", r1_.public_z85) + "nodeid = \"r2\"\n"));
  ASSERT_FALSE(entry.ok());
  EXPECT_NE(entry.status().message().find("[[allow]] entry 1: nodeid is not a known key"), std::string::npos)
      << entry.status().ToString();
}

TEST_F(ConfigTest, EveryKeyOfACompleteConfigIsRead) {
  const std::string text =
      "cluster_id = \"prod\"\n[broker]\nconnect_host = \"10.0.0.1\"\nbind_host = \"*\"\n"
      "cmd_port = 8001\nctl_port = 8002\nevents_port = 8003\npublic_key = \"" +
      broker_.public_z85 +
      "\"\n[operator]\nkey_file = \"/k/op.key\"\n[liveness]\nheartbeat_ms = 250\n"
      "suspect_after = 4\nlost_after = 12\n" +
      Allow("r1", "replica", r1_.public_z85);
  auto c = LoadClusterConfig(Write(text));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->cluster_id, "prod");
  EXPECT_EQ(c->connect_host, "10.0.0.1");
  EXPECT_EQ(c->bind_host, "*");
  EXPECT_EQ(c->cmd_port, 8001);
  EXPECT_EQ(c->ctl_port, 8002);
  EXPECT_EQ(c->events_port, 8003);
  EXPECT_EQ(c->operator_key_file, "/k/op.key");
  EXPECT_EQ(c->heartbeat_ms, 250);
  EXPECT_EQ(c->suspect_after, 4);
  EXPECT_EQ(c->lost_after, 12);
}

TEST_F(ConfigTest, SecretKeyFileReadableByOthersIsRefusedWithTheChmodThatFixesIt) {
  ASSERT_TRUE(WriteKeyFiles(dir_ + "/keys", r1_, false).ok());
  const std::string key = dir_ + "/keys/r1.key";
  for (mode_t mode : {0666, 0644, 0640, 0604, 0620}) {
    ASSERT_EQ(::chmod(key.c_str(), mode), 0);
    auto loaded = LoadKeyFile(key, /*need_secret=*/true);
    ASSERT_FALSE(loaded.ok()) << "a secret key file with mode " << std::oct << mode << " was used";
    EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
    char want[8];
    std::snprintf(want, sizeof want, "%04o", static_cast<unsigned>(mode));
    EXPECT_NE(loaded.status().message().find("has mode " + std::string(want)), std::string::npos)
        << loaded.status().ToString();
    EXPECT_NE(loaded.status().message().find("chmod 600 " + key), std::string::npos)
        << loaded.status().ToString();
  }
  // Owner-only modes are fine, and a public key file may be world-readable.
  for (mode_t mode : {0600, 0400}) {
    ASSERT_EQ(::chmod(key.c_str(), mode), 0);
    EXPECT_TRUE(LoadKeyFile(key, true).ok()) << std::oct << mode;
  }
  ASSERT_EQ(::chmod((dir_ + "/keys/r1.pub").c_str(), 0644), 0);
  EXPECT_TRUE(LoadKeyFile(dir_ + "/keys/r1.pub", /*need_secret=*/false).ok());
}

}  // namespace
}  // namespace ledgerkeep
