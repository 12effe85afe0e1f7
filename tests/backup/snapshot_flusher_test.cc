// SnapshotFlusher against real files, a real sshd on loopback and the real
// page cache: a file is flushed and dropped once it has its listed size,
// never before, and the last pass takes what is left.
#include "backup/snapshot_flusher.h"

#include "backup/destination.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/common/sshd_fixture.h"
#include "tests/support/page_cache.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace ledgerkeep {
namespace {

using namespace std::chrono_literals;
using test::ResidentPages;
using test::TempDir;

constexpr size_t kFileBytes = 4 << 20;

// Appends `bytes` bytes to `path` (as rsync writes a file: plain writes).
void Append(const std::string& path, size_t bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << path;
  std::string chunk(64 << 10, 'x');
  for (size_t done = 0; done < bytes;) {
    const size_t n = std::min(chunk.size(), bytes - done);
    ASSERT_EQ(::write(fd, chunk.data(), n), static_cast<ssize_t>(n));
    done += n;
  }
  ::close(fd);
}

class SnapshotFlusherTest : public ::testing::Test {
 protected:
  // Writes a.sst whole and b.sst half, checks that only a.sst is flushed,
  // then completes b.sst and ends the flusher.
  void ExpectFlushedOnceComplete(SnapshotFlusher& flusher) {
    Append(dir_ + "/a.sst", kFileBytes);
    Append(dir_ + "/b.sst", kFileBytes / 2);
    ASSERT_GT(ResidentPages(dir_ + "/b.sst"), 0u);
    EXPECT_TRUE(test::WaitUntil([&] { return ResidentPages(dir_ + "/a.sst") == 0; }, 20s))
        << "a.sst has its full size but is still in the page cache";
    EXPECT_GT(ResidentPages(dir_ + "/b.sst"), 0u) << "b.sst was dropped before rsync finished it";
    Append(dir_ + "/b.sst", kFileBytes / 2);
    EXPECT_TRUE(test::WaitUntil([&] { return ResidentPages(dir_ + "/b.sst") == 0; }, 20s));
    const auto report = flusher.Finish(30'000);
    EXPECT_TRUE(report.ran) << report.note;
    EXPECT_EQ(report.flushed, 2u) << report.note;
  }

  std::vector<SnapshotFlusher::File> Files() const { return {{"a.sst", kFileBytes}, {"b.sst", kFileBytes}}; }

  // A flusher for dir_ on `sshd`'s host (this one), reached over SSH.
  std::unique_ptr<SnapshotFlusher> StartOverSsh(const testing::SshdServer& sshd,
                                                const std::string& python = "python3") {
    auto dest = ParseDestination("root@127.0.0.1:" + tmp_.path(), "", sshd.client_key(),
                                 static_cast<uint16_t>(sshd.port()));
    EXPECT_TRUE(dest.ok()) << dest.status().ToString();
    const std::vector<std::string> ssh = dest->SshArgv({"-o", "UserKnownHostsFile=" + sshd.dir() + "/known_hosts",
                                                        "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR"});
    return SnapshotFlusher::OverSsh(ProcessRunner::Real(), ssh, dest->UserHost(), dir_, Files(), python);
  }

  void SetUp() override { std::filesystem::create_directories(dir_); }

  TempDir tmp_{"lk-flusher-"};
  const std::string dir_ = tmp_.path() + "/snapshots/x/data";
};

TEST_F(SnapshotFlusherTest, LocalDestinationFileIsFlushedAndDroppedOnlyOnceItHasItsListedSize) {
  auto flusher = SnapshotFlusher::Local(dir_, Files());
  ExpectFlushedOnceComplete(*flusher);
}

TEST_F(SnapshotFlusherTest, SshDestinationFileIsFlushedAndDroppedOnTheHostOnlyOnceItHasItsListedSize) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  auto flusher = StartOverSsh(sshd);
  ExpectFlushedOnceComplete(*flusher);
}

// The transfer is over (or failed): what rsync left, whatever its size,
// is flushed by the last pass.
TEST_F(SnapshotFlusherTest, FinishFlushesFilesThatNeverReachedTheirListedSize) {
  auto flusher = SnapshotFlusher::Local(dir_, Files());
  Append(dir_ + "/a.sst", kFileBytes / 4);
  const auto report = flusher->Finish(30'000);
  EXPECT_TRUE(report.ran);
  EXPECT_EQ(report.flushed, 1u) << "b.sst was never written; a.sst was";
  EXPECT_EQ(ResidentPages(dir_ + "/a.sst"), 0u);
}

TEST_F(SnapshotFlusherTest, HostWithoutTheInterpreterIsReportedAndNothingIsTouched) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  auto flusher = StartOverSsh(sshd, "python3-not-installed-here");
  Append(dir_ + "/a.sst", kFileBytes);
  const auto report = flusher->Finish(30'000);
  EXPECT_FALSE(report.ran);
  EXPECT_NE(report.note.find("no python3-not-installed-here on root@127.0.0.1"), std::string::npos)
      << report.note;
  EXPECT_GT(ResidentPages(dir_ + "/a.sst"), 0u);
}

TEST_F(SnapshotFlusherTest, RsyncDaemonDestinationHasNoFlusher) {
  auto dest = ParseDestination("rsync://127.0.0.1/backup/r1", "", "", 0);
  ASSERT_TRUE(dest.ok());
  DestinationContext context;
  context.runner = ProcessRunner::Real();
  context.work_dir = tmp_.path() + "/work";
  auto destination = MakeDestination(*dest, context);
  ASSERT_TRUE(destination.ok()) << destination.status().ToString();
  auto flusher = (*destination)->StartFlusher("x", Files());
  const auto report = flusher->Finish(1000);
  EXPECT_FALSE(report.ran);
  EXPECT_NE(report.note.find("rsync daemon"), std::string::npos) << report.note;
}

}  // namespace
}  // namespace ledgerkeep
