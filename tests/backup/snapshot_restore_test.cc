// SnapshotVerifier and RestoreSnapshot against real snapshots: a ledger DB
// written with LedgerStore, backed up by BackupEngine with real rsync to a
// local destination, then damaged the ways backups get damaged.
#include "backup/snapshot_restore.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "backup/backup_engine.h"
#include "ledger/block.h"
#include "ledger/ledger_store.h"
#include "tests/common/sshd_fixture.h"
#include "tests/ledger/rocksdb_edit.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string Bin(const std::string& name) { return std::string(LEDGERKEEP_BIN_DIR) + "/" + name; }

class SnapshotRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A ledger with a few SSTs (small memtables, flushed).
    ledger::StoreOptions so;
    so.create_if_missing = true;
    so.params.payload_bytes = 2048;
    so.write_buffer_size = 256 << 10;
    {
      auto store = ledger::LedgerStore::Open(db_, so);
      ASSERT_TRUE(store.ok()) << store.status().ToString();
      for (int i = 0; i < 600; ++i) {
        auto& s = **store;
        const auto block = ledger::GenerateBlock(s.GetMeta().params, s.GetBlockIds().last_reachable + 1,
                                                 s.LastReachableDigest());
        ASSERT_TRUE(s.AppendBlock(block, false).ok());
      }
      ASSERT_TRUE((*store)->Flush().ok());
    }
    id_ = Backup();
  }

  // One backup run of the (stopped) ledger; returns the snapshot id.
  std::string Backup() {
    BackupEngine engine(ProcessRunner::Real(), Clock::System(), dir_ / "work");
    BackupRunOptions o;
    auto d = ParseDestination(dest_, "", "", 0);
    EXPECT_TRUE(d.ok());
    o.destination = *d;
    o.cluster_id = "t";
    o.node_id = "r1";
    o.ledger_db = db_;
    auto r = engine.Run(o);
    EXPECT_TRUE(r.ok) << r.error;
    return r.snapshot_id;
  }

  std::string SnapDir(const std::string& id) const { return dest_ + "/snapshots/" + id; }

  // The largest SST of a snapshot (relative to the snapshot dir).
  std::string LargestSst(const std::string& id) const {
    std::string best;
    uintmax_t size = 0;
    for (const auto& e : fs::directory_iterator(SnapDir(id) + "/data")) {
      if (e.path().extension() == ".sst" && e.file_size() > size) {
        size = e.file_size();
        best = "data/" + e.path().filename().string();
      }
    }
    return best;
  }

  static void FlipByte(const std::string& path, uintmax_t offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
  }

  SnapshotAccess Access() const {
    SnapshotAccess a;
    a.destination = *ParseDestination(dest_, "", "", 0);
    a.work_dir = dir_ / "restore-work";
    return a;
  }

  static bool Names(const SnapshotVerification& v, const std::string& file, const std::string& what) {
    for (const auto& p : v.problems)
      if (p.file == file && p.what.find(what) != std::string::npos) return true;
    return false;
  }

  TempDir dir_{"lk-restore-"};
  std::string db_ = dir_ / "db";
  std::string dest_ = dir_ / "dest";
  std::string id_;
};

TEST_F(SnapshotRestoreTest, CompleteSnapshotVerifiesWithItsBlockIds) {
  auto v = VerifySnapshotDir(SnapDir(id_));
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->ok) << DescribeProblems(*v);
  EXPECT_EQ(v->snapshot_id, id_);
  EXPECT_EQ(v->last_reachable, 600u);
  EXPECT_EQ(v->last_block_id, 600u);
  EXPECT_EQ(v->blocks_verified, 600u);
  EXPECT_GT(v->files_checked, 3u);
  EXPECT_GT(v->bytes_checked, 600u * 2048u);
}

TEST_F(SnapshotRestoreTest, ChainBreakThatChecksumsCannotSeeIsNamedByBlock) {
  // A block changed in the source DB before the backup: every checksum of
  // the snapshot matches, only the digest chain (verified in two parallel
  // parts here) shows it.
  {
    ledger::StoreOptions so;
    auto store = ledger::LedgerStore::Open(db_, so);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (int i = 0; i < 1500; ++i) {
      auto& s = **store;
      const auto block = ledger::GenerateBlock(s.GetMeta().params, s.GetBlockIds().last_reachable + 1,
                                               s.LastReachableDigest());
      ASSERT_TRUE(s.AppendBlock(block, false).ok());
    }
    ASSERT_TRUE((*store)->Flush().ok());
  }
  ledger::testing::FlipByteInBlock(db_, 1700, 100);
  // A fresh destination: no --link-dest against a snapshot taken within the
  // same second (see the report: rsync's size+mtime quick check would link
  // the earlier CURRENT, which this verifier then reports).
  fs::remove_all(dest_);
  fs::remove_all(dir_ / "work");
  const std::string id = Backup();
  auto v = VerifySnapshotDir(SnapDir(id));
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->ok);
  ASSERT_EQ(v->problems.size(), 1u) << DescribeProblems(*v);
  EXPECT_TRUE(v->problems[0].block == 1700 || v->problems[0].block == 1701) << DescribeProblems(*v);
  EXPECT_NE(v->problems[0].what.find("digest chain broken"), std::string::npos) << DescribeProblems(*v);
  EXPECT_EQ(v->last_reachable, 2100u);
}

// Regression: CURRENT rewritten to the same size within the same second as
// the previous snapshot's copy was hard-linked from it (rsync's quick check
// with --link-dest) and its checksum carried over; the snapshot pointed at a
// MANIFEST it did not hold.
TEST_F(SnapshotRestoreTest, SnapshotAfterCurrentChangedWithinTheSameSecondStaysRestorable) {
  {
    auto store = ledger::LedgerStore::Open(db_, ledger::StoreOptions{});  // rolls the MANIFEST: new CURRENT
    ASSERT_TRUE(store.ok()) << store.status().ToString();
  }
  const std::string prev_current = SnapDir(id_) + "/data/CURRENT";
  ASSERT_EQ(fs::file_size(prev_current), fs::file_size(db_ + "/CURRENT"));
  ASSERT_NE(test::ReadFile(prev_current), test::ReadFile(db_ + "/CURRENT"));
  // Same second, different nanoseconds, in the source and in the previous
  // snapshot (and its manifest).
  const auto second = std::chrono::floor<std::chrono::seconds>(fs::last_write_time(prev_current));
  fs::last_write_time(prev_current, second + std::chrono::milliseconds(100));
  fs::last_write_time(db_ + "/CURRENT", second + std::chrono::milliseconds(700));
  const std::string id = Backup();
  auto v = VerifySnapshotDir(SnapDir(id));
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok) << DescribeProblems(*v);
  EXPECT_EQ(test::ReadFile(SnapDir(id) + "/data/CURRENT"), test::ReadFile(db_ + "/CURRENT"));
}

TEST_F(SnapshotRestoreTest, CorruptedSstByteIsReportedWithTheFileName) {
  const std::string sst = LargestSst(id_);
  ASSERT_FALSE(sst.empty());
  FlipByte(SnapDir(id_) + "/" + sst, fs::file_size(SnapDir(id_) + "/" + sst) / 2);
  auto v = VerifySnapshotDir(SnapDir(id_));
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->ok);
  EXPECT_TRUE(Names(*v, sst, "checksum mismatch")) << DescribeProblems(*v);
  // The damaged block is named too when RocksDB reads it.
  bool block_named = false;
  for (const auto& p : v->problems) block_named = block_named || p.block != 0;
  EXPECT_TRUE(block_named) << DescribeProblems(*v);
}

TEST_F(SnapshotRestoreTest, SnapshotWithoutDoneIsIncompleteAndNotRestorable) {
  fs::remove(SnapDir(id_) + "/DONE");
  auto v = VerifySnapshotDir(SnapDir(id_));
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->ok);
  EXPECT_TRUE(Names(*v, "DONE", "incomplete")) << DescribeProblems(*v);

  // Not offered as latest, and refused by id, naming why.
  auto latest = ResolveSnapshot(ProcessRunner::Real(), Access(), "latest");
  EXPECT_EQ(latest.status().code(), StatusCode::kNotFound) << latest.status().ToString();
  RestoreRequest req;
  req.source_node = "r1";
  req.snapshot_id = id_;
  req.db_dir = dir_ / "restored";
  Status s = RestoreSnapshot(ProcessRunner::Real(), Access(), req, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("has no DONE"), std::string::npos) << s.ToString();
  EXPECT_FALSE(fs::exists(dir_ / "restored"));
}

TEST_F(SnapshotRestoreTest, TruncatedManifestIsReported) {
  const std::string m = SnapDir(id_) + "/MANIFEST.json";
  fs::resize_file(m, fs::file_size(m) / 2);
  auto v = VerifySnapshotDir(SnapDir(id_));
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->ok);
  EXPECT_TRUE(Names(*v, "MANIFEST.json", "does not match DONE")) << DescribeProblems(*v);
  EXPECT_TRUE(Names(*v, "MANIFEST.json", "unparsable")) << DescribeProblems(*v);
}

TEST_F(SnapshotRestoreTest, MissingAndTruncatedDataFilesAreNamed) {
  const std::string sst = LargestSst(id_);
  fs::resize_file(SnapDir(id_) + "/" + sst, 100);
  std::string other;
  for (const auto& e : fs::directory_iterator(SnapDir(id_) + "/data"))
    if (e.path().filename().string().rfind("MANIFEST-", 0) == 0)
      other = "data/" + e.path().filename().string();
  ASSERT_FALSE(other.empty());
  fs::remove(SnapDir(id_) + "/" + other);
  auto v = VerifySnapshotDir(SnapDir(id_));
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(Names(*v, sst, "truncated")) << DescribeProblems(*v);
  EXPECT_TRUE(Names(*v, other, "missing")) << DescribeProblems(*v);
}

TEST_F(SnapshotRestoreTest, RestorePublishesAVerifiedCopyThatMatchesTheSource) {
  RestoreRequest req;
  req.source_node = "r1";
  req.snapshot_id = "latest";
  req.db_dir = dir_ / "restored";
  RestoreResult res;
  Status s = RestoreSnapshot(ProcessRunner::Real(), Access(), req, &res);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(res.snapshot_id, id_);
  ASSERT_TRUE(res.verification);
  EXPECT_TRUE(res.verification->ok);
  EXPECT_FALSE(fs::exists(dir_ / "restored.restore-tmp"));
  auto restored = ledger::LedgerStore::OpenReadOnly(dir_ / "restored");
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  auto source = ledger::LedgerStore::OpenReadOnly(db_);
  ASSERT_TRUE(source.ok());
  auto cmp = (*restored)->CompareTo(**source);
  ASSERT_TRUE(cmp.ok());
  EXPECT_FALSE(cmp->first_mismatch.has_value());
  EXPECT_EQ(cmp->to, 600u);
}

// Found trying it as a hostile operator: `restore --to-dir /etc` moved
// /etc aside and deleted it. A restore replaces only a ledger DB (or an
// empty directory) and cleans up only its own scratch directories.
TEST_F(SnapshotRestoreTest, RestoreNeverReplacesOrDeletesADirectoryThatIsNotALedgerDb) {
  const std::string precious = dir_ / "precious";
  fs::create_directories(precious + "/sub");
  std::ofstream(precious + "/sub/file") << "keep me\n";
  RestoreRequest req;
  req.source_node = "r1";
  req.db_dir = precious;
  Status s = RestoreSnapshot(ProcessRunner::Real(), Access(), req, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("never replaces"), std::string::npos) << s.ToString();
  EXPECT_EQ(test::ReadFile(precious + "/sub/file"), "keep me\n");
  EXPECT_FALSE(fs::exists(precious + ".restore-tmp"));

  // Nor what happens to sit at its scratch names.
  const std::string target = dir_ / "target";
  fs::create_directories(target + ".restore-old/photos");
  std::ofstream(target + ".restore-old/photos/a.jpg") << "x";
  req.db_dir = target;
  s = RestoreSnapshot(ProcessRunner::Real(), Access(), req, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_TRUE(fs::exists(target + ".restore-old/photos/a.jpg"));
  fs::remove_all(target + ".restore-old");

  // A ledger DB restored before is replaced, an empty directory filled.
  ASSERT_TRUE(RestoreSnapshot(ProcessRunner::Real(), Access(), req, nullptr).ok());
  ASSERT_TRUE(RestoreSnapshot(ProcessRunner::Real(), Access(), req, nullptr).ok());
  fs::create_directories(dir_ / "empty");
  req.db_dir = dir_ / "empty";
  EXPECT_TRUE(RestoreSnapshot(ProcessRunner::Real(), Access(), req, nullptr).ok());
}

TEST_F(SnapshotRestoreTest, CorruptSnapshotIsNotRestoredAndTheEarlierDbStays) {
  RestoreRequest req;
  req.source_node = "r1";
  req.db_dir = dir_ / "restored";
  ASSERT_TRUE(RestoreSnapshot(ProcessRunner::Real(), Access(), req, nullptr).ok());
  const auto before = fs::last_write_time(dir_ / "restored");

  const std::string sst = LargestSst(id_);
  FlipByte(SnapDir(id_) + "/" + sst, 4096);
  RestoreResult res;
  Status s = RestoreSnapshot(ProcessRunner::Real(), Access(), req, &res);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find(sst), std::string::npos) << s.ToString();
  ASSERT_TRUE(res.verification);
  EXPECT_FALSE(res.verification->ok);
  EXPECT_FALSE(fs::exists(dir_ / "restored.restore-tmp"));
  EXPECT_EQ(fs::last_write_time(dir_ / "restored"), before);
  auto kept = VerifySnapshotDir(SnapDir(id_));  // (sanity: the damage is real)
  ASSERT_TRUE(kept.ok());
  EXPECT_FALSE(kept->ok);
  auto store = ledger::LedgerStore::OpenReadOnly(dir_ / "restored");
  ASSERT_TRUE(store.ok());
  auto chain = (*store)->VerifyChain(0, 0);
  ASSERT_TRUE(chain.ok());
  EXPECT_TRUE(chain->ok()) << "the earlier restore was damaged";
}

TEST_F(SnapshotRestoreTest, VerifyBackupInPlaceChecksEveryCompleteSnapshot) {
  const std::string second = Backup();
  auto r = VerifyBackup(ProcessRunner::Real(), Access(), "", /*all=*/true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->method, "in place");
  ASSERT_EQ(r->snapshots.size(), 2u);
  EXPECT_TRUE(r->snapshots[0].ok && r->snapshots[1].ok);

  // Damage the first: --all finds it, latest does not look at it.
  FlipByte(SnapDir(id_) + "/" + LargestSst(id_), 100);
  auto again = VerifyBackup(ProcessRunner::Real(), Access(), "", true);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->snapshots[0].ok);
  auto latest = VerifyBackup(ProcessRunner::Real(), Access(), "latest", false);
  ASSERT_TRUE(latest.ok());
  ASSERT_EQ(latest->snapshots.size(), 1u);
  EXPECT_EQ(latest->snapshots[0].snapshot_id, second);
}

TEST_F(SnapshotRestoreTest, DbToolVerifySnapshotExitsOneNamingTheFile) {
  test::ProcessSpec ok_spec;
  ok_spec.argv = {Bin("ledgerkeep-db"), SnapDir(id_), "verifySnapshot"};
  ok_spec.stdout_path = dir_ / "ok.out";
  ok_spec.stderr_path = dir_ / "ok.err";
  auto ok = test::RunToCompletion(std::move(ok_spec), std::chrono::milliseconds(60'000));
  EXPECT_EQ(ok.exit_code, 0) << ok.Describe();
  auto parsed = VerificationFromJson(ok.out);
  ASSERT_TRUE(parsed.ok()) << ok.out;
  EXPECT_TRUE(parsed->ok);
  EXPECT_EQ(parsed->last_block_id, 600u);

  const std::string sst = LargestSst(id_);
  FlipByte(SnapDir(id_) + "/" + sst, 200);
  test::ProcessSpec bad_spec;
  bad_spec.argv = {Bin("ledgerkeep-db"), SnapDir(id_), "verifySnapshot"};
  bad_spec.stdout_path = dir_ / "bad.out";
  bad_spec.stderr_path = dir_ / "bad.err";
  auto bad = test::RunToCompletion(std::move(bad_spec), std::chrono::milliseconds(60'000));
  EXPECT_EQ(bad.exit_code, 1) << bad.Describe();
  auto report = VerificationFromJson(bad.out);
  ASSERT_TRUE(report.ok()) << bad.out;
  EXPECT_FALSE(report->ok);
  EXPECT_TRUE(Names(*report, sst, "checksum mismatch")) << bad.out;
}

TEST_F(SnapshotRestoreTest, SshDestinationIsVerifiedAndRestoredOverSsh) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd here";
  testing::SshdServer sshd;
  ASSERT_TRUE(sshd.Start().ok());
  SnapshotAccess a;
  auto d =
      ParseDestination("root@127.0.0.1:" + dest_, "", sshd.client_key(), static_cast<uint16_t>(sshd.port()));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  a.destination = *d;
  a.ssh_options = {
      "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"};
  a.work_dir = dir_ / "w";

  auto good = VerifyBackup(ProcessRunner::Real(), a, "latest", false);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  // ledgerkeep-db is not installed on this "backup host": fetched and
  // verified here (an installed one would run there; the report says which).
  EXPECT_TRUE(good->method.rfind("fetched to", 0) == 0 || good->method.rfind("on the backup host", 0) == 0)
      << good->method;
  ASSERT_EQ(good->snapshots.size(), 1u);
  EXPECT_TRUE(good->snapshots[0].ok) << DescribeProblems(good->snapshots[0]);

  RestoreRequest req;
  req.source_node = "r1";
  req.db_dir = dir_ / "over-ssh";
  RestoreResult res;
  Status s = RestoreSnapshot(ProcessRunner::Real(), a, req, &res);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(res.verification->last_block_id, 600u);

  const std::string sst = LargestSst(id_);
  FlipByte(SnapDir(id_) + "/" + sst, 300);
  auto bad = VerifyBackup(ProcessRunner::Real(), a, "latest", false);
  ASSERT_TRUE(bad.ok()) << bad.status().ToString();
  EXPECT_FALSE(bad->snapshots[0].ok);
  EXPECT_TRUE(Names(bad->snapshots[0], sst, "checksum mismatch")) << DescribeProblems(bad->snapshots[0]);
  EXPECT_FALSE(fs::exists(dir_ / "w/verify/" + id_)) << "the fetched copy was left behind";
}

}  // namespace
}  // namespace ledgerkeep
