#include "s3/s3_credentials.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>
#include <map>

#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"

namespace ledgerkeep::s3 {
namespace {

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

constexpr char kFile[] =
    "# comment\n"
    "[default]\n"
    "aws_access_key_id = DEFAULTKEY\n"
    "aws_secret_access_key = defaultsecret\n"
    "\n"
    "[backup]\n"
    "; another comment\n"
    "AWS_Access_Key_Id=BACKUPKEY\r\n"
    "aws_secret_access_key =  backup/secret+x= \n"
    "aws_session_token = tok\n"
    "region = eu-west-1\n";

TEST(CredentialsTest, TheEnvironmentComesFirst) {
  test::TempDir dir;
  Write(dir / "credentials", kFile);
  LK_ASSERT_OK_AND_ASSIGN(
      S3Credentials c,
      ResolveCredentials(Env({{"AWS_ACCESS_KEY_ID", "ENVKEY"},
                              {"AWS_SECRET_ACCESS_KEY", "envsecret"},
                              {"AWS_SESSION_TOKEN", "envtoken"},
                              {"AWS_SHARED_CREDENTIALS_FILE", dir / "credentials"}})));
  EXPECT_EQ(c.access_key_id, "ENVKEY");
  EXPECT_EQ(c.secret_access_key, "envsecret");
  EXPECT_EQ(c.session_token, "envtoken");
  EXPECT_NE(c.source.find("environment"), std::string::npos);
}

TEST(CredentialsTest, OnlyHalfAKeyPairInTheEnvironmentIsAnError) {
  auto r = ResolveCredentials(Env({{"AWS_ACCESS_KEY_ID", "ENVKEY"}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("only AWS_ACCESS_KEY_ID"), std::string::npos);
}

TEST(CredentialsTest, TheFileGivesTheDefaultProfileOrAwsProfile) {
  test::TempDir dir;
  Write(dir / "credentials", kFile);
  LK_ASSERT_OK_AND_ASSIGN(S3Credentials d, ResolveCredentials(Env({{"AWS_SHARED_CREDENTIALS_FILE", dir / "credentials"}})));
  EXPECT_EQ(d.access_key_id, "DEFAULTKEY");
  EXPECT_EQ(d.secret_access_key, "defaultsecret");
  EXPECT_EQ(d.session_token, "");
  EXPECT_EQ(d.source, "profile 'default' of " + (dir / "credentials"));

  LK_ASSERT_OK_AND_ASSIGN(S3Credentials b, ResolveCredentials(Env({{"AWS_SHARED_CREDENTIALS_FILE", dir / "credentials"},
                                                                   {"AWS_PROFILE", "backup"}})));
  EXPECT_EQ(b.access_key_id, "BACKUPKEY");
  EXPECT_EQ(b.secret_access_key, "backup/secret+x=");
  EXPECT_EQ(b.session_token, "tok");
}

TEST(CredentialsTest, HomeAwsCredentialsWhenNoFileIsNamed) {
  test::TempDir home;
  ASSERT_EQ(::mkdir((home / ".aws").c_str(), 0700), 0);
  Write(home / ".aws/credentials", kFile);
  LK_ASSERT_OK_AND_ASSIGN(S3Credentials d, ResolveCredentials(Env({{"HOME", home.path()}})));
  EXPECT_EQ(d.access_key_id, "DEFAULTKEY");
}

TEST(CredentialsTest, AMissingProfileNamesTheFileAndTheProfile) {
  test::TempDir dir;
  Write(dir / "credentials", kFile);
  auto r = ResolveCredentials(Env({{"AWS_SHARED_CREDENTIALS_FILE", dir / "credentials"}, {"AWS_PROFILE", "nope"}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(dir / "credentials"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("[nope]"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("AWS_PROFILE"), std::string::npos) << r.status().message();
}

TEST(CredentialsTest, NothingAnywhereSaysWhatToSet) {
  test::TempDir home;
  auto r = ResolveCredentials(Env({{"HOME", home.path()}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
  EXPECT_NE(r.status().message().find(home / ".aws/credentials"), std::string::npos);
  // A named file that does not exist is an error naming it.
  auto named = ResolveCredentials(Env({{"AWS_SHARED_CREDENTIALS_FILE", home / "missing"}}));
  ASSERT_FALSE(named.ok());
  EXPECT_EQ(named.status().code(), StatusCode::kNotFound);
  EXPECT_NE(named.status().message().find(home / "missing"), std::string::npos);
}

TEST(CredentialsTest, MalformedFilesAndIncompleteProfilesAreRefusedWithTheLine) {
  auto bad = ParseCredentialsFile("[default]\naws_access_key_id\n", "/f", "default");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("/f:2"), std::string::npos) << bad.status().message();
  auto header = ParseCredentialsFile("[default\n", "/f", "default");
  ASSERT_FALSE(header.ok());
  EXPECT_NE(header.status().message().find("/f:1"), std::string::npos);
  auto half = ParseCredentialsFile("[default]\naws_access_key_id = K\n", "/f", "default");
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("aws_secret_access_key"), std::string::npos);
}

TEST(CredentialsTest, NoMessageCarriesASecret) {
  auto half = ParseCredentialsFile("[p]\naws_secret_access_key = SUPERSECRET\n", "/f", "p");
  ASSERT_FALSE(half.ok());
  EXPECT_EQ(half.status().message().find("SUPERSECRET"), std::string::npos);
  auto env = ResolveCredentials(Env({{"AWS_SECRET_ACCESS_KEY", "SUPERSECRET"}}));
  ASSERT_FALSE(env.ok());
  EXPECT_EQ(env.status().message().find("SUPERSECRET"), std::string::npos);
}

}  // namespace
}  // namespace ledgerkeep::s3
