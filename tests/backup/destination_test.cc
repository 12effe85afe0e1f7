// One contract, run against every real Destination: a local temp dir, the
// test sshd on loopback (as root, into a local dir) and an rsync daemon.
// Each place is on this machine, so the test checks what each operation did
// on disk through `view_`, the destination's directory as a local path.
#include "backup/destination.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "backup/backup_engine.h"
#include "tests/common/sshd_fixture.h"
#include "tests/support/status_macros.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/transfer_fakes.h"

namespace ledgerkeep {
namespace {

enum class Place { kLocal, kSsh, kRsyncDaemon };

std::string NameOf(const ::testing::TestParamInfo<Place>& info) {
  switch (info.param) {
    case Place::kLocal: return "Local";
    case Place::kSsh: return "Ssh";
    case Place::kRsyncDaemon: return "RsyncDaemon";
  }
  return "Unknown";
}

constexpr const char* kId1 = "20261125T093012.123Z";
constexpr const char* kId2 = "20261126T093012.123Z";

class DestinationContractTest : public ::testing::TestWithParam<Place> {
 protected:
  void SetUp() override {
    context_.runner = ProcessRunner::Real();
    context_.work_dir = tmp_.path() + "/work";
    context_.max_attempts = 1;
    context_.io_timeout_s = 20;
    Result<BackupDestination> where = Status::Internal("unset");
    switch (GetParam()) {
      case Place::kLocal:
        view_ = tmp_.path() + "/backups/r1";
        where = ParseDestination(view_, "", "", 0);
        break;
      case Place::kSsh:
        if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
        sshd_ = std::make_unique<testing::SshdServer>();
        ASSERT_TRUE(sshd_->Start().ok());
        view_ = tmp_.path() + "/backups/r1";
        where = ParseDestination("root@127.0.0.1:" + view_, "", sshd_->client_key(),
                                 static_cast<uint16_t>(sshd_->port()));
        context_.ssh_options = {"-o", "UserKnownHostsFile=" + sshd_->dir() + "/known_hosts", "-o",
                                "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR"};
        break;
      case Place::kRsyncDaemon:
        daemon_ = std::make_unique<test::RsyncDaemon>();
        ASSERT_TRUE(daemon_->Start(tmp_.path() + "/rsyncd").ok());
        view_ = daemon_->module_dir() + "/r1";
        where = ParseDestination("rsync://127.0.0.1:" + std::to_string(daemon_->port()) + "/backup/r1", "", "", 0);
        break;
    }
    ASSERT_TRUE(where.ok()) << where.status().ToString();
    where_ = *where;
    auto d = MakeDestination(where_, context_);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    dest_ = std::move(*d);
  }

  // A second Destination at the same place, as another node would have.
  std::unique_ptr<Destination> Another() {
    DestinationContext c = context_;
    c.work_dir = tmp_.path() + "/work2";
    auto d = MakeDestination(where_, c);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? std::move(*d) : nullptr;
  }

  // A local directory with two files to ship.
  std::string SourceDir() {
    const std::string src = tmp_.path() + "/src";
    std::filesystem::create_directories(src);
    std::ofstream(src + "/000001.sst") << std::string(200 * 1024, 'a');
    std::ofstream(src + "/CURRENT") << "MANIFEST-000002\n";
    return src;
  }

  static mode_t ModeOf(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
  }

  test::TempDir tmp_{"lk-dest-"};
  std::unique_ptr<testing::SshdServer> sshd_;
  std::unique_ptr<test::RsyncDaemon> daemon_;
  DestinationContext context_;
  BackupDestination where_;
  std::string view_;  // the destination's directory on this machine
  std::unique_ptr<Destination> dest_;
};

TEST_P(DestinationContractTest, FirstClaimWritesTheMarkerAndAnotherNodeIsToldWhoOwnsIt) {
  auto first = dest_->Claim("test r1", "");
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->owner, "test r1");
  EXPECT_TRUE(first->claimed_now);
  EXPECT_EQ(test::ReadFile(view_ + "/.ledgerkeep-owner"), "test r1\n");

  auto again = dest_->Claim("test r1", "");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->owner, "test r1");
  EXPECT_FALSE(again->claimed_now);

  auto other = Another();
  ASSERT_NE(other, nullptr);
  auto theirs = other->Claim("test r2", "");
  ASSERT_TRUE(theirs.ok()) << theirs.status().ToString();
  EXPECT_EQ(theirs->owner, "test r1");
  EXPECT_FALSE(theirs->claimed_now);
  EXPECT_EQ(test::ReadFile(view_ + "/.ledgerkeep-owner"), "test r1\n") << "the marker was overwritten";
}

TEST_P(DestinationContractTest, SmallFilesRoundTripPrivatelyAndAMissingOneIsNotFound) {
  auto missing = dest_->ReadSmallFile("snapshots/x/MANIFEST.json");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().ToString();

  const std::string small = "{\"snapshot\": 1}\n";
  ASSERT_TRUE(dest_->WriteSmallFile(std::string("snapshots/") + kId1 + "/MANIFEST.json", small).ok());
  auto back = dest_->ReadSmallFile(std::string("snapshots/") + kId1 + "/MANIFEST.json");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, small);
  EXPECT_EQ(ModeOf(view_ + "/snapshots/" + kId1 + "/MANIFEST.json") & 077, 0u) << "readable by others";

  // More than a command line holds (SSH writes it through rsync instead).
  std::string big(200 * 1024, 'x');
  big += "end";
  ASSERT_TRUE(dest_->WriteSmallFile(std::string("snapshots/") + kId1 + "/BIG", big).ok());
  auto big_back = dest_->ReadSmallFile(std::string("snapshots/") + kId1 + "/BIG");
  ASSERT_TRUE(big_back.ok()) << big_back.status().ToString();
  EXPECT_EQ(*big_back, big);
}

TEST_P(DestinationContractTest, ListingSortsSnapshotsByDoneAndIgnoresOtherNames) {
  auto empty = dest_->ListSnapshots();
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->complete.empty());
  EXPECT_TRUE(empty->incomplete.empty());

  ASSERT_TRUE(dest_->MakeSnapshotDir(kId2).ok());
  ASSERT_TRUE(dest_->MakeSnapshotDir(kId1).ok());
  EXPECT_TRUE(std::filesystem::is_directory(view_ + "/snapshots/" + kId1 + "/data"));
  EXPECT_EQ(ModeOf(view_ + "/snapshots/" + kId1 + "/data") & 077, 0u) << "readable by others";
  ASSERT_TRUE(dest_->WriteSmallFile(std::string("snapshots/") + kId1 + "/DONE", "digest\n").ok());
  ASSERT_TRUE(dest_->WriteSmallFile("snapshots/not-a-snapshot/DONE", "x\n").ok());

  auto l = dest_->ListSnapshots();
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->complete, std::vector<std::string>{kId1});
  EXPECT_EQ(l->incomplete, std::vector<std::string>{kId2});
}

TEST_P(DestinationContractTest, ShippedDirectoryArrivesWithProgressAndFetchesBackTheSame) {
  const std::string src = SourceDir();
  ASSERT_TRUE(dest_->MakeSnapshotDir(kId1).ok());
  TransferOptions t;
  t.extra_args = {"--whole-file", "--mkpath"};
  bool final_seen = false;
  t.on_progress = [&](const RsyncProgress& p) { final_seen = final_seen || p.final; };
  auto shipped = dest_->Ship({src + "/"}, std::string("snapshots/") + kId1 + "/data/", t);
  ASSERT_TRUE(shipped.ok()) << shipped.status().ToString();
  EXPECT_TRUE(final_seen);
  EXPECT_EQ(shipped->stats.regular_files_transferred, 2u);
  EXPECT_EQ(test::ReadFile(view_ + "/snapshots/" + kId1 + "/data/CURRENT"), "MANIFEST-000002\n");

  const std::string out = tmp_.path() + "/fetched";
  auto fetched = dest_->Fetch(std::string("snapshots/") + kId1 + "/", out + "/", {});
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  EXPECT_EQ(test::ReadFile(out + "/data/CURRENT"), "MANIFEST-000002\n");
  EXPECT_EQ(std::filesystem::file_size(out + "/data/000001.sst"), 200u * 1024);
}

TEST_P(DestinationContractTest, PublishWritesManifestThenDoneAndTheSnapshotIsComplete) {
  const std::string src = SourceDir();
  ASSERT_TRUE(dest_->MakeSnapshotDir(kId1).ok());
  ASSERT_TRUE(dest_->Ship({src + "/"}, std::string("snapshots/") + kId1 + "/data/", {}).ok());
  ASSERT_TRUE(dest_->Publish(kId1, "{\"m\": 1}", "abc123").ok());
  EXPECT_EQ(test::ReadFile(view_ + "/snapshots/" + kId1 + "/MANIFEST.json"), "{\"m\": 1}");
  EXPECT_EQ(test::ReadFile(view_ + "/snapshots/" + kId1 + "/DONE"), "abc123\n");
  auto l = dest_->ListSnapshots();
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(l->complete, std::vector<std::string>{kId1});
}

TEST_P(DestinationContractTest, DeleteRemovesOnlyThatSnapshotAndRefusesWhatIsNoSnapshotId) {
  ASSERT_TRUE(dest_->MakeSnapshotDir(kId1).ok());
  ASSERT_TRUE(dest_->MakeSnapshotDir(kId2).ok());
  ASSERT_TRUE(dest_->WriteSmallFile(std::string("snapshots/") + kId1 + "/DONE", "d\n").ok());
  ASSERT_TRUE(dest_->DeleteSnapshot(kId1).ok());
  EXPECT_FALSE(std::filesystem::exists(view_ + "/snapshots/" + kId1));
  EXPECT_TRUE(std::filesystem::exists(view_ + "/snapshots/" + kId2));
  EXPECT_EQ(dest_->DeleteSnapshot("..").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dest_->DeleteSnapshot("").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(std::filesystem::exists(view_ + "/snapshots/" + kId2));
}

TEST_P(DestinationContractTest, CommandsRunOnlyOnHostsThatRunThemAndLocalPathsOnlyForLocalOnes) {
  auto r = dest_->RunOnHost({"sh", "-c", "printf '%s' \"$1\"", "sh", "one arg; $(not run)"}, 30'000, nullptr);
  if (GetParam() == Place::kSsh) {
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->exit_code, 0);
    EXPECT_EQ(r->stdout_tail, "one arg; $(not run)");
  } else {
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().ToString();
  }
  EXPECT_EQ(dest_->LocalPath("snapshots").empty(), GetParam() != Place::kLocal);
  if (GetParam() == Place::kLocal) {
    EXPECT_EQ(dest_->LocalPath("snapshots"), view_ + "/snapshots");
  }
}

TEST_P(DestinationContractTest, FlusherRunsWhereTheKindHasOne) {
  ASSERT_TRUE(dest_->MakeSnapshotDir(kId1).ok());
  auto none = dest_->StartFlusher(kId1, {});
  EXPECT_FALSE(none->Finish(1000).ran);
  auto flusher = dest_->StartFlusher(kId1, {{"a.sst", 4}});
  std::ofstream(view_ + "/snapshots/" + kId1 + "/data/a.sst") << "abcd";
  const auto report = flusher->Finish(30'000);
  EXPECT_EQ(report.ran, GetParam() != Place::kRsyncDaemon) << report.note;
}

TEST_P(DestinationContractTest, ANewFileAndItsChecksumArriveAndATakenNameIsNeverReplaced) {
  auto none = dest_->ListDir("");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty()) << "a destination that does not exist yet lists nothing";

  const std::string src = tmp_.path() + "/archives";
  std::filesystem::create_directories(src);
  std::ofstream(src + "/c1.tar.gz") << std::string(64 * 1024, 'z');
  std::ofstream(src + "/c1.tar.gz.sha256") << "ours  c1.tar.gz\n";
  LK_ASSERT_OK(dest_->ShipNewFileWithChecksum(src + "/c1.tar.gz", src + "/c1.tar.gz.sha256",
                                              ".ledgerkeep-incoming/c1", {}));
  EXPECT_EQ(test::ReadFile(view_ + "/c1.tar.gz.sha256"), "ours  c1.tar.gz\n");
  EXPECT_EQ(std::filesystem::file_size(view_ + "/c1.tar.gz"), 64u * 1024);
  EXPECT_FALSE(std::filesystem::exists(view_ + "/.ledgerkeep-incoming")) << "staging left behind";
  auto listed = dest_->ListDir("");
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  bool archive = false, sum = false;
  for (const auto& e : *listed) {
    archive = archive || (e.name == "c1.tar.gz" && e.size == 64u * 1024);
    sum = sum || e.name == "c1.tar.gz.sha256";
  }
  EXPECT_TRUE(archive && sum);

  // The same names again, with other content: refused, the first kept.
  std::ofstream(src + "/c1.tar.gz", std::ios::trunc) << "other";
  std::ofstream(src + "/c1.tar.gz.sha256", std::ios::trunc) << "theirs  c1.tar.gz\n";
  Status again = dest_->ShipNewFileWithChecksum(src + "/c1.tar.gz", src + "/c1.tar.gz.sha256",
                                                ".ledgerkeep-incoming/c1", {});
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again.ToString();
  EXPECT_EQ(test::ReadFile(view_ + "/c1.tar.gz.sha256"), "ours  c1.tar.gz\n") << "replaced";
  EXPECT_EQ(std::filesystem::file_size(view_ + "/c1.tar.gz"), 64u * 1024) << "replaced";
}

INSTANTIATE_TEST_SUITE_P(EveryKind, DestinationContractTest,
                         ::testing::Values(Place::kLocal, Place::kSsh, Place::kRsyncDaemon), NameOf);

}  // namespace
}  // namespace ledgerkeep
