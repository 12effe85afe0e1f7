// The backup engine driven through a FaultyDestination (wrapping a real
// local directory) into each way a destination fails: a full disk, an
// unreachable host, a stalled link, permission errors. Every failed run
// says why in its Status code, publishes nothing (no DONE) and leaves the
// previous snapshot intact. No root, tmpfs or network needed.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>

#include "backup/backup_engine.h"
#include "ledger/control_client.h"
#include "tests/support/child_process.h"
#include "tests/support/faulty_destination.h"
#include "tests/support/snapshot_checks.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace ledgerkeep {
namespace {

using namespace std::chrono_literals;
using test::DestinationOp;
using test::FaultPlan;

std::string Bin(const std::string& name) { return std::string(LEDGERKEEP_BIN_DIR) + "/" + name; }

// Every path under `dir` with its size: what a run must leave untouched.
std::map<std::string, uintmax_t> TreeOf(const std::string& dir) {
  std::map<std::string, uintmax_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    std::error_code size_ec;
    out[e.path().string()] = e.is_regular_file() ? e.file_size(size_ec) : 0;
  }
  return out;
}

class DestinationFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = tmp_.path() + "/node/db";
    sock_ = tmp_.path() + "/node/ledgerd.sock";
    dest_ = tmp_.path() + "/backups/r1";
    std::filesystem::create_directories(tmp_.path() + "/node");
    auto p = test::ChildProcess::Start({{Bin("ledgerd"), "--db", db_, "--control", sock_, "--blocks-per-sec",
                                         "400", "--payload-bytes", "4096", "--write-buffer-bytes", "262144"},
                                        tmp_.path() + "/ledgerd.log"});
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    ledgerd_ = std::move(*p);
    ASSERT_TRUE(test::WaitUntil([&] { return LastBlock() > 50; }, 10s)) << "ledgerd did not start";
  }
  void TearDown() override {
    if (!ledgerd_) return;
    ledgerd_->Kill(SIGTERM);
    EXPECT_EQ(ledgerd_->WaitExit(20s), 0);
  }
  uint64_t LastBlock() {
    ledger::LedgerControlClient c(sock_);
    auto st = c.GetStatus();
    return st.ok() ? st->last_reachable : 0;
  }
  BackupRunOptions Options() {
    BackupRunOptions o;
    o.destination = *ParseDestination(dest_, "", "", 0);
    o.cluster_id = "test";
    o.node_id = "r1";
    o.ledger_db = db_;
    o.ledger_control = sock_;
    o.max_attempts = 2;
    o.backoff_base_ms = 50;
    o.io_timeout_s = 10;
    return o;
  }
  // A first, healthy snapshot; then more blocks so the next run has new data.
  std::string FirstSnapshot() {
    auto first = engine_.Run(Options());
    EXPECT_TRUE(first.ok) << first.error;
    const uint64_t target = LastBlock() + 100;
    EXPECT_TRUE(test::WaitUntil([&] { return LastBlock() >= target; }, 20s));
    return first.snapshot_id;
  }
  // The failed run left no DONE anywhere but in `kept`, which still verifies,
  // and a listing offers only `kept`.
  void ExpectOnlyIntact(const std::string& kept) {
    EXPECT_EQ(test::SnapshotDirs(dest_, /*complete=*/true), std::vector<std::string>{kept});
    EXPECT_EQ(test::VerifiedManifest(dest_, kept).snapshot_id, kept);
    plan_->Clear();
    auto list = engine_.List(Options());
    ASSERT_TRUE(list.ok()) << list.status().ToString();
    std::vector<std::string> complete;
    for (const auto& s : *list)
      if (s.complete) complete.push_back(s.snapshot_id);
    EXPECT_EQ(complete, std::vector<std::string>{kept});
  }

  test::TempDir tmp_{"lk-destfault-"};
  std::string db_, sock_, dest_;
  std::unique_ptr<test::ChildProcess> ledgerd_;
  std::shared_ptr<FaultPlan> plan_ = std::make_shared<FaultPlan>();
  BackupEngine engine_{ProcessRunner::Real(), Clock::System(), tmp_.path() + "/work",
                       test::FaultyDestinations(plan_)};
};

TEST_F(DestinationFaultTest, FullDiskMidTransferFailsWithNoSpaceAndPublishesNothing) {
  const std::string kept = FirstSnapshot();
  plan_->FullDisk();
  const int published_before = plan_->Calls(DestinationOp::kPublish);
  auto res = engine_.Run(Options());
  ASSERT_FALSE(res.ok);
  EXPECT_EQ(res.error_code, StatusCode::kNoSpace) << res.error;
  EXPECT_EQ(plan_->Calls(DestinationOp::kPublish), published_before)
      << "a failed transfer must never reach publishing";
  ExpectOnlyIntact(kept);
}

TEST_F(DestinationFaultTest, FullDiskWhilePublishingLeavesNoDone) {
  const std::string kept = FirstSnapshot();
  plan_->Fail(DestinationOp::kPublish, Status::NoSpace("printf: write error: No space left on device"));
  auto res = engine_.Run(Options());
  ASSERT_FALSE(res.ok);
  EXPECT_EQ(res.error_code, StatusCode::kNoSpace) << res.error;
  ExpectOnlyIntact(kept);
}

TEST_F(DestinationFaultTest, UnreachableHostFailsWithUnavailableAndTouchesNothing) {
  const std::string kept = FirstSnapshot();
  const auto before = TreeOf(dest_);
  plan_->Unreachable();
  auto res = engine_.Run(Options());
  ASSERT_FALSE(res.ok);
  EXPECT_EQ(res.error_code, StatusCode::kUnavailable) << res.error;
  EXPECT_EQ(TreeOf(dest_), before);
  ExpectOnlyIntact(kept);
}

TEST_F(DestinationFaultTest, StalledLinkTimesOutAndPublishesNothing) {
  const std::string kept = FirstSnapshot();
  plan_->StalledLink(300);
  auto res = engine_.Run(Options());
  ASSERT_FALSE(res.ok);
  EXPECT_EQ(res.error_code, StatusCode::kTimeout) << res.error;
  ExpectOnlyIntact(kept);
}

TEST_F(DestinationFaultTest, CancellingARunOnAStalledLinkAbortsItPromptly) {
  const std::string kept = FirstSnapshot();
  plan_->StalledLink(600'000);
  std::atomic<bool> cancel{false};
  auto o = Options();
  o.cancelled = [&] { return cancel.load(); };
  o.on_progress = [&](const TransferProgress& p) {
    if (p.phase == "transfer") cancel = true;
  };
  const auto t0 = std::chrono::steady_clock::now();
  auto res = engine_.Run(o);
  ASSERT_FALSE(res.ok);
  EXPECT_EQ(res.error_code, StatusCode::kAborted) << res.error;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 60s);
  ExpectOnlyIntact(kept);
}

TEST_F(DestinationFaultTest, PermissionDeniedOnANewDestinationFailsTheClaimAndWritesNothing) {
  plan_->ReadOnly();
  auto res = engine_.Run(Options());
  ASSERT_FALSE(res.ok);
  EXPECT_EQ(res.error_code, StatusCode::kPermissionDenied) << res.error;
  EXPECT_EQ(plan_->Calls(DestinationOp::kShip), 0);
  EXPECT_FALSE(std::filesystem::exists(dest_));
}

TEST_F(DestinationFaultTest, PermissionDeniedMidTransferKeepsThePreviousSnapshot) {
  const std::string kept = FirstSnapshot();
  plan_->Fail(DestinationOp::kShip, Status::PermissionDenied("rsync: mkstemp failed: Permission denied (13)"),
              /*after_inner=*/true);
  auto res = engine_.Run(Options());
  ASSERT_FALSE(res.ok);
  EXPECT_EQ(res.error_code, StatusCode::kPermissionDenied) << res.error;
  ExpectOnlyIntact(kept);
}

// Retention is clean-up: a snapshot it cannot delete is logged, and the new
// snapshot is still published and the run ok.
TEST_F(DestinationFaultTest, RetentionThatCannotDeleteStillPublishesTheNewSnapshot) {
  const std::string old = FirstSnapshot();
  plan_->Fail(DestinationOp::kDelete, Status::PermissionDenied("rm: cannot remove: Permission denied"));
  auto o = Options();
  o.keep_last = 1;
  auto res = engine_.Run(o);
  ASSERT_TRUE(res.ok) << res.error;
  EXPECT_GE(plan_->Calls(DestinationOp::kDelete), 1);
  EXPECT_EQ(test::VerifiedManifest(dest_, res.snapshot_id).snapshot_id, res.snapshot_id);
  EXPECT_TRUE(std::filesystem::exists(dest_ + "/snapshots/" + old + "/DONE"));
}

}  // namespace
}  // namespace ledgerkeep
