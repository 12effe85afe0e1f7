// Client archives against real files, real libarchive, real GNU tar and
// sha256sum: what `tar czf` users expect of the archive, bounded memory on
// big inputs, and extraction that never writes outside its directory.
#include "backup/client_archive.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <utility>

#include "common/clock.h"
#include "common/codec.h"
#include "common/file_util.h"
#include "common/process.h"
#include "tests/common/sshd_fixture.h"
#include "tests/support/client_tree.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"
#include "tests/support/transfer_fakes.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

using test::ClientTree;
using test::Lines;
using test::PseudoRandom;
using test::Quote;
using test::SetMtime;
using test::Sh;
using test::Slurp;
using test::Sorted;
using test::WriteFile;

// Peak resident set size so far (VmHWM; getrusage's ru_maxrss as fallback).
long PeakRssKiB() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// Lowers the peak to the current RSS (Linux >= 4.0), so earlier tests'
// peaks cannot hide this one's.
void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

// ------------------------------------------------------------ WriteTarGz

TEST(ClientArchiveTest, GnuTarListsAndExtractsConfigFilesAndDbDirExactly) {
  TempDir dir("lk-carch-");
  ClientTree tree(dir / "src");
  const std::string out = dir / "client1.tar.gz";
  LK_ASSERT_OK_AND_ASSIGN(ArchiveStats stats, WriteTarGz(tree.paths, out, ArchiveOptions{}));

  EXPECT_EQ(stats.entries, tree.names.size());
  EXPECT_EQ(stats.source_bytes, tree.file_bytes);
  EXPECT_EQ(stats.archive_bytes, fs::file_size(out));
  EXPECT_TRUE(stats.changed.empty());
  EXPECT_FALSE(fs::exists(out + ".tmp"));

  ProcessResult list = Sh("tar tzf " + Quote(out) + " 2>&1");
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_EQ(Sorted(Lines(list.output)), Sorted(tree.names)) << list.output;

  const std::string copy = dir / "gnu-extract";
  fs::create_directories(copy);
  ProcessResult x = Sh("tar xzf " + Quote(out) + " -C " + Quote(copy) + " 2>&1");
  ASSERT_EQ(x.exit_code, 0) << x.output;
  EXPECT_EQ(x.output, "") << "GNU tar complained";
  tree.ExpectReproducedUnder(copy);
  if (tree.chowned) {
    struct stat st {};
    ASSERT_EQ(::stat((copy + "/" + tree.root.substr(1) + "/mnt/data/db/archive/old.log").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 4321u);
    EXPECT_EQ(st.st_gid, 4322u);
  }

  ProcessResult sum = Sh("sha256sum " + Quote(out));
  ASSERT_EQ(sum.exit_code, 0) << sum.output;
  EXPECT_EQ(sum.stdout_tail.substr(0, 64), stats.sha256);
  LK_ASSERT_OK_AND_ASSIGN(std::string again, Sha256File(out));
  EXPECT_EQ(again, stats.sha256);
  EXPECT_EQ(fs::status(out).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

TEST(ClientArchiveTest, OwnExtractorReproducesWhatItArchived) {
  TempDir dir("lk-carch-");
  ClientTree tree(dir / "src");
  const std::string out = dir / "client1.tar.gz";
  LK_ASSERT_OK_AND_ASSIGN(ArchiveStats stats, WriteTarGz(tree.paths, out, ArchiveOptions{}));
  ExtractOptions eo;
  eo.expected_sha256 = stats.sha256;
  LK_ASSERT_OK_AND_ASSIGN(ExtractStats xs, ExtractTarGz(out, dir / "restore", eo));
  EXPECT_EQ(xs.entries, tree.names.size());
  EXPECT_EQ(xs.bytes, tree.file_bytes);
  tree.ExpectReproducedUnder(dir / "restore");
}

TEST(ClientArchiveTest, RelativeAndOverlappingPathsAreStoredOnceWithTarNames) {
  TempDir dir("lk-carch-");
  WriteFile(dir / "a/b/c.txt", "c");
  const std::string p = dir.path().substr(1);
  // Given twice, and once through a "..": each entry once, no name climbs.
  LK_ASSERT_OK_AND_ASSIGN(ArchiveStats stats, WriteTarGz({dir / "a", dir / "a/b/c.txt", dir / "a/b/../b/"},
                                                         dir / "o.tar.gz", {}));
  EXPECT_EQ(stats.entries, 3u);
  ProcessResult list = Sh("tar tzf " + Quote(dir / "o.tar.gz"));
  EXPECT_EQ(Lines(list.stdout_tail), (std::vector<std::string>{p + "/a/", p + "/a/b/", p + "/a/b/c.txt"}));
}

TEST(ClientArchiveTest, HardLinksAndNonAsciiNamesSurviveGnuTar) {
  TempDir dir("lk-carch-");
  WriteFile(dir / "db/000007.sst", "same inode\n");
  fs::create_hard_link(dir / "db/000007.sst", dir / "db/checkpoint-000007.sst");
  WriteFile(dir / "db/caf\xc3\xa9.conf", "utf-8 name\n");
  LK_ASSERT_OK_AND_ASSIGN(ArchiveStats stats, WriteTarGz({dir / "db"}, dir / "o.tar.gz", {}));
  EXPECT_EQ(stats.entries, 4u);
  EXPECT_EQ(stats.source_bytes, 11u + 11u);  // the linked file's data once
  const std::string copy = dir / "x";
  fs::create_directories(copy);
  ProcessResult x = Sh("tar xzf " + Quote(dir / "o.tar.gz") + " -C " + Quote(copy) + " 2>&1");
  ASSERT_EQ(x.exit_code, 0) << x.output;
  EXPECT_EQ(x.output, "");
  const std::string db = copy + "/" + dir.path().substr(1) + "/db";
  EXPECT_EQ(Slurp(db + "/caf\xc3\xa9.conf"), "utf-8 name\n");
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat((db + "/000007.sst").c_str(), &a), 0);
  ASSERT_EQ(::stat((db + "/checkpoint-000007.sst").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "extracted as two files, not one file with two names";

  LK_ASSERT_OK(ExtractTarGz(dir / "o.tar.gz", dir / "ours", {}));
  const std::string ours = dir / ("ours/" + dir.path().substr(1) + "/db");
  EXPECT_EQ(Slurp(ours + "/caf\xc3\xa9.conf"), "utf-8 name\n");
  ASSERT_EQ(::stat((ours + "/000007.sst").c_str(), &a), 0);
  ASSERT_EQ(::stat((ours + "/checkpoint-000007.sst").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
}

TEST(ClientArchiveTest, ArchiveInsideAnArchivedDirectoryIsNotArchivedItself) {
  TempDir dir("lk-carch-");
  WriteFile(dir / "data/x", "x");
  LK_ASSERT_OK_AND_ASSIGN(ArchiveStats stats, WriteTarGz({dir / "data"}, dir / "data/self.tar.gz", {}));
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.skipped, 1u);
}

TEST(ClientArchiveTest, MissingPathIsNotFoundNamingItAndLeavesNoTmp) {
  TempDir dir("lk-carch-");
  WriteFile(dir / "ok", "ok");
  WriteFile(dir / "old.tar.gz", "previous archive");
  auto r = WriteTarGz({dir / "ok", dir / "config/missing.conf"}, dir / "old.tar.gz", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
  EXPECT_NE(r.status().message().find(dir / "config/missing.conf"), std::string::npos)
      << r.status().ToString();
  EXPECT_FALSE(fs::exists(dir / "old.tar.gz.tmp"));
  EXPECT_EQ(Slurp(dir / "old.tar.gz"), "previous archive");
}

TEST(ClientArchiveTest, UnreadableFileIsPermissionDeniedNamingIt) {
  TempDir dir("lk-carch-");
  // Every mode the unprivileged child relies on is set here, none is left to
  // the umask: it writes its archive in the directory, lists data/ and reads
  // data/readable.
  ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
  WriteFile(dir / "data/readable", "r", 0644);
  WriteFile(dir / "data/secret", "s", 0600);
  ASSERT_EQ(::chmod((dir / "data").c_str(), 0755), 0);
  // Root reads every file: as root, archive in a child that dropped to nobody.
  // The child enters the directory while still root and then names its files
  // relative to it: nobody may not be able to reach /tmp's entries at all
  // (a /tmp of mode 0750 on some machines), and that is not what is tested.
  const bool drop = ::geteuid() == 0;
  const pid_t pid = drop ? ::fork() : 0;
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string base = drop ? "" : dir.path() + "/";
    if (drop && (::chdir(dir.path().c_str()) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0))
      ::_exit(100);
    auto r = WriteTarGz({base + "data"}, base + "o.tar.gz", {});
    const bool as_expected = !r.ok() && r.status().code() == StatusCode::kPermissionDenied &&
                             r.status().message().find(base + "data/secret") != std::string::npos &&
                             !fs::exists(base + "o.tar.gz.tmp");
    if (drop) {
      if (!as_expected) std::cerr << "child: " << r.status().ToString() << "\n";
      ::_exit(as_expected ? 0 : 1);
    }
    EXPECT_TRUE(as_expected) << r.status().ToString();
    return;
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0)
      << "100: cannot drop privileges; 1: not PermissionDenied naming the file";
  EXPECT_FALSE(fs::exists(dir / "o.tar.gz.tmp"));
}

TEST(ClientArchiveTest, FullDiskIsNoSpaceAndLeavesNoTmp) {
  TempDir dir("lk-carch-");
  const std::string small = dir / "small";
  fs::create_directories(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs here (needs root/CAP_SYS_ADMIN)";
  }
  WriteFile(dir / "src/big", PseudoRandom(2 << 20, 3));  // random: gzip cannot shrink it below 256k
  auto r = WriteTarGz({dir / "src"}, small + "/o.tar.gz", {});
  const bool tmp_left = fs::exists(small + "/o.tar.gz.tmp");
  ::umount2(small.c_str(), MNT_DETACH);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNoSpace) << r.status().ToString();
  EXPECT_FALSE(tmp_left);
}

TEST(ClientArchiveTest, BigInputIsStreamedInBoundedMemory) {
  TempDir dir("lk-carch-");
  const std::string big = dir / "db/000100.sst";
  constexpr uint64_t kSize = 300ull << 20;
  fs::create_directories(dir / "db");
  {
    // Sparse-ish: mostly holes (zeros), a random MiB every 32 MiB.
    const int fd = ::open(big.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(kSize)), 0);
    const std::string chunk = PseudoRandom(1 << 20, 4);
    for (uint64_t off = 0; off < kSize; off += 32ull << 20) {
      ASSERT_EQ(::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(off)),
                static_cast<ssize_t>(chunk.size()));
    }
    ::close(fd);
  }
  ResetPeakRss();
  const long before_kib = PeakRssKiB();
  LK_ASSERT_OK_AND_ASSIGN(ArchiveStats stats, WriteTarGz({dir / "db"}, dir / "big.tar.gz", {}));
  const long grown_mib = (PeakRssKiB() - before_kib) / 1024;
  EXPECT_EQ(stats.source_bytes, kSize);
  EXPECT_LT(grown_mib, 32) << "peak RSS grew by " << grown_mib << " MiB archiving a 300 MiB file";
  std::cout << "peak RSS grew by " << grown_mib << " MiB archiving " << (kSize >> 20) << " MiB\n";

  ProcessResult list = Sh("tar tzvf " + Quote(dir / "big.tar.gz"));
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_NE(list.stdout_tail.find(std::to_string(kSize)), std::string::npos) << list.stdout_tail;
}

TEST(ClientArchiveTest, ProgressIsReportedRepeatedlyAndNeverGoesBack) {
  TempDir dir("lk-carch-");
  for (int i = 0; i < 4; ++i)
    WriteFile(dir / ("db/" + std::to_string(i) + ".sst"), std::string(5 << 20, 'a' + i));
  std::vector<ArchiveProgress> seen;
  ArchiveOptions o;
  o.progress_interval_ms = 0;  // every MiB, so a fast machine still shows many
  o.on_progress = [&](const ArchiveProgress& p) { seen.push_back(p); };
  LK_ASSERT_OK_AND_ASSIGN(ArchiveStats stats, WriteTarGz({dir / "db"}, dir / "o.tar.gz", o));
  ASSERT_GE(seen.size(), 20u);
  EXPECT_EQ(seen.front().bytes_done, 0u);
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GE(seen[i].bytes_done, seen[i - 1].bytes_done);
    EXPECT_GE(seen[i].files_done, seen[i - 1].files_done);
    EXPECT_EQ(seen[i].bytes_total, 20u << 20);
    EXPECT_EQ(seen[i].files_total, 5u);
  }
  EXPECT_TRUE(seen.back().final);
  EXPECT_EQ(seen.back().bytes_done, 20u << 20);
  EXPECT_EQ(seen.back().files_done, stats.entries);
}

TEST(ClientArchiveTest, CancelledWriteIsAbortedAndLeavesNothing) {
  TempDir dir("lk-carch-");
  WriteFile(dir / "db/a", std::string(4 << 20, 'a'));
  ArchiveOptions o;
  int polls = 0;
  o.cancelled = [&] { return ++polls > 2; };
  auto r = WriteTarGz({dir / "db"}, dir / "o.tar.gz", o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kAborted);
  EXPECT_FALSE(fs::exists(dir / "o.tar.gz"));
  EXPECT_FALSE(fs::exists(dir / "o.tar.gz.tmp"));
}

// ------------------------------------------------------------ ExtractTarGz

TEST(ClientArchiveTest, ExtractRefusesDotDotEntryAndWritesNothingOutside) {
  TempDir dir("lk-carch-");
  WriteFile(dir / "craft/evil", "pwned\n");
  // GNU tar keeps "../" with -P: the classic path-traversal archive.
  ProcessResult t =
      Sh("cd " + Quote(dir / "craft") + " && tar -czPf ../evil.tar.gz --transform 's,^,../,' evil");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  fs::create_directories(dir / "out");
  auto r = ExtractTarGz(dir / "evil.tar.gz", dir / "out/x", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("'../evil'"), std::string::npos) << r.status().ToString();
  EXPECT_FALSE(fs::exists(dir / "out/evil"));
  EXPECT_TRUE(fs::is_empty(dir / "out/x"));
}

TEST(ClientArchiveTest, ExtractRefusesAbsolutePathEntry) {
  TempDir dir("lk-carch-");
  WriteFile(dir / "abs-evil", "pwned\n");
  ProcessResult t = Sh("tar -czPf " + Quote(dir / "abs.tar.gz") + " " + Quote(dir / "abs-evil"));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  fs::remove(dir / "abs-evil");
  auto r = ExtractTarGz(dir / "abs.tar.gz", dir / "out", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find(dir / "abs-evil"), std::string::npos) << r.status().ToString();
  EXPECT_FALSE(fs::exists(dir / "abs-evil"));
}

TEST(ClientArchiveTest, ExtractRefusesSymlinkLeadingOutside) {
  TempDir dir("lk-carch-");
  fs::create_directories(dir / "craft/sub");
  WriteFile(dir / "craft/fine", "fine\n");
  fs::create_symlink("../../../outside", dir / "craft/sub/link");
  ProcessResult t = Sh("cd " + Quote(dir / "craft") + " && tar czf ../link.tar.gz fine sub");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  auto r = ExtractTarGz(dir / "link.tar.gz", dir / "out", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
  EXPECT_NE(r.status().message().find("sub/link"), std::string::npos) << r.status().ToString();
  EXPECT_FALSE(fs::is_symlink(dir / "out/sub/link"));
  EXPECT_EQ(Slurp(dir / "out/fine"), "fine\n");  // entries before it are in place, inside out/
}

TEST(ClientArchiveTest, TruncatedArchiveIsCorruption) {
  TempDir dir("lk-carch-");
  WriteFile(dir / "db/a.sst", PseudoRandom(1 << 20, 5));
  WriteFile(dir / "db/b.sst", PseudoRandom(1 << 20, 6));
  LK_ASSERT_OK_AND_ASSIGN(ArchiveStats stats, WriteTarGz({dir / "db"}, dir / "o.tar.gz", {}));
  fs::copy_file(dir / "o.tar.gz", dir / "cut.tar.gz");
  fs::resize_file(dir / "cut.tar.gz", stats.archive_bytes / 2);
  auto r = ExtractTarGz(dir / "cut.tar.gz", dir / "out", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
  EXPECT_NE(r.status().message().find(dir / "cut.tar.gz"), std::string::npos) << r.status().ToString();
}

TEST(ClientArchiveTest, DamagedTailIsCorruptionWhenTheChecksumIsGiven) {
  TempDir dir("lk-carch-");
  WriteFile(dir / "db/a.sst", PseudoRandom(100'000, 7));
  LK_ASSERT_OK_AND_ASSIGN(ArchiveStats stats, WriteTarGz({dir / "db"}, dir / "o.tar.gz", {}));
  fs::resize_file(dir / "o.tar.gz", stats.archive_bytes - 4);  // the gzip trailer's length field
  ExtractOptions eo;
  eo.expected_sha256 = stats.sha256;
  auto r = ExtractTarGz(dir / "o.tar.gz", dir / "out", eo);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
}

TEST(ClientArchiveTest, MissingArchiveIsNotFound) {
  TempDir dir("lk-carch-");
  auto r = ExtractTarGz(dir / "nope.tar.gz", dir / "out", {});
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
}

// ------------------------------------------------------------ ClientBackupHandler

}  // namespace
}  // namespace ledgerkeep
