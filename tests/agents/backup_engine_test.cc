// BackupEngine against a real ledgerd, real rsync and real RocksDB: what a
// snapshot is, how incremental runs share files, and how runs fail without
// losing anything.
#include "agents/backup_engine.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "ledger/control_client.h"
#include "ledger/ledger_store.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace ledgerkeep {
namespace {

using namespace std::chrono_literals;
using test::ChildProcess;
using test::TempDir;

std::string Bin(const std::string& name) { return std::string(LEDGERKEEP_BIN_DIR) + "/" + name; }

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
    auto p = ChildProcess::Start(
        {{Bin("ledgerd"), "--db", db_, "--control", sock_, "--blocks-per-sec", "400", "--payload-bytes", "4096",
          "--write-buffer-bytes", "262144"},
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

  static ino_t Inode(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
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
  test::RunResult ldb = test::RunToCompletion(
      {{"/usr/bin/ldb", "--db=" + restored, "checkconsistency"}, tmp_.path() + "/ldb.out", tmp_.path() + "/ldb.err"},
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
  const std::string a = dest + "/snapshots/" + first.snapshot_id + "/data/";
  const std::string b = dest + "/snapshots/" + second.snapshot_id + "/data/";
  int shared = 0;
  for (const auto& e : std::filesystem::directory_iterator(a)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".sst" || !std::filesystem::exists(b + name)) continue;
    // Same SST in both snapshots: one file on disk (hard link), not re-sent.
    EXPECT_EQ(Inode(a + name), Inode(b + name)) << name << " was copied again";
    ++shared;
  }
  EXPECT_GT(shared, 0) << "the test ledger produced no SST that survived into the second snapshot";
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

TEST_F(BackupEngineTest, RetentionKeepsTheNewestSnapshots) {
  const std::string dest = tmp_.path() + "/backups/r1";
  auto o = Options(dest);
  o.keep_last = 2;
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    auto r = engine_.Run(o);
    ASSERT_TRUE(r.ok) << r.error;
    ids.push_back(r.snapshot_id);
  }
  EXPECT_FALSE(std::filesystem::exists(dest + "/snapshots/" + ids[0]));
  EXPECT_FALSE(std::filesystem::exists(dest + "/snapshots/" + ids[1]));
  EXPECT_TRUE(std::filesystem::exists(dest + "/snapshots/" + ids[2] + "/DONE"));
  EXPECT_TRUE(std::filesystem::exists(dest + "/snapshots/" + ids[3] + "/DONE"));
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
  const bool first_kept = !first.ok || std::filesystem::exists(dest + "/snapshots/" + first.snapshot_id + "/DONE");
  ::umount2(mnt.c_str(), MNT_DETACH);
  ASSERT_FALSE(res.ok);
  EXPECT_NE(res.error.find("NoSpace"), std::string::npos) << res.error;
  EXPECT_TRUE(first_kept) << "the earlier snapshot was damaged by the failed run";
}

}  // namespace
}  // namespace ledgerkeep
