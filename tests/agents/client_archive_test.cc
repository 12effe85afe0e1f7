// Client archives and the ClientBackup command against real files, real
// libarchive, real GNU tar, sha256sum and rsync: what `tar czf` users expect
// of the archive, bounded memory on big inputs, and extraction that never
// writes outside its directory.
#include "agents/client_archive.h"

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

#include "agents/client_backup.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/file_util.h"
#include "common/process.h"
#include "tests/common/sshd_fixture.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"
#include "tests/support/transfer_fakes.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

// Runs `sh -c script`; the result's output holds stdout + stderr.
ProcessResult Sh(const std::string& script) {
  auto r = ProcessRunner::Real()->Run({"sh", "-c", script}, 60'000);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : ProcessResult{};
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

void SetMtime(const std::string& path, time_t sec) {
  struct timespec ts[2] = {{sec, 0}, {sec, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << path;
}

std::string Slurp(const std::string& path) { return ReadFileToString(path).value_or("<unreadable>"); }

std::string PseudoRandom(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

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

// What the runbook's client node holds: three config files and a db dir
// (with a symlink, a 0600 file, a subdirectory and, as root, a file of
// another owner), under `root` as if it were '/'.
struct ClientTree {
  std::string root;
  std::vector<std::string> paths;  // what to archive (absolute)
  std::vector<std::string> names;  // what `tar tzf` must list
  uint64_t file_bytes = 0;
  bool chowned = false;

  explicit ClientTree(const std::string& r) : root(r) {
    const std::string p = root.substr(1);  // archive names lose the leading '/'
    auto file = [&](const std::string& rel, const std::string& content, mode_t mode) {
      WriteFile(root + "/" + rel, content, mode);
      file_bytes += content.size();
    };
    file("config/daml-ledger-api/environment-vars", "LEDGER_HOST=10.0.0.1\nLEDGER_PORT=6865\n", 0644);
    file("config/daml-index-db/environment-vars", "POSTGRES_PASSWORD=secret\n", 0640);
    file("config/telegraf/telegraf.conf", "[agent]\n  interval = \"10s\"\n", 0644);
    file("mnt/data/db/CURRENT", "MANIFEST-000001\n", 0644);
    file("mnt/data/db/MANIFEST-000001", PseudoRandom(4096, 1), 0600);
    file("mnt/data/db/000012.sst", PseudoRandom(300'000, 2) + std::string(200'000, 'x'), 0644);
    file("mnt/data/db/archive/old.log", "old log\n", 0644);
    fs::create_symlink("CURRENT", root + "/mnt/data/db/LOG.link");
    if (::geteuid() == 0) {
      chowned = ::chown((root + "/mnt/data/db/archive/old.log").c_str(), 4321, 4322) == 0;
    }
    SetMtime(root + "/config/telegraf/telegraf.conf", 1'600'000'000);
    SetMtime(root + "/mnt/data/db/000012.sst", 1'650'000'000);
    SetMtime(root + "/mnt/data/db/LOG.link", 1'610'000'000);
    SetMtime(root + "/mnt/data/db/archive", 1'620'000'000);
    paths = {root + "/config/daml-ledger-api/environment-vars",
             root + "/config/daml-index-db/environment-vars", root + "/config/telegraf/telegraf.conf",
             root + "/mnt/data/db"};
    names = {p + "/config/daml-ledger-api/environment-vars",
             p + "/config/daml-index-db/environment-vars",
             p + "/config/telegraf/telegraf.conf",
             p + "/mnt/data/db/",
             p + "/mnt/data/db/000012.sst",
             p + "/mnt/data/db/CURRENT",
             p + "/mnt/data/db/LOG.link",
             p + "/mnt/data/db/MANIFEST-000001",
             p + "/mnt/data/db/archive/",
             p + "/mnt/data/db/archive/old.log"};
  }

  // Every archived entry below `root` matches its copy below `copy_root`:
  // type, content or link target, mode, mtime and owner.
  void ExpectReproducedUnder(const std::string& copy_root) const {
    const std::string p = root.substr(1);
    for (const auto& name : names) {
      std::string rel = name.substr(p.size() + 1);
      if (rel.back() == '/') rel.pop_back();
      const std::string a = root + "/" + rel;
      const std::string b = copy_root + "/" + p + "/" + rel;
      struct stat sa {
      }, sb{};
      ASSERT_EQ(::lstat(a.c_str(), &sa), 0) << a;
      ASSERT_EQ(::lstat(b.c_str(), &sb), 0) << b << " missing after extraction";
      EXPECT_EQ(sa.st_mode, sb.st_mode) << rel;
      EXPECT_EQ(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec) << rel;
      if (::geteuid() == 0) {
        EXPECT_EQ(sa.st_uid, sb.st_uid) << rel;
        EXPECT_EQ(sa.st_gid, sb.st_gid) << rel;
      }
      if (S_ISREG(sa.st_mode)) {
        EXPECT_EQ(Slurp(a), Slurp(b)) << rel;
      }
      if (S_ISLNK(sa.st_mode)) {
        EXPECT_EQ(fs::read_symlink(a), fs::read_symlink(b)) << rel;
      }
    }
  }
};

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

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

class ClientBackupTest : public ::testing::Test {
 protected:
  // Runs the handler as the agent would: a decoded Command envelope in a
  // CommandContext, progress and notes collected.
  CommandOutcome Run(ClientBackupHandler& h, wire::ClientBackupT body) {
    wire::CommandT cmd;
    cmd.cmd_id = ++next_cmd_;
    cmd.issued_at_ms = Clock::System()->NowMs();
    cmd.deadline_ms = cmd.issued_at_ms + 60'000;
    cmd.targets = {"client1"};
    cmd.body.Set(std::move(body));
    wire::BodyUnion b;
    b.Set(std::move(cmd));
    EnvelopeHeader header;
    header.sender = "broker";
    header.msg_id = next_cmd_;
    auto env = DecodeEnvelope(BuildEnvelope(header, std::move(b)));
    EXPECT_TRUE(env.ok()) << env.status().ToString();
    CommandContext ctx(
        std::move(env).value(), &cancelled_, Clock::System(),
        [this](wire::ProgressT p) {
          std::lock_guard<std::mutex> lock(mu_);
          progress_.push_back(std::move(p));
        },
        [this](std::string level, std::string text) {
          std::lock_guard<std::mutex> lock(mu_);
          notes_.push_back(level + ": " + text);
        });
    EXPECT_EQ(h.Lane(ctx.command()), "backup");
    return h.Execute(ctx);
  }

  static wire::ClientBackupT Named(const std::string& name) {
    wire::ClientBackupT b;
    b.archive_name = name;
    return b;
  }

  ClientBackupTuning Fast() {
    ClientBackupTuning t;
    t.max_attempts = 1;
    t.backoff_base_ms = 10;
    return t;
  }

  TempDir dir_{"lk-cbak-"};
  std::atomic<bool> cancelled_{false};
  uint64_t next_cmd_ = 0;
  std::mutex mu_;
  std::vector<wire::ProgressT> progress_;
  std::vector<std::string> notes_;
};

TEST_F(ClientBackupTest, ShipsArchiveAndChecksumThatSha256sumAccepts) {
  ClientTree tree(dir_ / "node");
  const std::string dest = dir_ / "backups/{node}";
  ClientBackupHandler h(
      "client1", tree.paths, dir_ / "work",
      [&]() -> Result<wire::BackupTargetT> {
        wire::BackupTargetT t;
        t.destination = dest;
        return t;
      },
      ProcessRunner::Real(), Fast());

  CommandOutcome out = Run(h, Named("client1-2024-06-01"));
  LK_ASSERT_OK(out.status);
  const auto* r = out.detail.AsClientBackupResult();
  ASSERT_NE(r, nullptr);
  const std::string shipped = dir_ / "backups/client1/client1-2024-06-01.tar.gz";
  EXPECT_EQ(r->archive, shipped);
  EXPECT_EQ(r->bytes, fs::file_size(shipped));
  EXPECT_EQ(r->entries, tree.names.size());
  EXPECT_EQ(r->source_bytes, tree.file_bytes);
  EXPECT_GE(r->duration_ms, 0);
  EXPECT_EQ(Slurp(shipped + ".sha256"), r->sha256 + "  client1-2024-06-01.tar.gz\n");

  ProcessResult check =
      Sh("cd " + Quote(dir_ / "backups/client1") + " && sha256sum -c client1-2024-06-01.tar.gz.sha256");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  ProcessResult list = Sh("tar tzf " + Quote(shipped));
  EXPECT_EQ(Sorted(Lines(list.stdout_tail)), Sorted(tree.names));
  // Only the two files at the destination; nothing left in the work dir.
  std::set<std::string> at_dest;
  for (const auto& e : fs::directory_iterator(dir_ / "backups/client1")) at_dest.insert(e.path().filename());
  EXPECT_EQ(at_dest,
            (std::set<std::string>{"client1-2024-06-01.tar.gz", "client1-2024-06-01.tar.gz.sha256"}));
  EXPECT_TRUE(fs::is_empty(dir_ / "work"));

  std::lock_guard<std::mutex> lock(mu_);
  std::set<std::string> phases;
  for (const auto& p : progress_) phases.insert(p.phase);
  EXPECT_EQ(phases, (std::set<std::string>{"archive", "transfer"}));
}

TEST_F(ClientBackupTest, ShipsOverSshAndRefusesTheSameNameThere) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  LK_ASSERT_OK(sshd.Start());
  ClientTree tree(dir_ / "node");
  ClientBackupTuning tuning = Fast();
  tuning.ssh_options = {"-o", "UserKnownHostsFile=" + sshd.pinned_known_hosts(), "-o", "LogLevel=ERROR"};
  ClientBackupHandler h(
      "client1", tree.paths, dir_ / "work",
      [&]() -> Result<wire::BackupTargetT> {
        wire::BackupTargetT t;
        t.destination = "root@127.0.0.1:" + (dir_ / "remote/{node}");
        t.ssh_key = sshd.client_key();
        t.ssh_port = static_cast<uint16_t>(sshd.port());
        return t;
      },
      ProcessRunner::Real(), tuning);
  CommandOutcome out = Run(h, Named("over-ssh"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString() << "\nsshd log:\n" << sshd.log();
  EXPECT_EQ(out.detail.AsClientBackupResult()->archive,
            "root@127.0.0.1:" + (dir_ / "remote/client1/over-ssh.tar.gz"));
  ProcessResult check =
      Sh("cd " + Quote(dir_ / "remote/client1") + " && sha256sum -c over-ssh.tar.gz.sha256");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(Run(h, Named("over-ssh")).status.code(), StatusCode::kAlreadyExists);
}

TEST_F(ClientBackupTest, SecondBackupWithTheSameNameIsRefused) {
  ClientTree tree(dir_ / "node");
  ClientBackupHandler h(
      "client1", tree.paths, dir_ / "work",
      [&]() -> Result<wire::BackupTargetT> {
        wire::BackupTargetT t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  LK_ASSERT_OK(Run(h, Named("nightly.tar.gz")).status);  // ".tar.gz" is not doubled
  const std::string shipped = dir_ / "backups/nightly.tar.gz";
  const std::string first = Slurp(shipped);
  WriteFile(tree.root + "/config/telegraf/telegraf.conf", "changed\n");

  CommandOutcome again = Run(h, Named("nightly"));
  EXPECT_EQ(again.status.code(), StatusCode::kAlreadyExists) << again.status.ToString();
  EXPECT_NE(again.status.message().find("--name"), std::string::npos) << again.status.ToString();
  EXPECT_EQ(Slurp(shipped), first);
  ProcessResult check = Sh("cd " + Quote(dir_ / "backups") + " && sha256sum -c nightly.tar.gz.sha256");
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST_F(ClientBackupTest, NoDestinationConfiguredSaysHowToConfigureOne) {
  ClientTree tree(dir_ / "node");
  ClientBackupHandler none(
      "client1", tree.paths, dir_ / "work",
      []() -> Result<wire::BackupTargetT> { return Status::NotFound("no backup config"); },
      ProcessRunner::Real(), Fast());
  CommandOutcome out = Run(none, Named("x"));
  EXPECT_EQ(out.status.code(), StatusCode::kFailedPrecondition) << out.status.ToString();
  EXPECT_NE(out.status.message().find("ledgerkeep backup configure --node client1 --destination"),
            std::string::npos)
      << out.status.ToString();

  ClientBackupHandler empty(
      "client1", tree.paths, dir_ / "work",
      []() -> Result<wire::BackupTargetT> { return wire::BackupTargetT{}; }, ProcessRunner::Real(), Fast());
  EXPECT_EQ(Run(empty, Named("x")).status.code(), StatusCode::kFailedPrecondition);

  // The command's own destination needs no configuration.
  wire::ClientBackupT body = Named("x");
  body.target = std::make_unique<wire::BackupTargetT>();
  body.target->destination = dir_ / "elsewhere";
  LK_EXPECT_OK(Run(none, std::move(body)).status);
  EXPECT_TRUE(fs::exists(dir_ / "elsewhere/x.tar.gz.sha256"));
}

TEST_F(ClientBackupTest, NoPathsConfiguredSaysToSetClientPaths) {
  ClientBackupHandler h(
      "client1", {}, dir_ / "work",
      [&]() -> Result<wire::BackupTargetT> {
        wire::BackupTargetT t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  CommandOutcome out = Run(h, Named("x"));
  EXPECT_EQ(out.status.code(), StatusCode::kFailedPrecondition) << out.status.ToString();
  EXPECT_NE(out.status.message().find("[client] paths"), std::string::npos) << out.status.ToString();

  // Paths given with the command do not make up for them (issue 13: an
  // operator key must not archive what the node config does not name).
  WriteFile(dir_ / "cfg/app.conf", "a=1\n");
  wire::ClientBackupT body = Named("x");
  body.paths = {dir_ / "cfg"};
  CommandOutcome given = Run(h, std::move(body));
  EXPECT_EQ(given.status.code(), StatusCode::kFailedPrecondition) << given.status.ToString();
  EXPECT_FALSE(fs::exists(dir_ / "backups"));
}

// Issue 13: `backup client --path /etc` archived any file of the client
// node (as root) and shipped it wherever --destination said. --path only
// narrows the configured [client] paths.
TEST_F(ClientBackupTest, PathsOutsideTheConfiguredOnesAreRefusedAndInsideOnesNarrowTheArchive) {
  WriteFile(dir_ / "cfg/app.conf", "a=1\n");
  WriteFile(dir_ / "cfg/sub/more.conf", "b=2\n");
  WriteFile(dir_ / "secret/shadow", "root:x\n");
  fs::create_directory_symlink(dir_ / "secret", dir_ / "cfg/innocent-link");
  ClientBackupHandler h(
      "client1", {dir_ / "cfg"}, dir_ / "work",
      [&]() -> Result<wire::BackupTargetT> {
        wire::BackupTargetT t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  for (const std::string& bad : std::vector<std::string>{dir_ / "secret", "/etc", dir_ / "cfg/../secret",
                                                         dir_ / "cfg/innocent-link", dir_ / "cfgx"}) {
    wire::ClientBackupT body = Named("bad");
    body.paths = {bad};
    CommandOutcome out = Run(h, std::move(body));
    EXPECT_EQ(out.status.code(), StatusCode::kPermissionDenied) << bad << ": " << out.status.ToString();
  }
  EXPECT_FALSE(fs::exists(dir_ / "backups/bad.tar.gz"));
  wire::ClientBackupT narrow = Named("narrow");
  narrow.paths = {dir_ / "cfg/sub"};
  CommandOutcome ok = Run(h, std::move(narrow));
  LK_ASSERT_OK(ok.status);
  EXPECT_EQ(ok.detail.AsClientBackupResult()->entries, 2u);  // sub/ and more.conf
}

TEST_F(ClientBackupTest, BadArchiveNamesAreRefused) {
  ClientBackupHandler h(
      "client1", {dir_.path()}, dir_ / "work",
      [&]() -> Result<wire::BackupTargetT> {
        wire::BackupTargetT t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  for (const std::string bad : {"../up", "a/b", ".hidden", "", ".tar.gz"}) {
    CommandOutcome out = Run(h, Named(bad));
    EXPECT_EQ(out.status.code(), StatusCode::kInvalidArgument)
        << "'" << bad << "': " << out.status.ToString();
  }
  EXPECT_FALSE(fs::exists(dir_ / "backups"));
}

TEST_F(ClientBackupTest, UnicodeAndOtherUnsafeNamesAreRefusedAndNothingIsWritten) {
  // 'ünï😀' was archived and shipped, then reported "not at the destination"
  // (rsync lists it escaped), and a second run overwrote it.
  ClientBackupHandler h(
      "client1", {dir_.path()}, dir_ / "work",
      [&]() -> Result<wire::BackupTargetT> {
        wire::BackupTargetT t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  for (const std::string& bad :
       std::vector<std::string>{"ünï😀", "caf\xc3\xa9", "a b", "x;id", "$(id)", "`id`", "tab\tname",
                                "new\nline", "-rf", "..", "a\\b", "q'uote", std::string(201, 'a')}) {
    CommandOutcome out = Run(h, Named(bad));
    EXPECT_EQ(out.status.code(), StatusCode::kInvalidArgument)
        << "'" << bad << "': " << out.status.ToString();
    EXPECT_EQ(out.status.message().find('\n'), std::string::npos) << out.status.message();
  }
  EXPECT_FALSE(fs::exists(dir_ / "backups"));
  for (const std::string& good :
       std::vector<std::string>{"client1-2024-06-01", "A.b_c-9", std::string(200, 'z')}) {
    EXPECT_TRUE(NewClientArchiveFileName(good).ok()) << good;
  }
}

// Another run (another node sharing the destination) that takes the name
// while this one ships: its archive stays byte-identical, this run fails.
// `take_name` runs just before the shipping rsync starts.
class BeforeShipRunner final : public ProcessRunner {
 public:
  explicit BeforeShipRunner(std::function<void()> take_name) : take_name_(std::move(take_name)) {}
  Result<ProcessResult> Run(const std::vector<std::string>& argv, int64_t timeout_ms) override {
    return ProcessRunner::Real()->Run(argv, timeout_ms);
  }
  Result<ProcessResult> RunStreaming(const std::vector<std::string>& argv, const RunOptions& opts) override {
    const bool ships = std::any_of(argv.begin(), argv.end(),
                                   [](const std::string& a) { return a.rfind("--partial-dir=", 0) == 0; });
    if (ships && take_name_) std::exchange(take_name_, nullptr)();
    return ProcessRunner::Real()->RunStreaming(argv, opts);
  }
  Result<ProcessId> Spawn(const std::vector<std::string>& argv, const std::string& log_path) override {
    return ProcessRunner::Real()->Spawn(argv, log_path);
  }
  bool IsAlive(const ProcessId& id) override { return ProcessRunner::Real()->IsAlive(id); }
  Status Signal(const ProcessId& id, int sig) override { return ProcessRunner::Real()->Signal(id, sig); }

 private:
  std::function<void()> take_name_;
};

class ClientBackupRaceTest : public ClientBackupTest {
 protected:
  // Runs a backup named "race" to `target` while "another run" writes
  // race.tar.gz (and, with `sidecar`, its .sha256) into `dir`; expects this
  // run refused and the other archive untouched.
  void ExpectOtherRunKept(wire::BackupTargetT target, const std::string& dir, bool sidecar,
                          ClientBackupTuning tuning) {
    ClientTree tree(dir_ / "node");
    const std::string theirs = PseudoRandom(4096, 7);
    BeforeShipRunner runner([&] {
      WriteFile(dir + "/race.tar.gz", theirs);
      if (sidecar) WriteFile(dir + "/race.tar.gz.sha256", "0000  race.tar.gz\n");
    });
    ClientBackupHandler h(
        "client1", tree.paths, dir_ / "work", [&]() -> Result<wire::BackupTargetT> { return target; },
        &runner, tuning);
    CommandOutcome out = Run(h, Named("race"));
    EXPECT_EQ(out.status.code(), StatusCode::kAlreadyExists) << out.status.ToString();
    EXPECT_NE(out.status.message().find("--name"), std::string::npos) << out.status.ToString();
    EXPECT_EQ(Slurp(dir + "/race.tar.gz"), theirs);
    if (sidecar) {
      EXPECT_EQ(Slurp(dir + "/race.tar.gz.sha256"), "0000  race.tar.gz\n");
    } else {
      EXPECT_FALSE(fs::exists(dir + "/race.tar.gz.sha256")) << "a .sha256 of ours next to their archive";
    }
  }
};

TEST_F(ClientBackupRaceTest, ArchiveThatAppearsWhileShippingIsNeverReplacedLocally) {
  wire::BackupTargetT t;
  t.destination = dir_ / "backups";
  ExpectOtherRunKept(t, dir_ / "backups", /*sidecar=*/false, Fast());
  // Nothing of ours is left in the incoming directory.
  EXPECT_FALSE(fs::exists(dir_ / "backups/.ledgerkeep-incoming/client1/race.tar.gz"));
}

TEST_F(ClientBackupRaceTest, ArchiveThatAppearsWhileShippingIsNeverReplacedOverSsh) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  LK_ASSERT_OK(sshd.Start());
  // The server's host key pinned, as an operator would.
  std::istringstream pub(Slurp(sshd.dir() + "/host_key.pub"));
  std::string type, key;
  pub >> type >> key;
  const std::string known_hosts = dir_ / "known_hosts";
  WriteFile(known_hosts, "[127.0.0.1]:" + std::to_string(sshd.port()) + " " + type + " " + key + "\n");
  ClientBackupTuning tuning = Fast();
  tuning.ssh_options = {
      "-o", "UserKnownHostsFile=" + known_hosts, "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"};
  wire::BackupTargetT t;
  t.destination = "root@127.0.0.1:" + (dir_ / "remote");
  t.ssh_key = sshd.client_key();
  t.ssh_port = static_cast<uint16_t>(sshd.port());
  ExpectOtherRunKept(t, dir_ / "remote", /*sidecar=*/false, tuning);
  EXPECT_FALSE(fs::exists(dir_ / "remote/.ledgerkeep-incoming/client1/race.tar.gz"));
}

TEST_F(ClientBackupRaceTest, ArchiveThatAppearsBeforeShippingToAnRsyncDaemonIsNeverReplaced) {
  test::RsyncDaemon daemon;
  LK_ASSERT_OK(daemon.Start(dir_ / "daemon"));
  wire::BackupTargetT t;
  t.destination = "rsync://127.0.0.1:" + std::to_string(daemon.port()) + "/backup/c";
  fs::create_directories(daemon.module_dir() + "/c");
  ExpectOtherRunKept(t, daemon.module_dir() + "/c", /*sidecar=*/true, Fast());
}

TEST_F(ClientBackupTest, CheckOnlyReportsATakenNameAndWritesNothing) {
  ClientTree tree(dir_ / "node");
  ClientBackupHandler h(
      "client1", tree.paths, dir_ / "work",
      [&]() -> Result<wire::BackupTargetT> {
        wire::BackupTargetT t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  wire::ClientBackupT free = Named("free");
  free.check_only = true;
  LK_EXPECT_OK(Run(h, std::move(free)).status);
  EXPECT_FALSE(fs::exists(dir_ / "backups/free.tar.gz"));
  EXPECT_FALSE(fs::exists(dir_ / "backups/free.tar.gz.sha256"));

  WriteFile(dir_ / "backups/taken.tar.gz.sha256", "x\n");
  wire::ClientBackupT taken = Named("taken");
  taken.check_only = true;
  CommandOutcome out = Run(h, std::move(taken));
  EXPECT_EQ(out.status.code(), StatusCode::kAlreadyExists) << out.status.ToString();
  EXPECT_NE(out.status.message().find("taken.tar.gz"), std::string::npos) << out.status.ToString();
  wire::ClientBackupT bad = Named("ünï");
  bad.check_only = true;
  EXPECT_EQ(Run(h, std::move(bad)).status.code(), StatusCode::kInvalidArgument);
}

TEST_F(ClientBackupTest, MissingPathFailsBeforeAnythingIsShipped) {
  ClientBackupHandler h(
      "client1", {dir_ / "config/nope.conf"}, dir_ / "work",
      [&]() -> Result<wire::BackupTargetT> {
        wire::BackupTargetT t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  CommandOutcome out = Run(h, Named("x"));
  EXPECT_EQ(out.status.code(), StatusCode::kNotFound) << out.status.ToString();
  EXPECT_NE(out.status.message().find(dir_ / "config/nope.conf"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "backups/x.tar.gz"));
  EXPECT_TRUE(fs::is_empty(dir_ / "work"));
}

}  // namespace
}  // namespace ledgerkeep
