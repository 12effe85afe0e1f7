// The online window's checkpoints (backup/maintenance_checkpoint.h) and
// shipping one with the engine, against a real ledgerd, real RocksDB and
// real rsync: taken only while wedged at the stop point, kept until
// shipped, a repeated take or ship answers with what is there, an
// interrupted shipment resumes into the same snapshot sending only what is
// missing, the disk check counts the SSTs a checkpoint pins.
#include "backup/maintenance_checkpoint.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <set>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backup/backup_engine.h"
#include "common/file_util.h"
#include "ledger/block.h"
#include "ledger/control_client.h"
#include "tests/support/child_process.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::ChildProcess;
using test::TempDir;

std::string Bin(const std::string& name) { return std::string(LEDGERKEEP_BIN_DIR) + "/" + name; }

class MaintenanceCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = tmp_.path() + "/node/db";
    sock_ = tmp_.path() + "/node/ledgerd.sock";
    fs::create_directories(tmp_.path() + "/node");
    auto p = ChildProcess::Start({{Bin("ledgerd"), "--db", db_, "--control", sock_, "--blocks-per-sec", "400",
                                   "--payload-bytes", "4096", "--write-buffer-bytes", "262144"},
                                  tmp_.path() + "/ledgerd.log"});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ledgerd_ = std::move(*p);
    ASSERT_TRUE(test::WaitUntil([&] { return Ledgerd().last_reachable > 0; }, 10s)) << "ledgerd did not start";
  }
  void TearDown() override {
    if (ledgerd_) {
      ledgerd_->Kill(SIGTERM);
      ledgerd_->WaitExit(20s);
    }
  }
  ledger::LedgerStatus Ledgerd() {
    ledger::LedgerControlClient c(sock_);
    auto st = c.GetStatus();
    return st.ok() ? *st : ledger::LedgerStatus{};
  }
  // Wedges ledgerd at the next-but-one checkpoint window and waits for it.
  uint64_t WedgeNow() {
    const uint64_t last = Ledgerd().last_reachable;
    const uint64_t stop = (last + 300) - ((last + 300) % ledger::kCheckpointWindow);
    ledger::LedgerControlClient c(sock_);
    EXPECT_TRUE(c.Wedge(stop).ok());
    EXPECT_TRUE(test::WaitUntil([&] { return Ledgerd().wedged; }, 20s)) << "not wedged at " << stop;
    return stop;
  }
  void Unwedge() {
    ledger::LedgerControlClient c(sock_);
    EXPECT_TRUE(c.Unwedge().ok());
  }
  BackupRunOptions Ship(const MaintenanceCheckpointInfo& cp) {
    BackupRunOptions o;
    o.destination = *ParseDestination(tmp_.path() + "/backups/r1", "", "", 0);
    o.cluster_id = "test";
    o.node_id = "r1";
    o.ledger_db = db_;
    o.ledger_control = sock_;
    o.max_attempts = 2;
    o.backoff_base_ms = 50;
    o.prepared = cp.checkpoint;
    o.snapshot_id = cp.snapshot_id;
    o.set_run = cp.run;
    o.set_block = cp.stop_point;
    return o;
  }

  TempDir tmp_{"lk-mcp-"};
  std::string db_, sock_;
  std::unique_ptr<ChildProcess> ledgerd_;
  MaintenanceCheckpoints checkpoints_{tmp_.path() + "/node/db", tmp_.path() + "/node/ledgerd.sock", Clock::System()};
  BackupEngine engine_{ProcessRunner::Real(), Clock::System(), tmp_.path() + "/work"};
};

TEST_F(MaintenanceCheckpointTest, ATakeIsRefusedUnlessLedgerdIsWedgedAtTheStopPoint) {
  auto t = checkpoints_.Take(7, 150 * 1000, 0);
  EXPECT_EQ(t.status().code(), StatusCode::kFailedPrecondition) << t.status().ToString();
  EXPECT_NE(t.status().message().find("not wedged at stop point 150000"), std::string::npos) << t.status().ToString();
  const uint64_t stop = WedgeNow();
  auto other = checkpoints_.Take(7, stop + 150, 0);  // wedged, but elsewhere
  EXPECT_EQ(other.status().code(), StatusCode::kFailedPrecondition) << other.status().ToString();
  EXPECT_FALSE(fs::exists(checkpoints_.DirOf(7)));
  EXPECT_EQ(checkpoints_.Take(0, stop, 0).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(MaintenanceCheckpointTest, ACheckpointAtTheStopPointIsShippedAsTheSetsSnapshotAndThenDeleted) {
  const uint64_t stop = WedgeNow();
  LK_ASSERT_OK_AND_ASSIGN(auto cp, checkpoints_.Take(3, stop, 0));
  EXPECT_EQ(cp.checkpoint.last, stop);
  EXPECT_EQ(cp.checkpoint.last_reachable, stop);
  EXPECT_GT(cp.wedged_since_ms, 0);
  {
    ledger::LedgerControlClient c(sock_);
    LK_ASSERT_OK_AND_ASSIGN(auto block, c.GetBlock(stop));
    EXPECT_EQ(cp.stop_digest, block.digest_hex);
  }
  ASSERT_TRUE(fs::is_directory(checkpoints_.DirOf(3)));
  // A repeated take (the broker restarted) answers with the same one.
  LK_ASSERT_OK_AND_ASSIGN(auto again, checkpoints_.Take(3, stop, 0));
  EXPECT_EQ(again.snapshot_id, cp.snapshot_id);
  EXPECT_EQ(again.taken_at_ms, cp.taken_at_ms);

  // The ledger runs on; the checkpoint stays at the stop point.
  Unwedge();
  ASSERT_TRUE(test::WaitUntil([&] { return Ledgerd().last_reachable > stop + 200; }, 20s));

  BackupResult r = engine_.Run(Ship(cp));
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.snapshot_id, cp.snapshot_id);
  EXPECT_EQ(r.last_block_id, stop);
  EXPECT_EQ(r.set_run, 3u);
  const std::string snap = tmp_.path() + "/backups/r1/snapshots/" + cp.snapshot_id;
  ASSERT_TRUE(fs::exists(snap + "/DONE"));
  auto m = nlohmann::json::parse(test::ReadFile(snap + "/MANIFEST.json"));
  EXPECT_EQ(m["set"]["run"], 3);
  EXPECT_EQ(m["set"]["block"], stop);
  EXPECT_EQ(m["block_ids"]["last"], stop);
  EXPECT_TRUE(fs::is_directory(checkpoints_.DirOf(3))) << "the engine deleted a prepared checkpoint";

  // Shipped again (a repeated command): complete already, nothing sent,
  // and nothing checksummed either (regression: the repeat hashed the whole
  // checkpoint before it noticed).
  auto repeat = Ship(cp);
  std::set<std::string> phases;
  repeat.on_progress = [&](const TransferProgress& p) { phases.insert(p.phase); };
  BackupResult twice = engine_.Run(repeat);
  ASSERT_TRUE(twice.ok) << twice.error;
  EXPECT_EQ(twice.snapshot_id, cp.snapshot_id);
  EXPECT_EQ(twice.bytes_transferred, 0u);
  EXPECT_EQ(twice.bytes_total, r.bytes_total);
  EXPECT_EQ(phases.count("checksum"), 0u) << "a repeat of a complete snapshot checksummed its source";

  LK_ASSERT_OK(checkpoints_.MarkShipped(3));
  EXPECT_FALSE(fs::exists(checkpoints_.DirOf(3)));
  LK_ASSERT_OK_AND_ASSIGN(auto found, checkpoints_.Find(3));
  EXPECT_TRUE(found.shipped);
  EXPECT_EQ(found.snapshot_id, cp.snapshot_id);
}

// An interrupted shipment left part of the snapshot (its SSTs) without DONE;
// the next one resumes into it and sends only the rest. (With a new id per
// attempt, the engine deleted the part as an incomplete snapshot and sent
// everything again.)
TEST_F(MaintenanceCheckpointTest, AnInterruptedShipmentResumesIntoTheSameSnapshotSendingOnlyWhatIsMissing) {
  ASSERT_TRUE(test::WaitUntil([&] { return Ledgerd().last_reachable > 1500; }, 20s));
  const uint64_t stop = WedgeNow();
  LK_ASSERT_OK_AND_ASSIGN(auto cp, checkpoints_.Take(4, stop, 0));
  Unwedge();
  auto o = Ship(cp);
  LK_ASSERT_OK(engine_.Claim(o));
  // What arrived before the interruption: every SST, as rsync -a wrote it.
  const std::string part = tmp_.path() + "/backups/r1/snapshots/" + cp.snapshot_id + "/data";
  fs::create_directories(part);
  uint64_t sst_bytes = 0;
  for (const auto& e : fs::directory_iterator(cp.checkpoint.dir)) {
    if (e.path().extension() != ".sst") continue;
    fs::copy_file(e.path(), part + "/" + e.path().filename().string());
    fs::last_write_time(part + "/" + e.path().filename().string(), fs::last_write_time(e.path()));
    sst_bytes += e.file_size();
  }
  ASSERT_GT(sst_bytes, 0u) << "no SSTs to resume";
  BackupResult r = engine_.Run(o);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.snapshot_id, cp.snapshot_id);
  EXPECT_LE(r.bytes_transferred + sst_bytes, r.bytes_total) << "the SSTs already there were sent again";
  EXPECT_TRUE(fs::exists(tmp_.path() + "/backups/r1/snapshots/" + cp.snapshot_id + "/DONE"));
}

TEST_F(MaintenanceCheckpointTest, TheDiskCheckCountsTheSstsACheckpointPinsAndRefusesWithTheFigures) {
  LK_ASSERT_OK_AND_ASSIGN(auto space, checkpoints_.Space());
  uint64_t ssts = 0, all = 0;
  for (const auto& e : fs::directory_iterator(db_)) {
    if (!e.is_regular_file()) continue;
    all += e.file_size();
    if (e.path().extension() == ".sst") ssts += e.file_size();
  }
  EXPECT_LE(space.db_bytes, all);
  EXPECT_NEAR(static_cast<double>(space.db_bytes), static_cast<double>(ssts), 4.0 * 1024 * 1024);
  EXPECT_GT(space.free_bytes, 0u);
  LK_EXPECT_OK(checkpoints_.CheckSpace(0));
  Status refused = checkpoints_.CheckSpace(space.free_bytes * 4);
  EXPECT_EQ(refused.code(), StatusCode::kNoSpace) << refused.ToString();
  EXPECT_NE(refused.message().find("free on the file system of " + db_), std::string::npos) << refused.ToString();
  EXPECT_NE(refused.message().find("--offline"), std::string::npos);
}

TEST_F(MaintenanceCheckpointTest, ReleaseDeletesTheCheckpointAndAnotherRunsTakeRemovesEarlierRuns) {
  const uint64_t stop = WedgeNow();
  LK_ASSERT_OK(checkpoints_.Take(1, stop, 0).status());
  LK_ASSERT_OK(checkpoints_.Release(1));
  EXPECT_FALSE(fs::exists(checkpoints_.DirOf(1)));
  EXPECT_EQ(checkpoints_.Find(1).status().code(), StatusCode::kNotFound);
  LK_ASSERT_OK(checkpoints_.Take(2, stop, 0).status());
  // A file only the checkpoint holds is space it holds.
  { std::ofstream(checkpoints_.DirOf(2) + "/only-here.sst") << std::string(100000, 'x'); }
  LK_ASSERT_OK_AND_ASSIGN(auto space, checkpoints_.Space());
  EXPECT_GE(space.held_bytes, 100000u);
  LK_ASSERT_OK(checkpoints_.Take(3, stop, 0).status());
  EXPECT_FALSE(fs::exists(checkpoints_.DirOf(2))) << "an earlier run's checkpoint was left";
  EXPECT_EQ(checkpoints_.Find(2).status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(fs::is_directory(checkpoints_.DirOf(3)));
}

}  // namespace
}  // namespace ledgerkeep
