// BackupEngine against a real ledgerd, real rsync and real RocksDB: what a
// snapshot is, how incremental runs share files, and how runs fail without
// losing anything.
#include "backup/backup_engine.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "backup/ledger_probe.h"
#include "common/file_util.h"
#include "ledger/control_client.h"
#include "ledger/ledger_store.h"
#include "tests/common/sshd_fixture.h"
#include "tests/support/child_process.h"
#include "tests/support/page_cache.h"
#include "tests/support/snapshot_checks.h"
#include "tests/support/temp_dir.h"
#include "tests/support/transfer_fakes.h"
#include "tests/support/wait.h"

namespace ledgerkeep {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::RsyncDaemon;
using test::TempDir;
using test::ThrottledRelay;

std::string Bin(const std::string& name) { return std::string(LEDGERKEEP_BIN_DIR) + "/" + name; }

// Processes whose command line (arguments joined by spaces) contains every
// needle, e.g. the rsync copying into one snapshot.
std::vector<pid_t> FindProcesses(const std::vector<std::string>& needles) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = test::ReadFile(e.path().string() + "/cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    bool all = !cmd.empty();
    for (const auto& n : needles) all = all && cmd.find(n) != std::string::npos;
    if (all) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Every file of a published snapshot has the checksum its manifest lists,
// and DONE holds the manifest's digest.
void ExpectSnapshotVerifies(const std::string& snap) {
  const std::string manifest = test::ReadFile(snap + "/MANIFEST.json");
  std::string done = test::ReadFile(snap + "/DONE");
  while (!done.empty() && done.back() == '\n') done.pop_back();
  EXPECT_EQ(done, Sha256Hex(manifest)) << snap;
  auto m = SnapshotManifest::Parse(manifest);
  ASSERT_TRUE(m.ok()) << snap << ": " << m.status().ToString();
  EXPECT_FALSE(m->files.empty());
  for (const auto& f : m->files) {
    auto h = HashFileXxh128(snap + "/data/" + f.path);
    ASSERT_TRUE(h.ok()) << f.path << ": " << h.status().ToString();
    EXPECT_EQ(*h, f.xxh128) << snap << "/data/" << f.path;
  }
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Unmounts (lazily) when the test leaves its scope, assertions included.
struct ScopedUnmount {
  std::string path;
  ~ScopedUnmount() { ::umount2(path.c_str(), MNT_DETACH); }
};

class BackupEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = tmp_.path() + "/node/db";
    sock_ = tmp_.path() + "/node/ledgerd.sock";
    std::filesystem::create_directories(tmp_.path() + "/node");
    StartLedgerd();
  }
  void TearDown() override { StopLedgerd(); }

  void StartLedgerd() {
    auto p = ChildProcess::Start({{Bin("ledgerd"), "--db", db_, "--control", sock_, "--blocks-per-sec", "400",
                                   "--payload-bytes", "4096", "--write-buffer-bytes", "262144"},
                                  tmp_.path() + "/ledgerd.log"});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ledgerd_ = std::move(*p);
    ASSERT_TRUE(test::WaitUntil([&] { return LastBlock() > 0; }, 10s)) << "ledgerd did not start";
  }
  void StopLedgerd() {
    if (!ledgerd_) return;
    ledgerd_->Kill(SIGTERM);
    EXPECT_EQ(ledgerd_->WaitExit(20s), 0);
    ledgerd_.reset();
  }
  uint64_t LastBlock() {
    ledger::LedgerControlClient c(sock_);
    auto st = c.GetStatus();
    return st.ok() ? st->last_reachable : 0;
  }
  void WaitForBlocks(uint64_t n) {
    const uint64_t target = LastBlock() + n;
    ASSERT_TRUE(test::WaitUntil([&] { return LastBlock() >= target; }, 20s));
  }

  BackupRunOptions Options(const std::string& dest, const std::string& node = "r1") {
    BackupRunOptions o;
    o.destination = *ParseDestination(dest, "", "", 0);
    o.cluster_id = "test";
    o.node_id = node;
    o.ledger_db = db_;
    o.ledger_control = sock_;
    o.max_attempts = 2;
    o.backoff_base_ms = 50;
    o.io_timeout_s = 10;
    return o;
  }
  // Options for `node` backing up to directory `dest` on `sshd`, over SSH.
  BackupRunOptions SshOptions(const testing::SshdServer& sshd, const std::string& dest,
                              const std::string& node = "r1") {
    auto o = Options(dest, node);
    auto parsed =
        ParseDestination("root@127.0.0.1:" + dest, "", sshd.client_key(), static_cast<uint16_t>(sshd.port()));
    EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
    if (parsed.ok()) o.destination = *parsed;
    o.ssh_options = {"-o", "UserKnownHostsFile=" + sshd.dir() + "/known_hosts",
                     "-o", "StrictHostKeyChecking=no",
                     "-o", "LogLevel=ERROR"};
    return o;
  }

  // RocksDB checkpoints a run left next to the ledger DB.
  std::vector<std::string> LeakedCheckpoints() {
    std::vector<std::string> out;
    for (const auto& n : DirEntries(tmp_.path() + "/node"))
      if (n.rfind(".ledgerkeep-checkpoint-", 0) == 0) out.push_back(n);
    return out;
  }

  static ino_t Inode(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
  }

  // A progress hook that SIGKILLs this test's rsync (to r1 through `relay`)
  // at its first transfer report, then lifts the relay's rate limit so the
  // retry need not crawl. `killed` gets the pid.
  static std::function<void(const TransferProgress&)> KillRsyncOnce(ThrottledRelay& relay, pid_t& killed,
                                                                   int& transfer_reports) {
    return [&relay, &killed, &transfer_reports](const TransferProgress& p) {
      if (p.phase != "transfer" || killed != 0) return;
      ++transfer_reports;
      // The relay's port singles out this test's rsync (other tests running
      // in parallel copy to an rsync daemon's "backup" module too).
      auto pids = FindProcesses(
          {"--info=progress2", "127.0.0.1:" + std::to_string(relay.port()) + "/backup/r1/snapshots/"});
      if (pids.empty()) return;  // the first report comes before rsync starts
      ::kill(pids.front(), SIGKILL);
      killed = pids.front();
      relay.SetRate(0);
    };
  }

  // SSTs in both snapshot data dirs `a` and `b` (trailing '/'); each must be
  // one file on disk (a --link-dest hard link), not sent again.
  static int SharedSstFiles(const std::string& a, const std::string& b) {
    int shared = 0;
    for (const auto& e : std::filesystem::directory_iterator(a)) {
      const std::string name = e.path().filename().string();
      if (e.path().extension() != ".sst" || !std::filesystem::exists(b + name)) continue;
      EXPECT_EQ(Inode(a + name), Inode(b + name)) << name << " was copied again";
      ++shared;
    }
    return shared;
  }

  TempDir tmp_{"lk-backup-"};
  std::string db_, sock_;
  std::unique_ptr<ChildProcess> ledgerd_;
  BackupEngine engine_{ProcessRunner::Real(), Clock::System(), tmp_.path() + "/work"};
};

TEST_F(BackupEngineTest, SnapshotIsAConsistentRestorableCopyOfTheLedger) {
  WaitForBlocks(300);
  const std::string dest = tmp_.path() + "/backups/r1";
  auto res = engine_.Run(Options(dest));
  ASSERT_TRUE(res.ok) << res.error;
  EXPECT_TRUE(res.consistent);
  EXPECT_GT(res.last_block_id, 0u);
  const std::string snap = dest + "/snapshots/" + res.snapshot_id;
  ASSERT_TRUE(std::filesystem::exists(snap + "/DONE"));
  // DONE holds the manifest's digest.
  std::ifstream done(snap + "/DONE");
  std::string digest;
  done >> digest;
  std::ifstream mf(snap + "/MANIFEST.json");
  std::string manifest((std::istreambuf_iterator<char>(mf)), std::istreambuf_iterator<char>());
  EXPECT_EQ(digest, Sha256Hex(manifest));
  auto m = SnapshotManifest::Parse(manifest);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->last, res.last_block_id);
  EXPECT_EQ(m->node, "r1");
  for (const auto& f : m->files) {
    EXPECT_EQ(*HashFileXxh128(snap + "/data/" + f.path), f.xxh128) << f.path;
  }

  // Copy the snapshot back and open it as a ledger: the chain verifies, and
  // it equals the (stopped) source up to the snapshot's block.
  const std::string restored = tmp_.path() + "/restored";
  std::filesystem::copy(snap + "/data", restored, std::filesystem::copy_options::recursive);
  StopLedgerd();
  auto copy = ledger::LedgerStore::OpenReadOnly(restored);
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  EXPECT_EQ((*copy)->GetBlockIds().last, res.last_block_id);
  auto verify = (*copy)->VerifyChain(0, 0);
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->ok()) << verify->error;
  auto source = ledger::LedgerStore::OpenReadOnly(db_);
  ASSERT_TRUE(source.ok());
  auto cmp = (*copy)->CompareTo(**source);
  ASSERT_TRUE(cmp.ok());
  EXPECT_FALSE(cmp->first_mismatch.has_value()) << "mismatch at " << *cmp->first_mismatch;
  EXPECT_EQ(cmp->to, res.last_block_id);
  copy->reset();
  source->reset();
  // RocksDB's own consistency check (Debian rocksdb-tools).
  test::RunResult ldb = test::RunToCompletion({{"/usr/bin/ldb", "--db=" + restored, "checkconsistency"},
                                               tmp_.path() + "/ldb.out",
                                               tmp_.path() + "/ldb.err"},
                                              60s);
  EXPECT_EQ(ldb.exit_code, 0) << ldb.Describe();
}

TEST_F(BackupEngineTest, IncrementalRunResendsNoUnchangedSstFile) {
  WaitForBlocks(600);
  const std::string dest = tmp_.path() + "/backups/r1";
  auto first = engine_.Run(Options(dest));
  ASSERT_TRUE(first.ok) << first.error;
  WaitForBlocks(50);
  auto second = engine_.Run(Options(dest));
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_GT(second.last_block_id, first.last_block_id);
  EXPECT_LT(second.bytes_transferred, second.bytes_total / 2);
  EXPECT_GT(SharedSstFiles(dest + "/snapshots/" + first.snapshot_id + "/data/",
                           dest + "/snapshots/" + second.snapshot_id + "/data/"),
            0)
      << "the test ledger produced no SST that survived into the second snapshot";
}

// New data split over parallel rsync streams (--files-from lists, one SSH
// connection each for SSH) must give the same snapshot as one rsync: every
// file present with its manifest checksum, the ledger restorable, and the
// next run still hard-linking the unchanged SSTs.
// A bandwidth limit is per rsync: a limited transfer runs as one stream so
// the limit holds for the node (issue 15 point 5).
TEST_F(BackupEngineTest, ABandwidthLimitedRunUsesOneStream) {
  WaitForBlocks(400);
  auto o = Options(tmp_.path() + "/backups/limited");
  o.transfer_streams = 3;
  o.min_stream_bytes = 1;  // three streams without the limit
  o.bwlimit_bytes_per_s = 1ULL << 30;
  auto res = engine_.Run(o);
  ASSERT_TRUE(res.ok) << res.error;
  EXPECT_EQ(res.streams, 1u);
}

TEST_F(BackupEngineTest, ParallelStreamsGiveACompleteSnapshotAndIncrementalsStillLink) {
  WaitForBlocks(800);
  const std::string dest = tmp_.path() + "/backups/r1";
  auto o = Options(dest);
  o.transfer_streams = 3;
  o.min_stream_bytes = 1;  // this small ledger would otherwise use one stream
  uint64_t last_done = 0;
  bool went_back = false;
  o.on_progress = [&](const TransferProgress& p) {
    if (p.phase != "transfer") return;
    went_back = went_back || p.bytes_done < last_done;
    last_done = p.bytes_done;
  };
  auto first = engine_.Run(o);
  ASSERT_TRUE(first.ok) << first.error;
  EXPECT_EQ(first.streams, 3u);
  EXPECT_FALSE(went_back) << "summed progress went backwards";
  EXPECT_EQ(first.bytes_transferred, first.bytes_total);
  const std::string snap = dest + "/snapshots/" + first.snapshot_id;
  ExpectSnapshotVerifies(snap);
  EXPECT_EQ(DirEntries(snap + "/data").size(), first.files_total) << "a stream's files are missing";
  {
    auto copy = ledger::LedgerStore::OpenReadOnly(snap + "/data");
    ASSERT_TRUE(copy.ok()) << copy.status().ToString();
    EXPECT_EQ((*copy)->GetBlockIds().last, first.last_block_id);
    auto verify = (*copy)->VerifyChain(0, 0);
    ASSERT_TRUE(verify.ok());
    EXPECT_TRUE(verify->ok()) << verify->error;
  }
  WaitForBlocks(50);
  auto second = engine_.Run(o);
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_LT(second.bytes_transferred, second.bytes_total / 2);
  ExpectSnapshotVerifies(dest + "/snapshots/" + second.snapshot_id);
  EXPECT_GT(SharedSstFiles(snap + "/data/", dest + "/snapshots/" + second.snapshot_id + "/data/"), 0);
  // Nothing of the streams is left behind in the work directory.
  for (const auto& n : DirEntries(tmp_.path() + "/work")) EXPECT_EQ(n.find(".list"), std::string::npos) << n;
}

TEST_F(BackupEngineTest, StoppedLedgerIsCopiedConsistentlyUnderItsOwnLock) {
  WaitForBlocks(100);
  StopLedgerd();
  auto res = engine_.Run(Options(tmp_.path() + "/backups/r1"));
  ASSERT_TRUE(res.ok) << res.error;
  EXPECT_TRUE(res.consistent);
  auto ids = (*ledger::LedgerStore::OpenReadOnly(db_))->GetBlockIds();
  EXPECT_EQ(res.last_block_id, ids.last);
}

// Flips one byte in the middle of a file (in an SST: inside a data block),
// keeping its size.
void FlipByteInTheMiddle(const std::string& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f) << path;
  f.seekg(0, std::ios::end);
  const auto size = static_cast<std::streamoff>(f.tellg());
  ASSERT_GT(size, 1024) << path;
  const std::streamoff at = size / 3;
  f.seekg(at);
  char c = 0;
  f.get(c);
  f.seekp(at);
  f.put(static_cast<char>(c ^ 0x5a));
  f.close();
  // A write moves the mtime; make sure it moves even within the second the
  // file was last backed up in (manifests keep mtimes in whole seconds).
  std::filesystem::last_write_time(path, std::filesystem::file_time_type::clock::now() + 2s);
}

// The SST files of a DB directory, largest first (the oldest data).
std::vector<std::string> SstFilesLargestFirst(const std::string& db) {
  std::vector<std::pair<uintmax_t, std::string>> v;
  for (const auto& e : std::filesystem::directory_iterator(db))
    if (e.path().extension() == ".sst") v.emplace_back(e.file_size(), e.path().filename().string());
  std::sort(v.rbegin(), v.rend());
  std::vector<std::string> out;
  for (auto& [size, name] : v) out.push_back(name);
  return out;
}

// Regression (fault suite, corrupt SST): a corrupted SST in the replica's DB
// was checksummed as it was and shipped as a "verified" snapshot.
TEST_F(BackupEngineTest, CorruptedSstIsRefusedOnTheFirstRunAndNothingIsPublished) {
  WaitForBlocks(600);
  StopLedgerd();  // a quiescent DB: compaction cannot remove the file we corrupt
  auto ssts = SstFilesLargestFirst(db_);
  ASSERT_FALSE(ssts.empty());
  FlipByteInTheMiddle(db_ + "/" + ssts.front());
  const std::string dest = tmp_.path() + "/backups/r1";
  auto res = engine_.Run(Options(dest));
  ASSERT_FALSE(res.ok) << "a corrupted SST was shipped as snapshot " << res.snapshot_id;
  EXPECT_NE(res.error.find("Corruption"), std::string::npos) << res.error;
  EXPECT_NE(res.error.find(ssts.front()), std::string::npos) << res.error;
  EXPECT_TRUE(test::SnapshotDirs(dest, /*complete=*/true).empty());
}

TEST_F(BackupEngineTest, SstCorruptedAfterItWasBackedUpIsRefusedAndEarlierSnapshotsStayIntact) {
  WaitForBlocks(600);
  const std::string dest = tmp_.path() + "/backups/r1";
  auto first = engine_.Run(Options(dest));
  ASSERT_TRUE(first.ok) << first.error;
  StopLedgerd();
  // An SST of the first snapshot that is still in the DB.
  std::string victim;
  for (const auto& name : SstFilesLargestFirst(db_)) {
    if (std::filesystem::exists(dest + "/snapshots/" + first.snapshot_id + "/data/" + name)) {
      victim = name;
      break;
    }
  }
  ASSERT_FALSE(victim.empty()) << "no SST of the first snapshot survived";
  FlipByteInTheMiddle(db_ + "/" + victim);
  auto res = engine_.Run(Options(dest));
  ASSERT_FALSE(res.ok) << "a corrupted SST was shipped as snapshot " << res.snapshot_id;
  EXPECT_NE(res.error.find("Corruption"), std::string::npos) << res.error;
  EXPECT_NE(res.error.find(victim), std::string::npos) << res.error;
  EXPECT_EQ(test::SnapshotDirs(dest, /*complete=*/true), std::vector<std::string>{first.snapshot_id});
  ExpectSnapshotVerifies(dest + "/snapshots/" + first.snapshot_id);
}

// Regression (fault suite): from a work dir of 52 bytes or more, the SSH
// control socket path ("<work>/lk-ssh-<40 hex>.<16>") passed the 107-byte
// limit of Unix socket paths and every SSH destination failed.
TEST_F(BackupEngineTest, SshDestinationWorksFromADeepWorkDirectory) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  // 48 bytes here: the old code kept work dirs under 60 bytes for the socket.
  const std::string work = tmp_.path() + "/agent-data-dir/backup/work";
  ASSERT_GT(work.size() + std::string("/lk-ssh-").size() + 40 + 17, 107u) << "not deep enough: " << work;
  BackupEngine deep(ProcessRunner::Real(), Clock::System(), work);
  WaitForBlocks(50);
  const std::string dest = tmp_.path() + "/ssh-dest/r1";
  auto res = deep.Run(SshOptions(sshd, dest));
  ASSERT_TRUE(res.ok) << res.error;
  ExpectSnapshotVerifies(dest + "/snapshots/" + res.snapshot_id);
}

// Regression: remote command output was cut to its last 64 KiB, so a
// manifest larger than that (a DB of ~500+ files) read back from an SSH
// destination did not parse. A run without the local manifest cache (a new
// work dir) then found "no previous snapshot": no --link-dest, every file
// sent and checksummed again.
TEST_F(BackupEngineTest, ManifestOverSixtyFourKibIsReadWholeFromAnSshDestinationAndTheNextRunLinks) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  WaitForBlocks(100);
  StopLedgerd();  // a stopped DB is copied whole, subdirectories included
  std::filesystem::create_directories(db_ + "/archive");
  for (int i = 0; i < 900; ++i) {
    ASSERT_TRUE(WriteFileAtomically(db_ + "/archive/segment-" + std::to_string(100000 + i) + ".bin",
                                    std::string(512, static_cast<char>('a' + i % 26)) + std::to_string(i))
                    .ok());
  }
  const std::string dest = tmp_.path() + "/ssh-dest/r1";
  auto first = engine_.Run(SshOptions(sshd, dest));
  ASSERT_TRUE(first.ok) << first.error;
  const std::string first_snap = dest + "/snapshots/" + first.snapshot_id;
  ASSERT_GT(test::ReadFile(first_snap + "/MANIFEST.json").size(), 64u * 1024) << "manifest too small to test";

  BackupEngine fresh(ProcessRunner::Real(), Clock::System(), tmp_.path() + "/work-without-cache");
  auto second = fresh.Run(SshOptions(sshd, dest));
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_EQ(second.bytes_transferred, 0u) << "unchanged files were sent again";
  const std::string second_snap = dest + "/snapshots/" + second.snapshot_id;
  ExpectSnapshotVerifies(second_snap);
  EXPECT_EQ(Inode(first_snap + "/data/archive/segment-100007.bin"),
            Inode(second_snap + "/data/archive/segment-100007.bin"))
      << "not hard-linked to the previous snapshot";
}

// A stopped DB is copied whole, and rsync -a copies a FIFO in its directory
// too; syncing the snapshot before DONE must pass over it (fdatasync on a
// FIFO fails), not fail the run.
TEST_F(BackupEngineTest, StoppedDbDirectoryWithAFifoIsBackedUpOverSsh) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  WaitForBlocks(50);
  StopLedgerd();
  ASSERT_EQ(::mkfifo((db_ + "/operator.fifo").c_str(), 0600), 0);
  const std::string dest = tmp_.path() + "/ssh-dest/r1";
  auto res = engine_.Run(SshOptions(sshd, dest));
  ASSERT_TRUE(res.ok) << res.error;
  ExpectSnapshotVerifies(dest + "/snapshots/" + res.snapshot_id);
}

// Over SSH the new files are flushed on the backup host as rsync writes
// them and leave its page cache (the test's sshd runs on this host, so the
// test can look); with flush_as_written off they stay cached. Either way
// the snapshot is complete and verifies.
TEST_F(BackupEngineTest, SshSnapshotIsFlushedOutOfTheHostsPageCacheAsItIsWritten) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  WaitForBlocks(800);
  auto cached_pages = [](const std::string& snap) {
    size_t pages = 0;
    for (const auto& e : std::filesystem::directory_iterator(snap + "/data")) {
      if (e.path().extension() == ".sst") pages += test::ResidentPages(e.path().string());
    }
    return pages;
  };
  // (Each measured before the verification reads the files back.)
  const std::string flushed_dest = tmp_.path() + "/ssh-dest/r1";
  auto flushed = engine_.Run(SshOptions(sshd, flushed_dest));
  ASSERT_TRUE(flushed.ok) << flushed.error;
  const std::string flushed_snap = flushed_dest + "/snapshots/" + flushed.snapshot_id;
  EXPECT_EQ(cached_pages(flushed_snap), 0u) << "new SSTs still in the page cache";
  ExpectSnapshotVerifies(flushed_snap);

  BackupEngine other(ProcessRunner::Real(), Clock::System(), tmp_.path() + "/work-r2");
  auto o = SshOptions(sshd, tmp_.path() + "/ssh-dest/r2", "r2");
  o.flush_as_written = false;
  auto kept = other.Run(o);
  ASSERT_TRUE(kept.ok) << kept.error;
  const std::string kept_snap = tmp_.path() + "/ssh-dest/r2/snapshots/" + kept.snapshot_id;
  EXPECT_GT(cached_pages(kept_snap), 0u) << "nothing cached without flushing: the check above proves nothing";
  ExpectSnapshotVerifies(kept_snap);
}

// Over SSH each parallel stream has a connection of its own, opened while
// the source is checksummed; the claim, stream 0 and the publish share the
// run's first connection: three streams, three SSH logins in all.
TEST_F(BackupEngineTest, SshStreamsEachUseOneConnectionAndTheRunLogsInOncePerStream) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  WaitForBlocks(800);
  const std::string dest = tmp_.path() + "/ssh-dest/r1";
  auto o = SshOptions(sshd, dest);
  o.transfer_streams = 3;
  o.min_stream_bytes = 1;
  auto res = engine_.Run(o);
  ASSERT_TRUE(res.ok) << res.error;
  EXPECT_EQ(res.streams, 3u);
  ExpectSnapshotVerifies(dest + "/snapshots/" + res.snapshot_id);
  EXPECT_EQ(ReadFileToString(dest + "/.ledgerkeep-owner").value_or(""), "test r1\n");
  const std::string log = sshd.log();
  size_t logins = 0;
  for (size_t at = log.find("Accepted publickey"); at != std::string::npos;
       at = log.find("Accepted publickey", at + 1)) {
    ++logins;
  }
  EXPECT_EQ(logins, 3u) << log;
}

// Two nodes claiming one new SSH destination at the same moment (one round
// trip each: create the marker if absent, read it back): exactly one gets
// it, the other is refused with the winner's name, on every fresh directory.
// (The marker is created with a hard link, which never overwrites; these
// rounds rarely hit the window where that matters.)
TEST_F(BackupEngineTest, TwoNodesRacingForANewSshDestinationNeverBothWin) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  BackupEngine other(ProcessRunner::Real(), Clock::System(), tmp_.path() + "/work-r2");
  for (int round = 0; round < 3; ++round) {
    const std::string dest = tmp_.path() + "/race-" + std::to_string(round);
    const auto o1 = SshOptions(sshd, dest, "r1"), o2 = SshOptions(sshd, dest, "r2");
    Status s1, s2;
    std::thread t([&] { s2 = other.Claim(o2); });
    s1 = engine_.Claim(o1);
    t.join();
    ASSERT_NE(s1.ok(), s2.ok()) << "round " << round << ": r1 " << s1.ToString() << ", r2 " << s2.ToString();
    const Status& lost = s1.ok() ? s2 : s1;
    const std::string winner = s1.ok() ? "test r1" : "test r2";
    EXPECT_EQ(lost.code(), StatusCode::kFailedPrecondition) << lost.ToString();
    EXPECT_NE(lost.message().find("belongs to '" + winner + "'"), std::string::npos) << lost.ToString();
    EXPECT_EQ(ReadFileToString(dest + "/.ledgerkeep-owner").value_or(""), winner + "\n");
  }
}

TEST_F(BackupEngineTest, DestinationOwnedByAnotherNodeIsRefusedAndUntouched) {
  const std::string dest = tmp_.path() + "/backups/shared";
  auto mine = engine_.Run(Options(dest, "r1"));
  ASSERT_TRUE(mine.ok) << mine.error;
  auto theirs = engine_.Run(Options(dest, "r2"));
  ASSERT_FALSE(theirs.ok);
  EXPECT_NE(theirs.error.find("belongs to 'test r1'"), std::string::npos) << theirs.error;
  // r1's snapshot is still there and still the only one.
  int count = 0;
  for (const auto& e : std::filesystem::directory_iterator(dest + "/snapshots")) {
    (void)e;
    ++count;
  }
  EXPECT_EQ(count, 1);
}

TEST_F(BackupEngineTest, IncompleteSnapshotIsNeverListedCompleteAndTheNextRunRemovesIt) {
  const std::string dest = tmp_.path() + "/backups/r1";
  auto first = engine_.Run(Options(dest));
  ASSERT_TRUE(first.ok) << first.error;
  // What a run killed mid-transfer leaves behind: data without DONE.
  const std::string dead = dest + "/snapshots/20200101T000000.000Z";
  std::filesystem::create_directories(dead + "/data");
  std::ofstream(dead + "/data/000001.sst") << "partial";
  auto list = engine_.List(Options(dest));
  ASSERT_TRUE(list.ok());
  for (const auto& s : *list) {
    if (s.snapshot_id == "20200101T000000.000Z") {
      EXPECT_FALSE(s.complete);
    }
    if (s.snapshot_id == first.snapshot_id) {
      EXPECT_TRUE(s.complete);
    }
  }
  auto second = engine_.Run(Options(dest));
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(dest + "/snapshots/" + first.snapshot_id + "/DONE"));
}

// Issue 13 point 1: the key text went into an ssh command string split at
// spaces and quotes, so "-o ProxyCommand=..." in it ran as root. A key is
// one argv element: a path with spaces, quotes and option text is just a
// file name, and ssh uses the file.
TEST_F(BackupEngineTest, SshKeyPathWithSpacesQuotesAndOptionTextIsOneFileAndRunsNothing) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  const std::string canary = "PWNED-r4-" + std::to_string(::getpid());
  const std::string key_dir = tmp_.path() + "/probe key dir";
  std::filesystem::create_directories(key_dir);
  const std::string key = key_dir + "/id -o ProxyCommand=touch " + canary + " 'x' \"y\"";
  std::filesystem::copy_file(sshd.client_key(), key);
  ::chmod(key.c_str(), 0600);
  const std::string dest = tmp_.path() + "/ssh-dest/r1";
  auto o = SshOptions(sshd, dest);
  o.destination.ssh_key = key;
  auto res = engine_.Run(o);
  ASSERT_TRUE(res.ok) << res.error << "\nsshd log:\n" << sshd.log();
  ExpectSnapshotVerifies(dest + "/snapshots/" + res.snapshot_id);
  EXPECT_FALSE(std::filesystem::exists(canary)) << "the key text ran as a command";
  std::filesystem::remove(canary);

  // A key that is not a file is refused before ssh runs.
  o.destination.ssh_key = tmp_.path() + "/no-such-key -o ProxyCommand=touch " + canary;
  auto refused = engine_.Run(o);
  EXPECT_FALSE(refused.ok);
  EXPECT_NE(refused.error.find("FailedPrecondition"), std::string::npos) << refused.error;
  EXPECT_FALSE(std::filesystem::exists(canary));
}

// Issue 13 point 12: host keys were accepted silently (accept-new) into
// root's known_hosts. Now an unknown key fails unless trust on first use
// was asked for; then the key is pinned in the destination's known_hosts
// file, and a changed key fails even so. root's own file is never written.
TEST_F(BackupEngineTest, UnknownSshHostKeyFailsUnlessTrustOnFirstUseAndIsPinnedThen) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  const std::string roots = std::string(std::getenv("HOME") ? std::getenv("HOME") : "/root") + "/.ssh/known_hosts";
  const std::string roots_before = test::ReadFile(roots);
  const std::string kh = tmp_.path() + "/pinned known_hosts";
  std::ofstream(kh) << "";
  const std::string dest = tmp_.path() + "/ssh-dest/r1";
  auto o = SshOptions(sshd, dest);
  o.ssh_options = {"-o", "LogLevel=ERROR"};  // nothing that weakens the check
  o.destination.known_hosts = kh;
  auto refused = engine_.Run(o);
  ASSERT_FALSE(refused.ok);
  EXPECT_NE(refused.error.find("host key"), std::string::npos) << refused.error;
  EXPECT_NE(refused.error.find("--accept-new-host-key"), std::string::npos) << refused.error;
  EXPECT_FALSE(std::filesystem::exists(dest + "/snapshots"));

  o.destination.accept_new_host_key = true;
  auto first = engine_.Run(o);
  ASSERT_TRUE(first.ok) << first.error;
  EXPECT_FALSE(test::ReadFile(kh).empty()) << "the key was not pinned in " << kh;

  // Pinned now: the strict default takes it. (Each phase has its own work
  // dir: an open SSH master connection would skip the host key check.)
  o.destination.accept_new_host_key = false;
  BackupEngine fresh(ProcessRunner::Real(), Clock::System(), tmp_.path() + "/work-2");
  auto second = fresh.Run(o);
  ASSERT_TRUE(second.ok) << second.error;

  // Another key for that host: refused, trust on first use or not.
  std::istringstream other(test::ReadFile(sshd.wrong_key() + ".pub"));
  std::string type, body;
  other >> type >> body;
  std::ofstream(kh) << "[127.0.0.1]:" << sshd.port() << " " << type << " " << body << "\n";
  o.destination.accept_new_host_key = true;
  BackupEngine third(ProcessRunner::Real(), Clock::System(), tmp_.path() + "/work-3");
  auto changed = third.Run(o);
  EXPECT_FALSE(changed.ok);
  EXPECT_NE(changed.error.find("host key"), std::string::npos) << changed.error;
  EXPECT_EQ(test::ReadFile(roots), roots_before) << roots << " was written";
}

// Issue 13 point 11: snapshots were 0644 files in 0755 directories.
TEST_F(BackupEngineTest, SnapshotsAreReadableByTheOwnerOnlyLocallyAndOverSsh) {
  auto expect_private = [](const std::string& root) {
    size_t seen = 0;
    for (auto it = std::filesystem::recursive_directory_iterator(root);
         it != std::filesystem::recursive_directory_iterator(); ++it) {
      struct stat st {};
      ASSERT_EQ(::lstat(it->path().c_str(), &st), 0);
      if (S_ISLNK(st.st_mode)) continue;
      EXPECT_EQ(st.st_mode & 077, 0u) << it->path() << " has mode " << std::oct << (st.st_mode & 07777);
      ++seen;
    }
    EXPECT_GT(seen, 5u);
  };
  // A DB made readable by others (an older ledgerd, a careless umask): its
  // snapshots are private all the same.
  for (const auto& e : std::filesystem::directory_iterator(db_)) ::chmod(e.path().c_str(), 0644);
  const std::string local = tmp_.path() + "/backups/r1";
  auto res = engine_.Run(Options(local));
  ASSERT_TRUE(res.ok) << res.error;
  expect_private(local);
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  const std::string remote = tmp_.path() + "/ssh-dest/r1";
  auto over_ssh = engine_.Run(SshOptions(sshd, remote));
  ASSERT_TRUE(over_ssh.ok) << over_ssh.error;
  expect_private(remote);
}

// Publish order (issue 13, "tests the redesign leans on"): the data is
// synced, then MANIFEST.json written, then DONE. A manifest that cannot be
// written leaves no DONE: the snapshot stays incomplete.
TEST_F(BackupEngineTest, ManifestThatCannotBeWrittenLeavesNoDone) {
  ManualClock clock(Clock::System()->NowMs());
  BackupEngine engine(ProcessRunner::Real(), &clock, tmp_.path() + "/work-fixed-clock");
  const std::string dest = tmp_.path() + "/backups/r1";
  const std::string id = SnapshotIdFor(clock.NowMs());
  // A directory where the manifest's temporary file goes: its write fails.
  std::filesystem::create_directories(dest + "/snapshots/" + id + "/MANIFEST.json.tmp/x");
  auto res = engine.Run(Options(dest));
  ASSERT_FALSE(res.ok);
  EXPECT_EQ(res.snapshot_id, id);
  EXPECT_FALSE(std::filesystem::exists(dest + "/snapshots/" + id + "/DONE")) << res.error;
  EXPECT_FALSE(std::filesystem::exists(dest + "/snapshots/" + id + "/MANIFEST.json"));
  auto list = engine.List(Options(dest));
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_FALSE((*list)[0].complete);
}

// A backup host whose `sync` fails (an I/O error flushing the snapshot):
// neither MANIFEST.json nor DONE may be written. Injected by running the
// publish step with a PATH whose `sync` always fails.
class FailingSyncOnHostRunner final : public ProcessRunner {
 public:
  explicit FailingSyncOnHostRunner(std::string fake_bin) : fake_bin_(std::move(fake_bin)) {}
  Result<ProcessResult> Run(const std::vector<std::string>& argv, int64_t timeout_ms) override {
    return Real()->Run(Rewrite(argv), timeout_ms);
  }
  Result<ProcessResult> RunStreaming(const std::vector<std::string>& argv, const RunOptions& opts) override {
    return Real()->RunStreaming(Rewrite(argv), opts);
  }
  Result<ProcessId> Spawn(const std::vector<std::string>& argv, const std::string& log) override {
    return Real()->Spawn(argv, log);
  }
  bool IsAlive(const ProcessId& id) override { return Real()->IsAlive(id); }
  Status Signal(const ProcessId& id, int sig) override { return Real()->Signal(id, sig); }
  std::atomic<int> injected{0};

 private:
  std::vector<std::string> Rewrite(std::vector<std::string> argv) {
    if (!argv.empty() && argv[0] == "ssh" && argv.back().find("MANIFEST.json") != std::string::npos) {
      argv.back() = "PATH=" + fake_bin_ + ":\"$PATH\" " + argv.back();
      ++injected;
    }
    return argv;
  }
  std::string fake_bin_;
};

TEST_F(BackupEngineTest, SnapshotDataThatCannotBeSyncedOnTheHostLeavesNoDone) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  const std::string fake_bin = tmp_.path() + "/failing-sync-bin";
  std::filesystem::create_directories(fake_bin);
  std::ofstream(fake_bin + "/sync") << "#!/bin/sh\necho 'sync: Input/output error' >&2\nexit 1\n";
  ::chmod((fake_bin + "/sync").c_str(), 0755);
  FailingSyncOnHostRunner runner(fake_bin);
  BackupEngine engine(&runner, Clock::System(), tmp_.path() + "/work-failing-sync");
  const std::string dest = tmp_.path() + "/ssh-dest/r1";
  auto o = SshOptions(sshd, dest);
  o.flush_as_written = false;
  auto res = engine.Run(o);
  ASSERT_FALSE(res.ok) << "published although the host could not sync the snapshot";
  EXPECT_GT(runner.injected.load(), 0);
  ASSERT_FALSE(res.snapshot_id.empty()) << res.error;
  EXPECT_FALSE(std::filesystem::exists(dest + "/snapshots/" + res.snapshot_id + "/DONE")) << res.error;
  EXPECT_FALSE(std::filesystem::exists(dest + "/snapshots/" + res.snapshot_id + "/MANIFEST.json"));
}

TEST_F(BackupEngineTest, RetentionKeepsTheNewestSnapshots) {
  const std::string dest = tmp_.path() + "/backups/r1";
  auto o = Options(dest);
  o.keep_last = 2;
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    auto r = engine_.Run(o);
    ASSERT_TRUE(r.ok) << r.error;
    ids.push_back(r.snapshot_id);
    // What the metrics report: complete snapshots there once retention ran.
    EXPECT_EQ(r.snapshot_count, std::min(i + 1, 2)) << "run " << i;
  }
  EXPECT_FALSE(std::filesystem::exists(dest + "/snapshots/" + ids[0]));
  EXPECT_FALSE(std::filesystem::exists(dest + "/snapshots/" + ids[1]));
  EXPECT_TRUE(std::filesystem::exists(dest + "/snapshots/" + ids[2] + "/DONE"));
  EXPECT_TRUE(std::filesystem::exists(dest + "/snapshots/" + ids[3] + "/DONE"));
}

TEST_F(BackupEngineTest, HugeMaxAgeDeletesNothingAndAgeRetentionDeletesOnlyOldSnapshots) {
  // Snapshot ids and "now" come from a ManualClock, ten days apart.
  ManualClock clock(1'772'366'400'000);  // 2026-03-01T12:00:00Z
  BackupEngine engine(ProcessRunner::Real(), &clock, tmp_.path() + "/work");
  const std::string dest = tmp_.path() + "/backups/r1";
  auto o = Options(dest);
  // What `--max-age-days 999999999999999` sent before the CLI checked it
  // (days * 86400 wrapped): it deleted every snapshot but the newest.
  const uint64_t days = 999'999'999'999'999;
  o.max_age_s = days * 86'400;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto r = engine.Run(o);
    ASSERT_TRUE(r.ok) << r.error;
    ids.push_back(r.snapshot_id);
    clock.Advance(10LL * 86'400'000);
  }
  for (const auto& id : ids) EXPECT_TRUE(std::filesystem::exists(dest + "/snapshots/" + id + "/DONE")) << id;

  // At day 30 with 15 days: the snapshots of day 0 and 10 go, day 20 stays.
  o.max_age_s = 15 * 86'400;
  auto r = engine.Run(o);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_FALSE(std::filesystem::exists(dest + "/snapshots/" + ids[0]));
  EXPECT_FALSE(std::filesystem::exists(dest + "/snapshots/" + ids[1]));
  EXPECT_TRUE(std::filesystem::exists(dest + "/snapshots/" + ids[2] + "/DONE"));
  EXPECT_TRUE(std::filesystem::exists(dest + "/snapshots/" + r.snapshot_id + "/DONE"));
}

TEST_F(BackupEngineTest, UnreachableDestinationFailsClearlyAndKeepsEarlierSnapshots) {
  auto o = Options("root@127.0.0.1:/tmp/lk-unreachable");
  o.destination.port = 1;  // nothing listens there
  auto res = engine_.Run(o);
  ASSERT_FALSE(res.ok);
  EXPECT_NE(res.error.find("Unavailable"), std::string::npos) << res.error;
}

TEST_F(BackupEngineTest, FullDestinationDiskFailsWithNoSpaceAndKeepsEarlierSnapshots) {
  const std::string mnt = tmp_.path() + "/small";
  std::filesystem::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
  }
  WaitForBlocks(50);
  const std::string dest = mnt + "/r1";
  auto o = Options(dest);
  auto first = engine_.Run(o);  // may or may not fit
  WaitForBlocks(800);           // now certainly larger than 2 MiB
  auto res = engine_.Run(o);
  const bool first_kept =
      !first.ok || std::filesystem::exists(dest + "/snapshots/" + first.snapshot_id + "/DONE");
  ::umount2(mnt.c_str(), MNT_DETACH);
  ASSERT_FALSE(res.ok);
  EXPECT_NE(res.error.find("NoSpace"), std::string::npos) << res.error;
  EXPECT_EQ(res.error_code, StatusCode::kNoSpace) << res.error;
  EXPECT_TRUE(first_kept) << "the earlier snapshot was damaged by the failed run";
}

// One stream running out of space fails the run with NoSpace (not the
// Aborted of the streams it stopped), and the earlier snapshot survives.
TEST_F(BackupEngineTest, ParallelStreamHittingAFullDiskFailsTheRunWithNoSpace) {
  const std::string mnt = tmp_.path() + "/small";
  std::filesystem::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=3m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
  }
  ScopedUnmount unmount{mnt};
  WaitForBlocks(50);
  const std::string dest = mnt + "/r1";
  auto o = Options(dest);
  o.transfer_streams = 3;
  o.min_stream_bytes = 1;
  auto first = engine_.Run(o);  // may or may not fit
  WaitForBlocks(1200);          // now certainly larger than 3 MiB
  auto res = engine_.Run(o);
  ASSERT_FALSE(res.ok);
  EXPECT_NE(res.error.find("NoSpace"), std::string::npos) << res.error;
  EXPECT_EQ(res.error_code, StatusCode::kNoSpace) << res.error;
  if (first.ok) ExpectSnapshotVerifies(dest + "/snapshots/" + first.snapshot_id);
}

// An rsync daemon behind a relay at 512 KiB/s: a copy to it takes seconds,
// so a kill during the transfer always lands while rsync runs.
struct SlowRsyncDestination {
  test::TempDir dir{"lk-rsyncd-"};
  RsyncDaemon daemon;
  std::unique_ptr<ThrottledRelay> relay;

  Status Start() {
    LK_RETURN_IF_ERROR(daemon.Start(dir.path()));
    relay = std::make_unique<ThrottledRelay>(daemon.port(), 512 * 1024);
    return relay->Start();
  }
  std::string Url() const { return "rsync://127.0.0.1:" + std::to_string(relay->port()) + "/backup/r1"; }
  std::string Snapshots() const { return daemon.module_dir() + "/r1/snapshots/"; }
};

TEST_F(BackupEngineTest, RsyncKilledMidTransferIsRetriedAndResumed) {
  SlowRsyncDestination slow;
  ASSERT_TRUE(slow.Start().ok());
  WaitForBlocks(600);
  auto o = Options(slow.Url());
  o.max_attempts = 3;
  pid_t killed = 0;
  int transfer_reports = 0;
  o.on_progress = KillRsyncOnce(*slow.relay, killed, transfer_reports);
  auto res = engine_.Run(o);
  ASSERT_NE(killed, 0) << "never saw the rsync running (" << transfer_reports << " transfer reports)";
  ASSERT_TRUE(res.ok) << res.error;
  EXPECT_EQ(res.attempts, 2u);
  EXPECT_TRUE(res.consistent);
  EXPECT_EQ(DirEntries(slow.Snapshots()), std::vector<std::string>{res.snapshot_id});
  ExpectSnapshotVerifies(slow.Snapshots() + res.snapshot_id);
  EXPECT_TRUE(LeakedCheckpoints().empty());
}

// The incremental case of the above (files are written in place): the
// retried run completes, shares the unchanged SSTs with the first snapshot
// by hard link, and the first snapshot still matches its manifest byte for
// byte (a retry never writes into a file it shares with it).
TEST_F(BackupEngineTest, RsyncKilledMidIncrementalLeavesThePreviousSnapshotIntact) {
  SlowRsyncDestination slow;
  ASSERT_TRUE(slow.Start().ok());
  WaitForBlocks(300);
  auto o = Options(slow.Url());
  o.max_attempts = 3;
  slow.relay->SetRate(0);
  auto first = engine_.Run(o);
  ASSERT_TRUE(first.ok) << first.error;
  WaitForBlocks(900);  // new SSTs: seconds to send at 512 KiB/s
  slow.relay->SetRate(512 * 1024);
  pid_t killed = 0;
  int transfer_reports = 0;
  o.on_progress = KillRsyncOnce(*slow.relay, killed, transfer_reports);
  auto second = engine_.Run(o);
  ASSERT_NE(killed, 0) << "never saw the rsync running (" << transfer_reports << " transfer reports)";
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_EQ(second.attempts, 2u);
  const std::string snaps = slow.Snapshots();
  ExpectSnapshotVerifies(snaps + first.snapshot_id);
  ExpectSnapshotVerifies(snaps + second.snapshot_id);
  EXPECT_GT(SharedSstFiles(snaps + first.snapshot_id + "/data/", snaps + second.snapshot_id + "/data/"), 0);
}

TEST_F(BackupEngineTest, PermissionDeniedDestinationFailsClearly) {
  WaitForBlocks(100);
  // A destination on a read-only filesystem from the start.
  const std::string ro = tmp_.path() + "/ro";
  std::filesystem::create_directories(ro);
  if (::mount("tmpfs", ro.c_str(), "tmpfs", MS_RDONLY, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root): " << std::strerror(errno);
  }
  {
    ScopedUnmount unmount{ro};
    auto res = engine_.Run(Options(ro + "/r1"));
    ASSERT_FALSE(res.ok);
    EXPECT_NE(Lower(res.error).find("read-only"), std::string::npos) << res.error;
    EXPECT_NE(res.error.find(ro + "/r1"), std::string::npos)
        << "the error does not name the destination: " << res.error;
    EXPECT_TRUE(DirEntries(ro).empty());
    EXPECT_TRUE(LeakedCheckpoints().empty());
  }

  // A destination that turns read-only after a first snapshot: the transfer
  // fails as permission denied (not retried), and the first is untouched.
  const std::string mnt = tmp_.path() + "/rw";
  std::filesystem::create_directories(mnt);
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64m"), 0) << std::strerror(errno);
  ScopedUnmount unmount{mnt};
  const std::string dest = mnt + "/r1";
  auto first = engine_.Run(Options(dest));
  ASSERT_TRUE(first.ok) << first.error;
  const std::string snap = dest + "/snapshots/" + first.snapshot_id;
  const std::string manifest_before = test::ReadFile(snap + "/MANIFEST.json");
  ASSERT_EQ(::mount(nullptr, mnt.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0)
      << std::strerror(errno);
  WaitForBlocks(50);
  auto o = Options(dest);
  o.max_attempts = 4;
  auto res = engine_.Run(o);
  ASSERT_FALSE(res.ok);
  EXPECT_NE(res.error.find("PermissionDenied"), std::string::npos) << res.error;
  EXPECT_NE(Lower(res.error).find("read-only"), std::string::npos) << res.error;
  EXPECT_EQ(res.error.find("gave up after"), std::string::npos)
      << "a read-only destination was retried: " << res.error;
  EXPECT_EQ(DirEntries(dest + "/snapshots"), std::vector<std::string>{first.snapshot_id});
  EXPECT_EQ(test::ReadFile(snap + "/MANIFEST.json"), manifest_before);
  ExpectSnapshotVerifies(snap);
  EXPECT_TRUE(LeakedCheckpoints().empty()) << "the failed run left its RocksDB checkpoint behind";
}

// Whether another process could take the DB's LOCK the way RocksDB does (a
// traditional fcntl write lock), as a ledgerd starting now would.
bool AnotherProcessCouldLockTheDb(const std::string& db) {
  const std::string path = db + "/LOCK";
  const pid_t pid = ::fork();
  if (pid == 0) {  // async-signal-safe calls only
    const int fd = ::open(path.c_str(), O_RDWR);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    ::_exit(fd >= 0 && ::fcntl(fd, F_SETLK, &fl) == 0 ? 0 : 1);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Regression (fault suite, an agent frozen during the final sync and thawed
// after the rollback): the lock the copy of a stopped DB holds was a
// traditional fcntl lock, dropped when the checksum pass read and closed the
// DB's LOCK file; the rollback's start then ran ledgerd in the middle of the
// copy, and the snapshot got DONE with a CURRENT its manifest does not match.
// The DB stays locked for the whole copy, against other processes (a ledgerd)
// and against the agent's own start (LedgerDbInUse).
TEST_F(BackupEngineTest, StoppedDbStaysLockedAgainstLedgerdForTheWholeCopy) {
  WaitForBlocks(100);
  StopLedgerd();
  ASSERT_TRUE(AnotherProcessCouldLockTheDb(db_));
  bool probed = false, in_use = false, lockable = true;
  auto o = Options(tmp_.path() + "/backups/r1");
  o.on_progress = [&](const TransferProgress& p) {
    if (p.phase != "transfer" || probed) return;
    probed = true;
    in_use = LedgerDbInUse(db_);  // the checksum pass has read LOCK by now
    lockable = AnotherProcessCouldLockTheDb(db_);
  };
  auto res = engine_.Run(o);
  ASSERT_TRUE(res.ok) << res.error;
  EXPECT_TRUE(res.consistent);
  ASSERT_TRUE(probed) << "no transfer progress reported";
  EXPECT_TRUE(in_use) << "the agent would start ledgerd in the middle of the copy";
  EXPECT_FALSE(lockable) << "a ledgerd could open the DB in the middle of its copy";
  ExpectSnapshotVerifies(tmp_.path() + "/backups/r1/snapshots/" + res.snapshot_id);
  EXPECT_FALSE(LedgerDbInUse(db_)) << "the copy kept the DB locked after it ended";
  EXPECT_TRUE(AnotherProcessCouldLockTheDb(db_));
}

}  // namespace
}  // namespace ledgerkeep
