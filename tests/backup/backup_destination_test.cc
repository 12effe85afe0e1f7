// BackupDestination: what a destination may be, and how its SSH settings
// reach ssh — one argv element each, never a command line (issue 13).
#include "backup/backup_destination.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "backup/rsync.h"
#include "tests/support/temp_dir.h"

namespace ledgerkeep {
namespace {

// The element after `flag` in argv ("" if none).
std::string After(const std::vector<std::string>& argv, const std::string& flag) {
  auto it = std::find(argv.begin(), argv.end(), flag);
  return it == argv.end() || it + 1 == argv.end() ? "" : *(it + 1);
}

bool Has(const std::vector<std::string>& argv, const std::string& element) {
  return std::find(argv.begin(), argv.end(), element) != argv.end();
}

TEST(BackupDestinationTest, HostileSshKeyValueIsOneArgvElementNeverAnOption) {
  // Issue 13 point 1: this value ran `id` as root through a ProxyCommand.
  const std::string key = "/path/backup_id -o ProxyCommand='sh -c \"id > /tmp/PWNED-r4\"'";
  auto d = ParseDestination("root@backup:/b/r4", "", key, 0);
  ASSERT_TRUE(d.ok()) << d.status().ToString();  // an absolute path, as a string
  const auto argv = d->SshArgv();
  EXPECT_EQ(After(argv, "-i"), key);
  for (const auto& a : argv) {
    if (a != key) {
      EXPECT_EQ(a.find("ProxyCommand"), std::string::npos) << a;
    }
  }
  // rsync -e gets it back as the same single element.
  const std::string e = RsyncRemoteShellArg(argv);
  EXPECT_NE(e.find("'" + std::string("/path/backup_id -o ProxyCommand=''sh -c \"id > /tmp/PWNED-r4\"''") + "'"),
            std::string::npos)
      << e;
  // And it is not a file: the agent refuses it before ssh runs.
  Status files = CheckSshFiles(*d);
  EXPECT_EQ(files.code(), StatusCode::kFailedPrecondition) << files.ToString();
  EXPECT_NE(files.message().find("--ssh-key"), std::string::npos);
}

TEST(BackupDestinationTest, SshKeyPathWithSpacesIsKeptWhole) {
  auto d = ParseDestination("backup:/b/r1", "", "/tmp/probe key dir/id", 22);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(After(d->SshArgv(), "-i"), "/tmp/probe key dir/id");  // issue 13 point 13
}

TEST(BackupDestinationTest, SshKeyMustBeAnAbsolutePathWithoutControlCharactersOrExpansions) {
  for (const std::string bad : {"relative/key", "-oProxyCommand=x", "~/.ssh/id", "/k\nProxyCommand x",
                                "/keys/${HOME}/id", ""}) {
    if (bad.empty()) continue;
    auto d = ParseDestination("backup:/b/r1", "", bad, 0);
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(ValidateSshFilePath("/it's a \"key\"", "--ssh-key").ok());
  EXPECT_EQ(ValidateSshFilePath(std::string(5000, 'k').insert(0, "/"), "--ssh-key").code(),
            StatusCode::kInvalidArgument);
}

TEST(BackupDestinationTest, HostsAndUsersThatSshWouldTakeForOptionsAreRefused) {
  for (const std::string bad :
       {"-oProxyCommand=touch /tmp/x:/dir", "root@-oProxyCommand=x:/dir", "-l:/dir", "ho st:/dir",
        "h$(id):/dir", "rsync://-oX/module/dir", "rsync://h;id/module/dir", "-u@host:/dir", "a b@host:/dir"}) {
    auto d = ParseDestination(bad, "", "", 0);
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << bad << " -> " << d.status().ToString();
  }
  EXPECT_EQ(ParseDestination("backup:/d", "-oProxyCommand=x", "", 0).status().code(),
            StatusCode::kInvalidArgument);  // --rsync-user
  EXPECT_TRUE(ParseDestination("backup-1.example_x:/d", "ledger.bak", "", 0).ok());
}

TEST(BackupDestinationTest, OddCharactersInAPathAreTakenLiterally) {
  // "What held up" in issue 13: these stay plain path text.
  for (const std::string ok : {"/tmp/a;b", "/tmp/$(id)", "/tmp/a b/`id`", "/tmp/it's"}) {
    auto d = ParseDestination(ok, "", "", 0);
    ASSERT_TRUE(d.ok()) << ok;
    EXPECT_EQ(d->path, ok);
  }
}

TEST(BackupDestinationTest, OverlongPathIsAClearErrorNotACrash) {
  // Issue 13 point 4: a 5,000-byte path aborted the agent.
  auto d = ParseDestination("/tmp/" + std::string(5000, 'x'), "", "", 0);
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
  auto component = ParseDestination("/tmp/" + std::string(300, 'x') + "/r1", "", "", 0);
  EXPECT_EQ(component.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(component.status().message().find("255"), std::string::npos);
  EXPECT_TRUE(ParseDestination("/tmp/" + std::string(255, 'x'), "", "", 0).ok());
}

TEST(BackupDestinationTest, HostKeysAreCheckedStrictlyByDefault) {
  auto d = ParseDestination("backup:/b/r1", "", "", 0);
  ASSERT_TRUE(d.ok());
  const auto argv = d->SshArgv();
  EXPECT_TRUE(Has(argv, "StrictHostKeyChecking=yes"));
  EXPECT_FALSE(Has(argv, "StrictHostKeyChecking=accept-new"));
  for (const auto& a : argv) EXPECT_EQ(a.find("UserKnownHostsFile"), std::string::npos) << a;
}

TEST(BackupDestinationTest, KnownHostsAndTrustOnFirstUseComeBeforeNodeOptionsAndDefaults) {
  BackupTarget t;
  t.destination = "root@backup:/b/{node}";
  t.known_hosts = "/etc/ledgerkeep/known hosts%1";
  t.accept_new_host_key = true;
  auto d = ParseDestination(t, "r1");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->path, "/b/r1");
  const auto argv = d->SshArgv({"-o", "StrictHostKeyChecking=no"});
  // ssh takes the first value of an option: ours, then the node's, then the defaults.
  ASSERT_GE(argv.size(), 7u);
  EXPECT_EQ(argv[2], "UserKnownHostsFile=\"/etc/ledgerkeep/known hosts%%1\"");
  EXPECT_EQ(argv[4], "StrictHostKeyChecking=accept-new");
  EXPECT_EQ(argv[6], "StrictHostKeyChecking=no");
}

TEST(BackupDestinationTest, TrustOnFirstUseWithoutAFileRecordsInTheGivenOneNeverTheUsersOwn) {
  BackupTarget t;
  t.destination = "backup:/b/r1";
  t.accept_new_host_key = true;
  auto d = ParseDestination(t, "r1");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(After(d->SshArgv({}, "/agent/work/known_hosts"), "-o"), "UserKnownHostsFile=\"/agent/work/known_hosts\"");
  // The node's own known_hosts option is kept as it is.
  const auto node = d->SshArgv({"-o", "UserKnownHostsFile=/etc/kh"}, "/agent/work/known_hosts");
  EXPECT_FALSE(Has(node, "UserKnownHostsFile=\"/agent/work/known_hosts\""));
}

TEST(BackupDestinationTest, SshFilesMustBeReadableRegularFiles) {
  test::TempDir tmp("lk-dest-");
  const std::string key = tmp.path() + "/id key";
  std::ofstream(key) << "not really a key\n";
  auto d = ParseDestination("backup:/b/r1", "", key, 0);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(CheckSshFiles(*d).ok());
  d->ssh_key = tmp.path();  // a directory
  EXPECT_NE(CheckSshFiles(*d).message().find("not a regular file"), std::string::npos);
  d->ssh_key = key;
  d->known_hosts = tmp.path() + "/missing";
  EXPECT_EQ(CheckSshFiles(*d).code(), StatusCode::kFailedPrecondition);
  d->accept_new_host_key = true;  // may create it
  EXPECT_TRUE(CheckSshFiles(*d).ok());
}

}  // namespace
}  // namespace ledgerkeep
