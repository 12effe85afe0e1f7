// The online maintenance window (issue 15) end to end through a real
// cluster: every replica checkpoints at the stop point while wedged, the
// ledger runs again, and the checkpoints are shipped afterwards as one
// snapshot set. What must hold: the snapshots are at the stop point and
// agree, the ledger advanced before shipping finished, a replica that
// disagrees fails the run before the unwedge, a disk too full for a
// checkpoint is refused before anything is touched, and shipping survives a
// killed agent, a killed broker and a destination that is down for a while.
#include <sys/statvfs.h>

#include "tests/integration/maintenance_fixture.h"
#include <thread>

namespace ledgerkeep::test {
namespace {

class OnlineWindowTest : public MaintenanceTest {
 protected:
  // The manifest of `node`'s snapshot `id` at its local destination.
  nlohmann::json Manifest(const std::string& node, const std::string& id) {
    return nlohmann::json::parse(ReadFile(dest_root_ + "/" + node + "/snapshots/" + id + "/MANIFEST.json"), nullptr,
                                 false);
  }
  // Maintenance checkpoints (and their records) kept beside `node`'s DB.
  std::vector<std::string> KeptCheckpoints(const std::string& node, bool records = false) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path(cluster_->LedgerDb(node)).parent_path(), ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(".ledgerkeep-maintenance-", 0) != 0) continue;
      if (e.is_directory() || records) out.push_back(name);
    }
    return out;
  }
  // Every replica has its snapshot of run `run` at `common`, complete, and
  // its checkpoint is gone.
  void ExpectSetComplete(const nlohmann::json& report, uint64_t run, uint64_t common) {
    for (const auto& r : kReplicas) {
      SCOPED_TRACE(r);
      const std::string id = report["replicas"][r].value("snapshot_id", "");
      ASSERT_FALSE(id.empty()) << report.dump();
      EXPECT_TRUE(fs::exists(dest_root_ + "/" + r + "/snapshots/" + id + "/DONE"));
      auto m = Manifest(r, id);
      ASSERT_FALSE(m.is_discarded());
      EXPECT_EQ(m["block_ids"].value("last", uint64_t{0}), common);
      EXPECT_EQ(m["block_ids"].value("last_reachable", uint64_t{0}), common);
      EXPECT_TRUE(m.value("consistent", false));
      EXPECT_EQ(m["set"].value("run", uint64_t{0}), run) << m.dump().substr(0, 300);
      EXPECT_EQ(m["set"].value("block", uint64_t{0}), common);
      EXPECT_TRUE(KeptCheckpoints(r).empty()) << "the checkpoint of a shipped snapshot is still there";
      for (const auto& e : fs::directory_iterator(dest_root_ + "/" + r + "/snapshots")) {
        EXPECT_TRUE(fs::exists(e.path() / "DONE")) << "incomplete snapshot left: " << e.path();
      }
    }
  }
  // A cluster whose shipments take seconds (every node's [backup] bwlimit
  // 1 MiB/s, ~15 MB per replica), and an online run in the background
  // (`name` for its logs) that has reached its ship step.
  void StartSlowShippingRun(const std::string& name, std::unique_ptr<ChildProcess>* bg) {
    node_config_extra_ = "[backup]\nbwlimit = \"1M\"\n";
    StartCluster(300, 8192);
    ConfigureAll();
    ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > 1200; }, 60s, 100ms));
    LK_ASSERT_OK_AND_ASSIGN(*bg,
                            cluster_->StartCli({"--json", "maintenance", "run", "--wedge-timeout-s", "30"}, name));
    WaitShipping();
  }
  // Waits for the run's ship step to have started (broker log).
  void WaitShipping() {
    ASSERT_TRUE(WaitUntil([&] { return BrokerLogHas("(maintenance) ship started"); }, 120s, 5ms))
        << "the run never reached the ship step";
  }
};

// ---------------------------------------------------------------------------
TEST_F(OnlineWindowTest, EveryReplicaIsSnapshottedAtTheStopPointAndTheLedgerRunsBeforeShippingEnds) {
  StartCluster();
  ConfigureAll();
  RunResult baseline = Cli({"backup", "run-now"});
  ASSERT_EQ(baseline.exit_code, 0) << baseline.Describe();
  RunResult run = Cli(RunArgs({"--archive", "online", "--pre-hook", "record", "--post-hook", "record"}), 180s);
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  auto j = Json(run);
  ASSERT_TRUE(j.value("ok", false)) << j.dump();
  const uint64_t run_id = j.value("run_id", uint64_t{0});
  const auto& report = j["report"];
  EXPECT_EQ(report.value("mode", ""), "online");
  EXPECT_TRUE(report.value("complete", false)) << report.dump();
  const uint64_t common = report.value("common_block", uint64_t{0});
  ASSERT_GT(common, 0u) << report.dump();
  EXPECT_EQ(common, report.value("stop_point", uint64_t{1}));
  EXPECT_EQ(test::ReadFile(hook_dir_ + "/ran"), "record\nrecord\n");

  // The checkpoints agreed: every one at the stop point, one digest.
  std::set<std::string> digests;
  for (const auto& r : kReplicas) {
    EXPECT_EQ(report["checkpoints"][r].value("last_block_id", uint64_t{0}), common) << r;
    digests.insert(report["checkpoints"][r].value("stop_digest", ""));
  }
  EXPECT_EQ(digests.size(), 1u) << report.dump();
  EXPECT_EQ(digests.begin()->size(), 64u);
  // ... and the same as the block in the ledgers themselves.
  {
    ledger::LedgerControlClient c(cluster_->LedgerControl("r2"));
    LK_ASSERT_OK_AND_ASSIGN(auto block, c.GetBlock(common));
    EXPECT_EQ(block.digest_hex, *digests.begin());
  }
  ExpectSetComplete(report, run_id, common);

  // The figures: the pause is short (seconds whatever the data) and inside
  // the client downtime; shipping is counted apart.
  const double pause = report.value("pause_s", -1.0);
  EXPECT_GT(pause, 0.0) << report.dump();
  EXPECT_LT(pause, 10.0) << report.dump();
  EXPECT_LE(pause, report.value("client_downtime_s", 0.0)) << report.dump();
  EXPECT_GE(report.value("shipping_s", -1.0), 0.0) << report.dump();

  // The ledger ran before shipping finished: the blocks advanced past the
  // stop point (verify_blocks) before the first shipment began, and every
  // snapshot was published after that.
  auto evs = RunbookEvents();
  int verified = -1, ship_started = -1, i = 0;
  for (const auto& e : evs) {
    if (e.value("step", "") == "verify_blocks" && e.value("state", "") == "done" && verified < 0) verified = i;
    if (e.value("step", "") == "ship" && e.value("state", "") == "started" && ship_started < 0) ship_started = i;
    ++i;
  }
  ASSERT_GE(verified, 0);
  ASSERT_GT(ship_started, verified) << "shipping began before the ledger ran again";
  for (const char* step : {"stop_replicas", "check_blocks", "final_sync", "start_replicas"}) {
    EXPECT_FALSE(SawStep(evs, step)) << step << " ran in an online window";
  }
  for (const char* step : {"checkpoint", "unwedge", "verify_blocks", "client_backup", "start_clients", "ship"}) {
    EXPECT_TRUE(SawStep(evs, step, "done")) << step;
  }
  // ledgerd never stopped: the same process before and after.
  RunResult status = Cli({"maintenance", "status"});
  ASSERT_EQ(status.exit_code, 0) << status.Describe();
  auto st = Json(status);
  EXPECT_EQ(st.value("state", ""), "succeeded") << status.Describe();
  EXPECT_TRUE(st.value("complete", false)) << status.Describe();
  ExpectServing(common);
}

// ---------------------------------------------------------------------------
// r3's chain was built from another seed: same block ids, other digests. Its
// checkpoint is at the stop point but disagrees with the others', so the run
// fails at the cross-check, before any unwedge, releases the checkpoints and
// rolls the cluster back to serving. (Without the digest check, a run
// "succeeds" with r3's snapshot of another chain.)
TEST_F(OnlineWindowTest, AReplicaWhoseCheckpointDiffersFailsTheRunBeforeTheUnwedgeAndTheClusterRollsBack) {
  StartCluster(300, 1024, [](TestCluster& c) {
    ProcessSpec spec;
    spec.argv = {BinPath("ledgerkeep-db"), c.LedgerDb("r3"), "generate", "--blocks", "5", "--payload-bytes", "1024",
                 "--seed", "424242"};
    spec.stdout_path = c.dir() + "/logs/generate.out";
    spec.stderr_path = c.dir() + "/logs/generate.err";
    RunResult g = RunToCompletion(std::move(spec), 60s);
    ASSERT_EQ(g.exit_code, 0) << g.Describe();
  });
  ConfigureAll();
  RunResult run = Cli(RunArgs(), 180s);
  EXPECT_EQ(run.exit_code, 1) << run.Describe();
  auto j = Json(run);
  const auto& report = j["report"];
  EXPECT_EQ(report.value("failed_step", ""), "checkpoint") << j.dump();
  const std::string error = j.value("error", "");
  EXPECT_NE(error.find("r3's block"), std::string::npos) << error;
  EXPECT_NE(error.find("has digest"), std::string::npos) << error;
  EXPECT_TRUE(report.value("rolled_back", false)) << j.dump();
  auto evs = RunbookEvents();
  EXPECT_TRUE(SawStep(evs, "checkpoint", "failed"));
  EXPECT_FALSE(SawStep(evs, "ship")) << "a disagreeing set was shipped";
  EXPECT_FALSE(SawStep(evs, "verify_blocks"));
  for (const auto& r : kReplicas) {
    EXPECT_TRUE(CompleteSnapshots(dest_root_ + "/" + r).empty()) << r;
    EXPECT_TRUE(KeptCheckpoints(r, /*records=*/true).empty()) << r << ": the rollback kept a checkpoint";
  }
  ExpectServing(report.value("stop_point", uint64_t{0}));
}

// ---------------------------------------------------------------------------
// r2's DB is on a file system of its own (tmpfs) with less free space than
// its SST files: a checkpoint could pin them all while it ships. The
// preflight refuses, naming r2 and the space, and nothing is touched.
TEST_F(OnlineWindowTest, NotEnoughDiskForACheckpointIsRefusedBeforeTheWedgeAndNothingIsTouched) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
  std::string db;
  StartCluster(300, 4096, [&](TestCluster& c) {
    db = c.LedgerDb("r2");
    fs::create_directories(db);
    ASSERT_EQ(::mount("tmpfs", db.c_str(), "tmpfs", 0, "size=256m"), 0) << std::strerror(errno);
    mounts_.push_back(db);
  });
  ConfigureAll();
  // SSTs first (small memtables flush within seconds).
  auto sst_bytes = [&] {
    uint64_t n = 0;
    for (const auto& e : fs::directory_iterator(db))
      if (e.path().extension() == ".sst") n += e.file_size();
    return n;
  };
  ASSERT_TRUE(WaitUntil([&] { return sst_bytes() > (4u << 20); }, 60s, 100ms)) << "r2 made no SSTs";
  // Leave free about half the SST bytes.
  struct statvfs v {};
  ASSERT_EQ(::statvfs(db.c_str(), &v), 0);
  const uint64_t free_now = static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
  const uint64_t fill = free_now - sst_bytes() / 2;
  RunResult f = Shell("fallocate -l " + std::to_string(fill) + " '" + db + "/filler'");
  ASSERT_EQ(f.exit_code, 0) << f.Describe();

  RunResult run = Cli(RunArgs(), 120s);
  EXPECT_EQ(run.exit_code, 1) << run.Describe();
  auto j = Json(run);
  EXPECT_EQ(j["report"].value("failed_step", ""), "preflight") << j.dump();
  const std::string error = j.value("error", "");
  EXPECT_NE(error.find("r2"), std::string::npos) << error;
  EXPECT_NE(error.find("free on the file system of " + db), std::string::npos) << error;
  EXPECT_NE(error.find("--offline"), std::string::npos) << error;
  EXPECT_FALSE(j["report"].value("rolled_back", false));
  auto evs = RunbookEvents();
  EXPECT_FALSE(SawStep(evs, "stop_clients")) << "the cluster was touched";
  EXPECT_FALSE(SawStep(evs, "wedge"));
  for (const auto& r : kReplicas) EXPECT_TRUE(KeptCheckpoints(r, true).empty()) << r;
  fs::remove(db + "/filler");
  ExpectServing(LastBlock("r1"));
}

// ---------------------------------------------------------------------------
// Shipping at 1 MiB/s (the nodes' [backup] bwlimit) takes seconds; r1's agent
// is SIGKILLed in the middle. Its checkpoint stays, the broker issues the
// shipment again once r1 is back, and it resumes into the same snapshot:
// the set completes with one snapshot per replica.
TEST_F(OnlineWindowTest, AgentKilledWhileShippingResumesTheShipmentAndTheSetCompletes) {
  std::unique_ptr<ChildProcess> bg;
  ASSERT_NO_FATAL_FAILURE(StartSlowShippingRun("online-agent-kill", &bg));
  std::this_thread::sleep_for(1500ms);
  ASSERT_FALSE(BrokerLogHas("r1: snapshot")) << "r1 shipped before the kill; the test needs a slower shipment";
  LK_ASSERT_OK(cluster_->KillAgent("r1", SIGKILL));
  ASSERT_FALSE(KeptCheckpoints("r1").empty()) << "the checkpoint went with the agent";
  std::this_thread::sleep_for(1000ms);
  LK_ASSERT_OK(cluster_->StartAgent("r1"));

  auto rc = bg->WaitExit(180s);
  ASSERT_TRUE(rc.has_value()) << "the run did not finish";
  auto j = LastJsonLine(bg->ReadStdout());
  ASSERT_TRUE(j.value("ok", false)) << bg->ReadStdout();
  EXPECT_EQ(*rc, 0);
  const auto& report = j["report"];
  EXPECT_TRUE(report.value("complete", false)) << report.dump();
  ExpectSetComplete(report, j.value("run_id", uint64_t{0}), report.value("common_block", uint64_t{0}));
  for (const auto& r : kReplicas) {
    EXPECT_EQ(CompleteSnapshots(dest_root_ + "/" + r).size(), 1u) << r;
  }
  // The broker said it retried r1.
  RunResult notes = Cli({"events", "--from-start", "--filter", "maintenance"});
  EXPECT_NE(notes.out.find("shipping the checkpoint failed"), std::string::npos) << notes.Describe();
  ExpectServing(report.value("common_block", uint64_t{0}));
}

// ---------------------------------------------------------------------------
// The broker is SIGKILLed after the unwedge, while the checkpoints ship. The
// cluster is serving all along; the restarted broker resumes the run at its
// ship step, waits for the shipments it had issued, and completes the set.
TEST_F(OnlineWindowTest, BrokerKilledWhileShippingResumesTheRunAndTheSetCompletes) {
  std::unique_ptr<ChildProcess> bg;
  ASSERT_NO_FATAL_FAILURE(StartSlowShippingRun("online-broker-kill", &bg));
  std::this_thread::sleep_for(1000ms);
  LK_ASSERT_OK(cluster_->KillBroker(SIGKILL));
  // The ledger runs on without the broker.
  const uint64_t before = LastBlock("r1");
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > before + 100; }, 30s, 100ms))
      << "the ledger does not run while the broker is down";
  LK_ASSERT_OK(cluster_->StartBroker());

  auto rc = bg->WaitExit(180s);
  ASSERT_TRUE(rc.has_value()) << "the run did not finish after the broker restarted";
  auto j = LastJsonLine(bg->ReadStdout());
  ASSERT_TRUE(j.value("ok", false)) << bg->ReadStdout();
  const auto& report = j["report"];
  EXPECT_TRUE(report.value("complete", false)) << report.dump();
  EXPECT_EQ(report.value("resumed_at_step", ""), "ship") << report.dump();
  ExpectSetComplete(report, j.value("run_id", uint64_t{0}), report.value("common_block", uint64_t{0}));
  for (const auto& r : kReplicas) EXPECT_EQ(CompleteSnapshots(dest_root_ + "/" + r).size(), 1u) << r;
  ExpectServing(report.value("common_block", uint64_t{0}));
}

// ---------------------------------------------------------------------------
// r1's destination is a full file system while the checkpoints ship: its
// shipments fail and are retried, the cluster serves, `maintenance status`
// says r1 is not shipped. Once the destination is back the set completes.
TEST_F(OnlineWindowTest, DestinationDownDuringShippingLeavesTheClusterServingAndTheSetCompletesWhenItIsBack) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
  StartCluster(300, 4096);
  ConfigureAll();
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > 1000; }, 60s, 100ms));
  // A tiny full file system over r1's destination, the owner marker copied.
  const std::string dest = dest_root_ + "/r1";
  const std::string marker = ReadFile(dest + "/.ledgerkeep-owner");
  ASSERT_FALSE(marker.empty());
  ASSERT_EQ(::mount("tmpfs", dest.c_str(), "tmpfs", 0, "size=64k"), 0) << std::strerror(errno);
  mounts_.push_back(dest);
  { std::ofstream(dest + "/.ledgerkeep-owner") << marker; }

  LK_ASSERT_OK_AND_ASSIGN(auto bg, cluster_->StartCli({"--json", "maintenance", "run", "--wedge-timeout-s", "30"},
                                                      "online-dest-down"));
  WaitShipping();
  // Down: r1 is retried, the others complete, the cluster serves.
  ASSERT_TRUE(WaitUntil(
      [&] {
        RunResult s = Cli({"maintenance", "status"}, 30s);
        auto st = Json(s);
        auto state = [&](const char* node) { return Field(Field(st, "shipping"), node).value("state", ""); };
        return state("r1") == "retrying" && state("r2") == "done" && state("r3") == "done";
      },
      90s, 500ms))
      << Cli({"maintenance", "status"}).Describe();
  RunResult status = Cli({"maintenance", "status"});
  auto st = Json(status);
  EXPECT_EQ(st.value("state", ""), "running");
  EXPECT_FALSE(st.value("complete", true));
  EXPECT_FALSE(Field(Field(st, "shipping"), "r1").value("error", "").empty()) << status.Describe();
  ExpectServing(Field(st, "report").value("common_block", uint64_t{0}));
  EXPECT_FALSE(KeptCheckpoints("r1").empty()) << "r1's checkpoint was dropped while its shipment failed";
  // Back: the next retry completes the set.
  ASSERT_EQ(::umount2(dest.c_str(), MNT_DETACH), 0);
  mounts_.clear();
  auto rc = bg->WaitExit(120s);
  ASSERT_TRUE(rc.has_value()) << "the run did not complete once the destination was back";
  auto j = LastJsonLine(bg->ReadStdout());
  ASSERT_TRUE(j.value("ok", false)) << bg->ReadStdout();
  EXPECT_TRUE(j["report"].value("complete", false));
  ExpectSetComplete(j["report"], j.value("run_id", uint64_t{0}), j["report"].value("common_block", uint64_t{0}));
}

// ---------------------------------------------------------------------------
// `maintenance abort` while shipping: the cluster already serves, so nothing
// is rolled back; the run ends incomplete and names what it had not seen
// shipped. Nothing is lost: at every moment each of those replicas has its
// checkpoint or its complete snapshot of the set (a shipment in flight may
// complete after the run ended, and only then deletes its checkpoint).
// (Regression, clean-clone CI: the test wanted the checkpoints kept, and the
// shipments in flight completed first.)
TEST_F(OnlineWindowTest, AbortWhileShippingEndsTheRunIncompleteAndKeepsTheCheckpoints) {
  std::unique_ptr<ChildProcess> bg;
  ASSERT_NO_FATAL_FAILURE(StartSlowShippingRun("online-abort", &bg));
  RunResult abort = Cli({"maintenance", "abort"});
  ASSERT_EQ(abort.exit_code, 0) << abort.Describe();
  auto rc = bg->WaitExit(60s);
  ASSERT_TRUE(rc.has_value()) << "the run did not end after the abort";
  EXPECT_EQ(*rc, 1);
  auto j = LastJsonLine(bg->ReadStdout());
  EXPECT_FALSE(j.value("ok", true)) << bg->ReadStdout();
  EXPECT_NE(j.value("error", "").find("incomplete"), std::string::npos) << j.dump();
  const auto& report = j["report"];
  EXPECT_FALSE(report.value("complete", true)) << report.dump();
  EXPECT_FALSE(report.value("rolled_back", false)) << report.dump();
  const std::string not_shipped = report.value("not_shipped", "");
  ASSERT_FALSE(not_shipped.empty()) << report.dump();
  const uint64_t run_id = j.value("run_id", uint64_t{0});
  for (const auto& r : kReplicas) {
    if (not_shipped.find(r) == std::string::npos) continue;
    // The checkpoint is deleted only after DONE exists: look at the
    // checkpoint first, then at the destination.
    const bool kept = !KeptCheckpoints(r).empty();
    bool shipped = false;
    for (const auto& id : CompleteSnapshots(dest_root_ + "/" + r)) {
      shipped = shipped || Manifest(r, id)["set"].value("run", uint64_t{0}) == run_id;
    }
    EXPECT_TRUE(kept || shipped) << r << ": neither its checkpoint nor its snapshot of the set is there";
  }
  EXPECT_TRUE(SawStep(RunbookEvents(), "ship", "incomplete"));
  ExpectServing(report.value("common_block", uint64_t{0}));
}

// ---------------------------------------------------------------------------
// A set restored onto a clone cluster: `backup list --sets` shows the run's
// set complete, `restore --set` puts each replica's snapshot on its own
// clone, and the clones agree block for block (real ledgerkeep-db compareTo).
TEST_F(OnlineWindowTest, ASnapshotSetRestoredOntoClonesAgreesBlockForBlock) {
  clones_ = 3;
  StartCluster();
  ConfigureAll();
  RunResult run = Cli(RunArgs(), 180s);
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  auto j = Json(run);
  const uint64_t run_id = j.value("run_id", uint64_t{0});
  const uint64_t common = j["report"].value("common_block", uint64_t{0});
  ASSERT_GT(common, 0u);

  RunResult sets = Cli({"backup", "list", "--sets"});
  ASSERT_EQ(sets.exit_code, 0) << sets.Describe();
  auto sj = Json(sets);
  ASSERT_EQ(sj["sets"].size(), 1u) << sets.out;
  const auto& set = sj["sets"][0];
  EXPECT_EQ(set.value("set", uint64_t{0}), run_id);
  EXPECT_EQ(set.value("block", uint64_t{0}), common);
  EXPECT_TRUE(set.value("complete", false)) << sets.out;
  for (const auto& r : kReplicas) {
    EXPECT_EQ(set["snapshots"].value(r, ""), j["report"]["replicas"][r].value("snapshot_id", "x")) << r;
  }
  // Wrong numbers of clones and unknown sets are refused before anything runs.
  RunResult too_few = Cli({"restore", "--set", std::to_string(run_id), "--to-node", "clone1"});
  EXPECT_EQ(too_few.exit_code, 2) << too_few.Describe();
  EXPECT_NE(too_few.err.find("has 3 replicas"), std::string::npos) << too_few.Describe();
  RunResult unknown = Cli({"restore", "--set", "99", "--to-node", "clone1"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.Describe();

  RunResult restore = Cli({"restore", "--set", std::to_string(run_id), "--to-node", "clone1", "--to-node",
                           "clone2", "--to-node", "clone3"},
                          180s);
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  auto rj = Json(restore);
  EXPECT_TRUE(rj.value("ok", false)) << restore.out;
  ASSERT_EQ(rj["clones"].size(), 3u) << restore.out;
  // r1 -> clone1, r2 -> clone2, r3 -> clone3; each serves the set's block.
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rj["clones"][i].value("source_node", ""), kReplicas[i]);
    EXPECT_EQ(rj["clones"][i].value("target", ""), "clone" + std::to_string(i + 1));
    auto st = Ledger("clone" + std::to_string(i + 1));
    ASSERT_TRUE(st.has_value());
    EXPECT_EQ(st->last_reachable, common);
  }
  for (const char* other : {"clone2", "clone3"}) {
    ProcessSpec spec;
    spec.argv = {BinPath("ledgerkeep-db"), cluster_->LedgerDb("clone1"), "compareTo", cluster_->LedgerDb(other)};
    spec.stdout_path = cluster_->dir() + "/logs/compare-" + other + ".out";
    spec.stderr_path = cluster_->dir() + "/logs/compare-" + other + ".err";
    RunResult cmp = RunToCompletion(std::move(spec), 60s);
    ASSERT_EQ(cmp.exit_code, 0) << cmp.Describe();
    EXPECT_EQ(Json(cmp).value("result", ""), "match") << cmp.out;
    EXPECT_EQ(Json(cmp).value("commonTo", ""), std::to_string(common)) << cmp.out;
  }
}

}  // namespace
}  // namespace ledgerkeep::test
