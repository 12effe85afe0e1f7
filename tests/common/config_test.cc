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
