// `ledgerkeep maintenance run` end to end through a real cluster (broker,
// agents, ledgerd under every replica, a stand-in service under the client,
// the real CLI, rsync to local directories): the runbook procedure
// (--offline) and what both modes share: the happy path, and every way it
// must fail while leaving the cluster serving (README "The maintenance
// window"). The online window's own cases: online_window_test.cc.
#include "tests/integration/maintenance_fixture.h"

namespace ledgerkeep::test {
namespace {

// ---------------------------------------------------------------------------
// Issue 13 (the class of point 1): `--pre-hook 'CMD'` ran any command line
// as root on the broker host for whoever holds an operator key. A hook is
// a name; the command is a [[hook]] of the broker's own config, run as an
// argv without a shell. A command line is a usage error, an unknown name
// fails the preflight with nothing changed.
TEST_F(MaintenanceTest, HooksAreNamesFromTheBrokersConfigNeverCommandLines) {
  StartCluster();
  ConfigureAll();
  const std::string canary = hook_dir_ + "/PWNED";
  for (const std::string& line : std::vector<std::string>{"touch " + canary, "$(touch " + canary + ")",
                                                          "record; touch " + canary,
                                  "/bin/touch", "../record"}) {
    RunResult r = Cli(RunArgs({"--pre-hook", line}));
    EXPECT_EQ(r.exit_code, 2) << line << "\n" << r.Describe();
    EXPECT_NE(r.err.find("--pre-hook"), std::string::npos) << r.Describe();
    RunResult post = Cli(RunArgs({"--dry-run", "--post-hook", line}));
    EXPECT_EQ(post.exit_code, 2) << line << "\n" << post.Describe();
  }
  RunResult unknown = Cli(RunArgs({"--pre-hook", "stop-apps"}), 60s);
  EXPECT_EQ(unknown.exit_code, 1) << unknown.Describe();
  EXPECT_NE(unknown.out.find("no hook 'stop-apps'"), std::string::npos) << unknown.out;
  EXPECT_NE(unknown.out.find("long, record"), std::string::npos) << unknown.out;
  // Nothing was stopped or wedged.
  for (const auto& r : kReplicas) {
    auto st = Ledger(r);
    ASSERT_TRUE(st.has_value()) << r << " stopped";
    EXPECT_EQ(st->stop_point, 0u) << r << " wedged";
  }
  RunResult dry = Cli(RunArgs({"--dry-run", "--pre-hook", "record"}), 60s);
  ASSERT_EQ(dry.exit_code, 0) << dry.Describe();
  EXPECT_EQ(Json(dry)["report"]["hooks"]["pre_hook"]["command"][0], "/bin/sh") << dry.out;
  EXPECT_FALSE(fs::exists(canary));
  EXPECT_FALSE(fs::exists(hook_dir_ + "/ran")) << "a dry run ran a hook";
}

TEST_F(MaintenanceTest, OfflineHappyPathBacksUpEveryNodeAtOneBlockAndTheClusterServesAgain) {
  StartCluster();
  ConfigureAll();
  RunResult run =
      Cli(RunArgs({"--offline", "--archive", "happy", "--pre-hook", "record", "--post-hook", "record"}), 180s);
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  auto j = Json(run);
  ASSERT_TRUE(j.value("ok", false)) << j.dump();
  const auto& report = j["report"];
  // The hooks named ran: the commands the broker's config defines for them.
  EXPECT_EQ(test::ReadFile(hook_dir_ + "/ran"), "record\nrecord\n");
  EXPECT_EQ(report["hooks"]["pre_hook"].value("name", ""), "record") << report.dump();
  const uint64_t common = report.value("common_block", uint64_t{0});
  ASSERT_GT(common, 0u) << report.dump();
  EXPECT_EQ(common % 150, 0u) << common;
  EXPECT_FALSE(report.value("rolled_back", false)) << report.dump();
  // DESIGN.md §5: the stop point is the next-but-one checkpoint above the
  // highest block the wedge read from the replicas, and the run's common block.
  uint64_t highest = 0;
  for (const auto& r : kReplicas) {
    ASSERT_TRUE(report["wedge"]["block_ids"].contains(r)) << report.dump();
    highest = std::max(highest, report["wedge"]["block_ids"][r].get<uint64_t>());
  }
  EXPECT_EQ(report.value("stop_point", uint64_t{0}), (highest + 300) - ((highest + 300) % 150))
      << "highest block " << highest << ": " << report.dump();
  EXPECT_EQ(common, report.value("stop_point", uint64_t{0})) << report.dump();

  for (const auto& r : kReplicas) {
    SCOPED_TRACE(r);
    const auto& rep = report["replicas"][r];
    const std::string id = rep.value("snapshot_id", "");
    ASSERT_FALSE(id.empty()) << report.dump();
    EXPECT_EQ(rep.value("last_block_id", uint64_t{0}), common);
    EXPECT_TRUE(rep.value("consistent", false));
    const std::string snap = dest_root_ + "/" + r + "/snapshots/" + id;
    ASSERT_TRUE(fs::exists(snap + "/DONE")) << snap;
    // DONE holds the manifest's SHA-256 (real sha256sum).
    std::string done = ReadFile(snap + "/DONE");
    while (!done.empty() && done.back() == '\n') done.pop_back();
    RunResult digest = Shell("sha256sum '" + snap + "/MANIFEST.json' | cut -d' ' -f1");
    EXPECT_EQ(digest.out, done + "\n") << digest.Describe();
    auto m = nlohmann::json::parse(ReadFile(snap + "/MANIFEST.json"), nullptr, false);
    ASSERT_FALSE(m.is_discarded()) << snap;
    EXPECT_EQ(m["block_ids"].value("last", uint64_t{0}), common) << m.dump().substr(0, 400);
    EXPECT_EQ(m["block_ids"].value("last_reachable", uint64_t{0}), common);
    EXPECT_TRUE(m.value("consistent", false));
    EXPECT_FALSE(m["files"].empty());
  }

  // The client archive: real tar and sha256sum.
  const std::string archive = report["clients"]["c1"].value("archive", "");
  ASSERT_FALSE(archive.empty()) << report.dump();
  ASSERT_TRUE(fs::exists(archive)) << archive;
  RunResult tar = Shell("tar tzf '" + archive + "'");
  ASSERT_EQ(tar.exit_code, 0) << tar.Describe();
  std::set<std::string> members;
  std::istringstream in(tar.out);
  for (std::string line; std::getline(in, line);) members.insert(line);
  auto has = [&](const std::string& suffix) {
    for (const auto& m : members)
      if (m.size() >= suffix.size() && m.compare(m.size() - suffix.size(), suffix.size(), suffix) == 0) return true;
    return false;
  };
  EXPECT_TRUE(has("config/environment-vars")) << tar.out;
  EXPECT_TRUE(has("db/activity.log")) << tar.out;
  const fs::path ap(archive);
  RunResult sum = Shell("cd '" + ap.parent_path().string() + "' && sha256sum -c '" + ap.filename().string() +
                        ".sha256'");
  EXPECT_EQ(sum.exit_code, 0) << sum.Describe();

  // Events: every forward step done, in order, no rollback.
  auto evs = RunbookEvents();
  for (const char* step : {"preflight", "stop_clients", "wedge", "stop_replicas", "check_blocks", "client_backup",
                           "final_sync", "start_replicas", "unwedge", "verify_blocks", "start_clients"}) {
    EXPECT_TRUE(SawStep(evs, step, "done")) << step;
  }
  EXPECT_FALSE(SawStep(evs, "rollback"));
  EXPECT_FALSE(SawStep(evs, "checkpoint")) << "--offline took checkpoints";
  EXPECT_EQ(report.value("mode", ""), "offline");
  EXPECT_GT(report.value("window_s", 0.0), 0.0) << report.dump();
  ExpectServing(common);
}

// ---------------------------------------------------------------------------
TEST_F(MaintenanceTest, ReplicaThatNeverWedgesIsRolledBackAndNamed) {
  // 100 blocks/s: the wedge takes 1.5-3 s, long enough to kill r3 during it.
  StartCluster(/*blocks_per_sec=*/100);
  ConfigureAll();
  LK_ASSERT_OK_AND_ASSIGN(auto bg, cluster_->StartCli({"--json", "maintenance", "run", "--wedge-timeout-s", "8"},
                                                      "maint-wedge"));
  ASSERT_TRUE(WaitUntil([&] { return BrokerLogHas("(maintenance) wedge started"); }, 60s, 5ms))
      << "the run never reached the wedge";
  const pid_t pid = ComponentPid("r3", "ledgerd");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  const uint64_t killed_at = std::max(LastBlock("r1"), LastBlock("r2"));

  auto rc = bg->WaitExit(120s);
  ASSERT_TRUE(rc.has_value()) << "maintenance run did not finish";
  EXPECT_EQ(*rc, 1) << bg->ReadStdout();
  auto j = LastJsonLine(bg->ReadStdout());
  EXPECT_FALSE(j.value("ok", true)) << j.dump();
  const std::string error = j.value("error", "");
  EXPECT_NE(error.find("r3"), std::string::npos) << error;
  EXPECT_EQ(j["report"].value("failed_step", ""), "wedge") << j.dump();
  EXPECT_TRUE(j["report"].value("rolled_back", false)) << j.dump();
  EXPECT_EQ(j["report"].value("rollback_problems", "?"), "") << j.dump();
  auto evs = RunbookEvents();
  EXPECT_FALSE(SawStep(evs, "stop_replicas")) << "went past the wedge";
  EXPECT_FALSE(SawStep(evs, "final_sync"));
  EXPECT_TRUE(SawStep(evs, "rollback", "done"));
  // Rollback starts replicas again (r3's ledgerd included) and unwedges.
  ExpectServing(killed_at);
}

// ---------------------------------------------------------------------------
// Regression (fault suite, replica partitioned during the wedge): the
// rollback waited the whole start deadline (120 s) of the unreachable
// replica before unwedging the others and restarting the clients, and that
// replica was never unwedged after it came back; before that, its block-id
// query held the wedge up for a minute. A frozen agent (SIGSTOP)
// stands for the partition here: it goes lost and comes back on SIGCONT.
TEST_F(MaintenanceTest, LostReplicaDoesNotHoldUpTheRollbackAndGetsItsUnwedgeWhenItReturns) {
  StartCluster(/*blocks_per_sec=*/100);
  ConfigureAll();
  LK_ASSERT_OK_AND_ASSIGN(auto bg, cluster_->StartCli({"--json", "maintenance", "run", "--wedge-timeout-s", "8"},
                                                      "maint-lost"));
  ASSERT_TRUE(WaitUntil([&] { return BrokerLogHas("(maintenance) wedge started"); }, 60s, 5ms))
      << "the run never reached the wedge";
  const pid_t agent = cluster_->agent_process("r3")->pid();
  ASSERT_EQ(::kill(agent, SIGSTOP), 0);
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{agent};
  const auto frozen_at = std::chrono::steady_clock::now();
  LK_ASSERT_OK(cluster_->WaitNodeState("r3", "lost", 20s));

  auto rc = bg->WaitExit(120s);
  ASSERT_TRUE(rc.has_value()) << "maintenance run did not finish";
  const auto took = std::chrono::steady_clock::now() - frozen_at;
  auto j = LastJsonLine(bg->ReadStdout());
  EXPECT_EQ(*rc, 1) << bg->ReadStdout();
  EXPECT_TRUE(j["report"].value("rolled_back", false)) << j.dump();
  EXPECT_EQ(j["report"].value("queued_for_lost", nlohmann::json::array()), nlohmann::json::array({"r3"}))
      << j.dump();
  // Wedge timeout (8 s) plus the rollback of the reachable nodes, not the
  // 120 s start deadline of the lost one.
  EXPECT_LT(took, 60s) << "the rollback waited for the lost replica: " << j.dump();
  RunResult ns = Cli({"node", "status", "--node", "c1"}, 30s);
  EXPECT_TRUE(Json(ns)["c1"]["components"]["ledger-api"].value("running", false)) << ns.Describe();

  ::kill(agent, SIGCONT);  // back: it gets the queued start and unwedge
  LK_ASSERT_OK(cluster_->WaitNodeState("r3", "alive", 30s));
  ExpectServing(0);
}

// ---------------------------------------------------------------------------
// Regression (issue 13, point 5): with a clone in the cluster, a rollback
// with a lost replica unwedged the reachable replicas one by one, taken from
// the node list, clone included: "rollback incomplete: unwedge failed on
// clone1". A clone is not a member: no workflow step addresses it, and the
// role-defaulted CLI commands leave it out unless it is named.
TEST_F(MaintenanceTest, RollbackWithACloneInTheClusterNeverSendsItAnUnwedge) {
  clones_ = 1;
  StartCluster(/*blocks_per_sec=*/100);
  ConfigureAll();
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"blocks"}, {"health"}, {"wedge", "status"}, {"backup", "status"}}) {
    RunResult r = Cli(cmd, 30s);
    EXPECT_FALSE(Json(r).contains("clone1") ||
                 Json(r).value("replicas", nlohmann::json::object()).contains("clone1"))
        << "a role-defaulted command reached the clone: " << r.Describe();
  }
  RunResult named = Cli({"blocks", "--node", "clone1"}, 30s);
  EXPECT_TRUE(Json(named)["replicas"].contains("clone1"))
      << "--node clone1 must reach the clone: " << named.Describe();
  const size_t named_commands = CommandsIssuedTo("clone1").size();
  ASSERT_EQ(named_commands, 1u) << "only `blocks --node clone1` may have reached the clone";

  LK_ASSERT_OK_AND_ASSIGN(
      auto bg, cluster_->StartCli({"--json", "maintenance", "run", "--wedge-timeout-s", "8"}, "maint-clone"));
  ASSERT_TRUE(WaitUntil([&] { return BrokerLogHas("(maintenance) wedge started"); }, 60s, 5ms))
      << "the run never reached the wedge";
  const pid_t agent = cluster_->agent_process("r3")->pid();
  ASSERT_EQ(::kill(agent, SIGSTOP), 0);
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{agent};
  LK_ASSERT_OK(cluster_->WaitNodeState("r3", "lost", 20s));
  auto rc = bg->WaitExit(120s);
  ASSERT_TRUE(rc.has_value()) << "maintenance run did not finish";
  auto j = LastJsonLine(bg->ReadStdout());
  EXPECT_EQ(*rc, 1) << bg->ReadStdout();
  EXPECT_TRUE(Field(j, "report").value("rolled_back", false)) << j.dump();
  EXPECT_EQ(Field(j, "report").value("queued_for_lost", nlohmann::json::array()),
            nlohmann::json::array({"r3"}))
      << j.dump();
  EXPECT_EQ(j.value("error", "").find("clone1"), std::string::npos) << j.dump();
  const auto to_clone = CommandsIssuedTo("clone1");
  EXPECT_EQ(to_clone.size(), named_commands)
      << "the run sent the clone: " << testing::PrintToString(to_clone);
}

// Regression (issue 13, point 5): a lost clone stopped the wedge ("cannot
// wedge: clone1 lost"), although no command of the window goes to it.
TEST_F(MaintenanceTest, LostCloneDoesNotStopTheMaintenanceWindow) {
  clones_ = 1;
  StartCluster();
  ConfigureAll();
  LK_ASSERT_OK(cluster_->KillAgent("clone1"));
  LK_ASSERT_OK(cluster_->WaitNodeState("clone1", "lost", 15s));
  RunResult run = Cli(RunArgs(), 180s);
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  auto j = Json(run);
  EXPECT_TRUE(j.value("ok", false)) << j.dump();
  EXPECT_FALSE(Field(j, "report").value("rolled_back", false)) << j.dump();
  EXPECT_TRUE(CommandsIssuedTo("clone1").empty()) << testing::PrintToString(CommandsIssuedTo("clone1"));
}

// ---------------------------------------------------------------------------
// Regression (issue 13, point 6): r3's ledgerd frozen (SIGSTOP) after it got
// the stop point: the wedge times out, the rollback's unwedge of r3 times
// out, and once thawed r3 ran on to the stop point and stayed wedged there
// for good (ledgerd persists it), until an operator noticed. Now r3 is on
// the broker's needs-unwedge list and is unwedged by a retry once it
// answers again, with no operator action; events say so.
TEST_F(MaintenanceTest, LedgerdFrozenDuringTheWedgeIsUnwedgedOnceItThawsWithoutOperatorAction) {
  StartCluster(/*blocks_per_sec=*/50);  // the stop point is 3-6 s away
  ConfigureAll();
  LK_ASSERT_OK_AND_ASSIGN(
      auto bg,
      cluster_->StartCli({"--json", "maintenance", "run", "--wedge-timeout-s", "8"}, "maint-frozen-ledgerd"));
  uint64_t stop = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto st = Ledger("r3");
        stop = st ? st->stop_point : 0;
        return stop != 0;
      },
      60s, 5ms))
      << "r3 never got a stop point";
  const pid_t ledgerd = ComponentPid("r3", "ledgerd");
  ASSERT_GT(ledgerd, 0);
  ASSERT_EQ(::kill(ledgerd, SIGSTOP), 0);
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }
  } resume{ledgerd};

  auto rc = bg->WaitExit(120s);
  ASSERT_TRUE(rc.has_value()) << "maintenance run did not finish";
  EXPECT_EQ(*rc, 1) << bg->ReadStdout();
  auto j = LastJsonLine(bg->ReadStdout());
  EXPECT_TRUE(Field(j, "report").value("rolled_back", false)) << j.dump();
  EXPECT_EQ(Field(j, "report").value("needs_unwedge", nlohmann::json::array()), nlohmann::json::array({"r3"}))
      << j.dump();
  EXPECT_NE(j.value("error", "").find("retries"), std::string::npos) << j.dump();

  ::kill(ledgerd, SIGCONT);  // no operator command from here on
  std::optional<ledger::LedgerStatus> r3;
  EXPECT_TRUE(WaitUntil(
      [&] {
        r3 = Ledger("r3");
        return r3 && !r3->wedged && r3->stop_point == 0 && r3->last_reachable > stop + 20;
      },
      60s, 100ms))
      << "r3 stays wedged after it thawed: "
      << (r3 ? "wedged " + std::to_string(r3->wedged) + " stop point " + std::to_string(r3->stop_point) +
                   " last reachable " + std::to_string(r3->last_reachable)
             : std::string("no status"));
  RunResult evs = Cli({"events", "--from-start", "--filter", "wedge.r3"});
  EXPECT_NE(evs.out.find("r3 needs an unwedge"), std::string::npos) << evs.Describe();
  EXPECT_NE(evs.out.find("r3 unwedged by the broker's retry"), std::string::npos) << evs.Describe();
  ExpectServing(stop);
}

// Issue 13, point 6: `ledgerkeep unwedge --node NODE` releases one stranded
// replica (wedged while the others are not), and is refused with a reason
// for a replica that is not wedged, a client, an unknown node, one replica
// of a cluster-wide wedge, and while another workflow runs.
TEST_F(MaintenanceTest, UnwedgeNodeReleasesOneStrandedReplicaAndIsRefusedOtherwise) {
  StartCluster();
  ConfigureAll();
  // While a maintenance run is in progress (held in its pre hook): refused.
  LK_ASSERT_OK_AND_ASSIGN(
      auto bg,
      cluster_->StartCli({"--json", "maintenance", "run", "--pre-hook", LongPreHook()}, "maint-busy"));
  WaitLongPreHookStarted();
  RunResult busy = Cli({"unwedge", "--node", "r3"});
  EXPECT_EQ(busy.exit_code, 1) << busy.Describe();
  EXPECT_NE(busy.err.find("still running"), std::string::npos) << busy.Describe();
  ASSERT_EQ(Cli({"maintenance", "abort"}).exit_code, 0);
  ASSERT_TRUE(bg->WaitExit(60s).has_value()) << "the aborted run did not finish";

  // Strand r3 at a stop point of its own (what a run the broker lost track
  // of leaves behind).
  ledger::ControlClientOptions co;
  co.timeout = 2000ms;
  ledger::LedgerControlClient r3(cluster_->LedgerControl("r3"), co);
  const uint64_t at = LastBlock("r3");
  const uint64_t stop = (at + 300) - ((at + 300) % 150);
  LK_ASSERT_OK(r3.Wedge(stop));
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto st = Ledger("r3");
        return st && st->wedged;
      },
      30s, 20ms))
      << "r3 did not wedge";

  RunResult all = Cli({"unwedge"});
  EXPECT_EQ(all.exit_code, 1) << all.Describe();  // the others are not wedged
  RunResult r1 = Cli({"unwedge", "--node", "r1"});
  EXPECT_EQ(r1.exit_code, 1) << r1.Describe();
  EXPECT_NE(Json(r1).value("error", "").find("r1: it is not wedged"), std::string::npos) << r1.Describe();
  RunResult c1 = Cli({"unwedge", "--node", "c1"});
  EXPECT_EQ(c1.exit_code, 1) << c1.Describe();
  EXPECT_NE(Json(c1).value("error", "").find("only replicas"), std::string::npos) << c1.Describe();
  RunResult unknown = Cli({"unwedge", "--node", "r9"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.Describe();
  auto st = Ledger("r3");
  ASSERT_TRUE(st && st->wedged && st->stop_point == stop) << "a refused unwedge touched r3";

  RunResult ok = Cli({"unwedge", "--node", "r3"});
  ASSERT_EQ(ok.exit_code, 0) << ok.Describe();
  EXPECT_TRUE(Json(ok)["report"]["unwedged"].value("r3", false)) << ok.Describe();
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto s3 = Ledger("r3");
        return s3 && !s3->wedged && s3->stop_point == 0 && s3->last_reachable > stop + 20;
      },
      30s, 50ms))
      << "r3 does not advance after unwedge --node r3";

  // One replica of a cluster-wide wedge is not stranded: refused.
  RunResult wedge = Cli({"wedge", "stop", "--timeout-s", "60"});
  ASSERT_EQ(wedge.exit_code, 0) << wedge.Describe();
  RunResult one = Cli({"unwedge", "--node", "r1"});
  EXPECT_EQ(one.exit_code, 1) << one.Describe();
  EXPECT_NE(Json(one).value("error", "").find("cluster wedge"), std::string::npos) << one.Describe();
  RunResult resume = Cli({"unwedge"});
  EXPECT_EQ(resume.exit_code, 0) << resume.Describe();
  ExpectServing(Json(wedge)["report"].value("stop_point", uint64_t{0}));
}

// ---------------------------------------------------------------------------
// Deterministic lag: r3's agent reads its offline block ids (what check_blocks
// uses once ledgerd is stopped) from a copy of r3's DB taken earlier, so at
// the check r3 says it is hundreds of blocks behind its peers although the
// wedge itself went fine. This stands for a replica whose DB on disk does
// not hold the blocks it reported (lost writes), the case the check exists
// for. ledgerd's own --db is untouched, so the cluster keeps serving.
TEST_F(MaintenanceTest, OfflineLaggingReplicaStopsTheRunBeforeAnyFinalSync) {
  StartCluster();
  ConfigureAll();
  RunResult stop = Cli({"node", "stop", "--node", "r3"});
  ASSERT_EQ(stop.exit_code, 0) << stop.Describe();
  const std::string stale = cluster_->DataDir("r3") + "/db-stale";
  fs::copy(cluster_->LedgerDb("r3"), stale, fs::copy_options::recursive);
  RunResult start = Cli({"node", "start", "--node", "r3"});
  ASSERT_EQ(start.exit_code, 0) << start.Describe();
  uint64_t stale_last = 0;
  {
    LK_ASSERT_OK_AND_ASSIGN(auto s, ledger::LedgerStore::OpenReadOnly(stale));
    stale_last = s->GetBlockIds().last;
  }
  ASSERT_GT(stale_last, 0u);
  // Point the agent's [ledger] db (not ledgerd's --db) at the stale copy.
  std::string cfg = ReadFile(cluster_->NodeConfigPath("r3"));
  const std::string from = "db = \"" + cluster_->LedgerDb("r3") + "\"";
  auto pos = cfg.find(from);
  ASSERT_NE(pos, std::string::npos) << cfg;
  cfg.replace(pos, from.size(), "db = \"" + stale + "\"");
  { std::ofstream(cluster_->NodeConfigPath("r3")) << cfg; }
  LK_ASSERT_OK(cluster_->RestartAgent("r3"));
  LK_ASSERT_OK(cluster_->WaitNodeState("r3", "alive", 15s));
  // r3 caught up (no state transfer) so preflight passes.
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto st = Ledger("r3");
        return st && !st->state_transfer_active && st->last == st->last_reachable &&
               st->last_reachable > stale_last + 50 && st->last_reachable + 150 >= LastBlock("r1");
      },
      30s, 50ms));

  RunResult run = Cli(RunArgs({"--offline"}), 180s);
  EXPECT_EQ(run.exit_code, 1) << run.Describe();
  auto j = Json(run);
  EXPECT_FALSE(j.value("ok", true));
  const auto& report = j["report"];
  EXPECT_EQ(report.value("failed_step", ""), "check_blocks") << j.dump();
  const std::string error = j.value("error", "");
  EXPECT_NE(error.find("check_blocks"), std::string::npos) << error;
  EXPECT_NE(error.find("r3 " + std::to_string(stale_last)), std::string::npos) << error;
  EXPECT_TRUE(report.value("rolled_back", false)) << j.dump();
  EXPECT_FALSE(report.contains("common_block")) << j.dump();
  EXPECT_FALSE(report.contains("replicas")) << j.dump();
  auto evs = RunbookEvents();
  EXPECT_TRUE(SawStep(evs, "check_blocks", "failed"));
  EXPECT_FALSE(SawStep(evs, "final_sync")) << "a final sync ran after a failed block check";
  EXPECT_FALSE(SawStep(evs, "client_backup"));
  for (const auto& r : kReplicas) EXPECT_TRUE(CompleteSnapshots(dest_root_ + "/" + r).empty()) << r;
  ExpectServing(report.value("stop_point", uint64_t{0}));
}

// ---------------------------------------------------------------------------
TEST_F(MaintenanceTest, OfflineDestinationFailureForOneReplicaDuringFinalSyncRollsBack) {
  StartCluster(/*blocks_per_sec=*/300, /*payload_bytes=*/8192);
  const std::string tiny = cluster_->dir() + "/tiny";
  fs::create_directories(tiny);
  if (::mount("tmpfs", tiny.c_str(), "tmpfs", 0, "size=1m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  mounts_.push_back(tiny);
  ConfigureAll();
  RunResult r2 = Cli({"backup", "configure", "--node", "r2", "--destination", tiny + "/r2"});
  ASSERT_EQ(r2.exit_code, 0) << r2.Describe();
  // Grow r2's DB well past the 1 MiB of the tmpfs.
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::error_code ec;
        uint64_t total = 0;
        for (fs::recursive_directory_iterator it(cluster_->LedgerDb("r2"), ec), end; !ec && it != end;
             it.increment(ec))
          if (it->is_regular_file(ec)) total += it->file_size(ec);
        return total > 4u << 20;
      },
      60s, 100ms));

  RunResult run = Cli(RunArgs({"--offline"}), 180s);
  EXPECT_EQ(run.exit_code, 1) << run.Describe();
  auto j = Json(run);
  const auto& report = j["report"];
  EXPECT_EQ(report.value("failed_step", ""), "final_sync") << j.dump();
  const std::string error = j.value("error", "");
  EXPECT_NE(error.find("final sync failed on r2"), std::string::npos) << error;
  EXPECT_EQ(error.find("r1:"), std::string::npos) << error;
  EXPECT_EQ(error.find("r3:"), std::string::npos) << error;
  EXPECT_TRUE(report.value("rolled_back", false)) << j.dump();
  EXPECT_TRUE(CompleteSnapshots(tiny + "/r2").empty());
  auto evs = RunbookEvents();
  EXPECT_TRUE(SawStep(evs, "final_sync", "failed"));
  EXPECT_TRUE(SawStep(evs, "rollback", "done"));
  ExpectServing(report.value("common_block", uint64_t{0}));
}

// ---------------------------------------------------------------------------
TEST_F(MaintenanceTest, OfflineBrokerKilledDuringFinalSyncFinishesOrRollsBackAndTheClusterServes) {
  // ~5 MB/s of ledger: tens of MB to copy make the final sync take a while.
  StartCluster(/*blocks_per_sec=*/300, /*payload_bytes=*/16384);
  ConfigureAll();
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > 2500; }, 60s, 100ms));
  LK_ASSERT_OK_AND_ASSIGN(auto bg, cluster_->StartCli({"--json", "maintenance", "run", "--offline", "--wedge-timeout-s", "30"},
                                                      "maint-broker-kill"));
  ASSERT_TRUE(WaitUntil([&] { return BrokerLogHas("(maintenance) final_sync started"); }, 90s, 2ms))
      << "the run never reached the final sync";
  const bool sync_done_before_kill = BrokerLogHas("(maintenance) final_sync done");
  LK_ASSERT_OK(cluster_->KillBroker(SIGKILL));
  LK_ASSERT_OK(cluster_->StartBroker());

  auto rc = bg->WaitExit(90s);
  ASSERT_TRUE(rc.has_value()) << "maintenance run did not finish within 90 s after the broker restarted "
                                  "(final sync of ~50 MB takes < 1 s)";
  auto j = LastJsonLine(bg->ReadStdout());
  ASSERT_TRUE(j.contains("ok")) << bg->ReadStdout();
  const auto& report = j["report"];
  if (j.value("ok", false)) {
    EXPECT_EQ(*rc, 0);
    const uint64_t common = report.value("common_block", uint64_t{0});
    for (const auto& r : kReplicas) EXPECT_EQ(report["replicas"][r].value("last_block_id", uint64_t{1}), common) << r;
  } else {
    EXPECT_EQ(*rc, 1);
    EXPECT_TRUE(report.value("rolled_back", false)) << j.dump();
  }
  // Resume: the final sync already issued is waited for, not repeated: at
  // most one snapshot per replica.
  for (const auto& r : kReplicas) {
    EXPECT_LE(CompleteSnapshots(dest_root_ + "/" + r).size(), 1u) << r << ": the final sync ran more than once";
  }
  EXPECT_TRUE(BrokerLogHas("(maintenance) final_sync") || sync_done_before_kill);
  ExpectServing(report.value("common_block", report.value("stop_point", uint64_t{0})));
}

// ---------------------------------------------------------------------------
TEST_F(MaintenanceTest, PreflightFailureChangesNothingWhenANodeIsLost) {
  StartCluster();
  ConfigureAll();
  LK_ASSERT_OK(cluster_->KillAgent("r3"));
  LK_ASSERT_OK(cluster_->WaitNodeState("r3", "lost", 15s));
  const uint64_t before = LastBlock("r1");
  RunResult run = Cli(RunArgs(), 60s);
  EXPECT_EQ(run.exit_code, 1) << run.Describe();
  auto j = Json(run);
  const std::string error = j.value("error", "");
  EXPECT_NE(error.find("r3"), std::string::npos) << error;
  EXPECT_NE(error.find("nothing was changed"), std::string::npos) << error;
  EXPECT_EQ(j["report"].value("failed_step", ""), "preflight") << j.dump();
  EXPECT_FALSE(j["report"].value("rolled_back", false)) << j.dump();
  auto evs = RunbookEvents();
  EXPECT_FALSE(SawStep(evs, "stop_clients"));
  EXPECT_FALSE(SawStep(evs, "wedge"));
  // Untouched: every ledgerd (r3's too, its agent is gone) keeps producing.
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (const auto& r : kReplicas) {
          auto st = Ledger(r);
          if (!st || st->wedged || st->last_reachable <= before + 100) return false;
        }
        return true;
      },
      30s, 50ms))
      << "a replica stopped or was wedged by a failed preflight";
  ExpectServing(before, {"r1", "r2"});
}

TEST_F(MaintenanceTest, PreflightFailureChangesNothingWhenTwoNodesShareADestination) {
  StartCluster();
  ConfigureAll();
  // The broker refuses a shared destination, so craft one: r2's agent
  // config edited while the agent is down.
  LK_ASSERT_OK(cluster_->KillAgent("r2"));
  const std::string path = cluster_->DataDir("r2") + "/backup/config.json";
  auto cfg = nlohmann::json::parse(ReadFile(path), nullptr, false);
  ASSERT_FALSE(cfg.is_discarded()) << ReadFile(path);
  const std::string before_dest = cfg.value("destination", "");
  ASSERT_TRUE(before_dest == dest_root_ + "/r2" || before_dest == dest_root_ + "/{node}") << cfg.dump();
  cfg["destination"] = dest_root_ + "/r1";
  { std::ofstream(path) << cfg.dump(1) << "\n"; }
  LK_ASSERT_OK(cluster_->StartAgent("r2"));
  LK_ASSERT_OK(cluster_->WaitNodeState("r2", "alive", 15s));
  RunResult status = Cli({"backup", "status", "--node", "r2"});
  ASSERT_NE(status.out.find(dest_root_ + "/r1"), std::string::npos) << status.Describe();

  const uint64_t before = LastBlock("r1");
  RunResult run = Cli(RunArgs(), 60s);
  EXPECT_EQ(run.exit_code, 1) << run.Describe();
  auto j = Json(run);
  const std::string error = j.value("error", "");
  EXPECT_TRUE(error.find("r2 and r1 share") != std::string::npos ||
              error.find("r1 and r2 share") != std::string::npos)
      << error;
  EXPECT_NE(error.find("nothing was changed"), std::string::npos) << error;
  EXPECT_EQ(j["report"].value("failed_step", ""), "preflight") << j.dump();
  auto evs = RunbookEvents();
  EXPECT_FALSE(SawStep(evs, "stop_clients"));
  EXPECT_FALSE(SawStep(evs, "wedge"));
  ExpectServing(before);
}

TEST_F(MaintenanceTest, ArchiveNameTakenAtAClientDestinationFailsPreflightAndChangesNothing) {
  StartCluster();
  ConfigureAll();
  const std::string taken = dest_root_ + "/c1/nightly.tar.gz";
  const std::string earlier = "an earlier archive\n";
  fs::create_directories(dest_root_ + "/c1");
  { std::ofstream(taken) << earlier; }

  const uint64_t before = LastBlock("r1");
  RunResult run = Cli(RunArgs({"--archive", "nightly"}), 60s);
  EXPECT_EQ(run.exit_code, 1) << run.Describe();
  auto j = Json(run);
  const std::string error = j.value("error", "");
  EXPECT_NE(error.find("nightly.tar.gz already exists"), std::string::npos) << error;
  EXPECT_NE(error.find("pick another --name"), std::string::npos) << error;
  EXPECT_NE(error.find("nothing was changed"), std::string::npos) << error;
  EXPECT_EQ(j["report"].value("failed_step", ""), "preflight") << j.dump();
  auto evs = RunbookEvents();
  EXPECT_FALSE(SawStep(evs, "stop_clients"));
  EXPECT_FALSE(SawStep(evs, "wedge"));
  EXPECT_EQ(ReadFile(taken), earlier);
  EXPECT_FALSE(fs::exists(taken + ".sha256"));
  ExpectServing(before);
}

}  // namespace
}  // namespace ledgerkeep::test

namespace ledgerkeep::test {
namespace {

// `maintenance abort` during the wedge rolls the cluster back to serving, and
// a second run while one is in progress is refused.
TEST_F(MaintenanceTest, AbortDuringTheWedgeRollsBackAndASecondRunIsRefused) {
  StartCluster(/*blocks_per_sec=*/60);  // the wedge takes a few seconds
  ConfigureAll();
  LK_ASSERT_OK_AND_ASSIGN(auto bg, cluster_->StartCli({"--json", "maintenance", "run", "--wedge-timeout-s", "60"},
                                                      "maint-abort"));
  ASSERT_TRUE(WaitUntil([&] { return BrokerLogHas("(maintenance) wedge started"); }, 60s, 5ms))
      << "the run never reached the wedge";
  RunResult second = Cli({"maintenance", "run"});
  EXPECT_EQ(second.exit_code, 1) << second.Describe();
  EXPECT_NE(second.err.find("still running"), std::string::npos) << second.Describe();

  RunResult abort = Cli({"maintenance", "abort"});
  ASSERT_EQ(abort.exit_code, 0) << abort.Describe();
  const uint64_t aborted_at = std::max(LastBlock("r1"), LastBlock("r2"));
  auto rc = bg->WaitExit(120s);
  ASSERT_TRUE(rc.has_value()) << "the aborted run did not finish";
  EXPECT_EQ(*rc, 1) << bg->ReadStdout();
  auto j = LastJsonLine(bg->ReadStdout());
  EXPECT_NE(j.value("error", "").find("aborted by the operator"), std::string::npos) << j.dump();
  EXPECT_TRUE(j["report"].value("rolled_back", false)) << j.dump();
  auto evs = RunbookEvents();
  EXPECT_FALSE(SawStep(evs, "final_sync")) << "went on after the abort";
  EXPECT_TRUE(SawStep(evs, "rollback", "done"));
  ExpectServing(aborted_at);
}

// Regression (issue 13, point 17): `maintenance abort` during a pre hook
// `sleep 40` took effect only once the hook ended by itself, 40 s later. The
// abort kills the hook's process group (its background child too) at once,
// and the run rolls back as for any abort.
TEST_F(MaintenanceTest, AbortDuringAPreHookKillsItsProcessGroupAtOnceAndRollsBack) {
  StartCluster();
  ConfigureAll();
  LK_ASSERT_OK_AND_ASSIGN(
      auto bg,
      cluster_->StartCli({"--json", "maintenance", "run", "--pre-hook", LongPreHook()}, "maint-hook-abort"));
  const auto hook = WaitLongPreHookStarted();
  ASSERT_EQ(hook.size(), 2u);
  ASSERT_TRUE(AnyAlive(hook));
  const auto aborted_at = std::chrono::steady_clock::now();
  RunResult abort = Cli({"maintenance", "abort"});
  ASSERT_EQ(abort.exit_code, 0) << abort.Describe();
  EXPECT_TRUE(WaitUntil([&] { return !AnyAlive(hook); }, 10s, 20ms))
      << "the pre hook (or its background child) still runs 10 s after the abort";
  auto rc = bg->WaitExit(60s);
  ASSERT_TRUE(rc.has_value()) << "the aborted run did not finish";
  EXPECT_LT(std::chrono::steady_clock::now() - aborted_at, 20s) << "the abort waited for the hook";
  EXPECT_EQ(*rc, 1) << bg->ReadStdout();
  auto j = LastJsonLine(bg->ReadStdout());
  const auto report = Field(j, "report");
  EXPECT_NE(j.value("error", "").find("aborted by the operator"), std::string::npos) << bg->ReadStdout();
  EXPECT_EQ(report.value("failed_step", ""), "pre_hook") << j.dump();
  EXPECT_TRUE(Field(Field(report, "hooks"), "pre_hook").value("killed", false)) << j.dump();
  EXPECT_TRUE(report.value("rolled_back", false)) << j.dump();
  auto evs = RunbookEvents();
  EXPECT_FALSE(SawStep(evs, "stop_clients")) << "went on after the abort";
  EXPECT_TRUE(SawStep(evs, "rollback", "done"));
}

// A broker shutdown (SIGTERM) during a pre hook kills the hook's process
// group instead of waiting for the hook to end (it waited 40 s, past any
// service manager's stop timeout); the run resumes on the next start.
TEST_F(MaintenanceTest, BrokerShutdownDuringAPreHookKillsItsProcessGroup) {
  StartCluster();
  ConfigureAll();
  LK_ASSERT_OK_AND_ASSIGN(auto bg,
                          cluster_->StartCli({"--json", "maintenance", "run", "--pre-hook", LongPreHook()},
                                             "maint-hook-shutdown"));
  const auto hook = WaitLongPreHookStarted();
  ASSERT_EQ(hook.size(), 2u);
  LK_ASSERT_OK(cluster_->KillBroker(SIGTERM));  // waits 15 s for the exit
  EXPECT_TRUE(WaitUntil([&] { return !AnyAlive(hook); }, 5s, 20ms))
      << "the pre hook (or its background child) outlived the broker";
  EXPECT_EQ(cluster_->broker_process()->exit_code().value_or(-1), 0) << "the broker did not stop cleanly";
}

// --dry-run prints the plan and an estimate, and changes nothing.
TEST_F(MaintenanceTest, DryRunPrintsThePlanAndAnEstimateAndChangesNothing) {
  StartCluster();
  ConfigureAll();
  RunResult baseline = Cli({"backup", "run-now"});
  ASSERT_EQ(baseline.exit_code, 0) << baseline.Describe();
  const uint64_t before = std::max(LastBlock("r1"), LastBlock("r2"));
  // The plan and estimate of the chosen mode (issue 15).
  RunResult dry = Cli({"maintenance", "run", "--dry-run", "--offline"});
  ASSERT_EQ(dry.exit_code, 0) << dry.Describe();
  auto j = LastJsonLine(dry.out);
  ASSERT_TRUE(j["report"].value("dry_run", false)) << j.dump();
  auto plan = j["report"]["plan"];
  ASSERT_TRUE(plan.is_array()) << j.dump();
  EXPECT_EQ(plan.front(), "preflight");
  EXPECT_NE(std::find(plan.begin(), plan.end(), "final_sync"), plan.end());
  EXPECT_GT(j["report"].value("estimated_window_s", 0.0), 0.0) << j.dump();
  for (const auto& r : kReplicas) EXPECT_TRUE(j["report"]["estimate"].contains(r)) << r;
  RunResult online = Cli({"maintenance", "run", "--dry-run"});
  ASSERT_EQ(online.exit_code, 0) << online.Describe();
  j = LastJsonLine(online.out);
  plan = j["report"]["plan"];
  ASSERT_TRUE(plan.is_array()) << j.dump();
  EXPECT_NE(std::find(plan.begin(), plan.end(), "checkpoint"), plan.end()) << j.dump();
  EXPECT_EQ(std::find(plan.begin(), plan.end(), "final_sync"), plan.end()) << j.dump();
  EXPECT_EQ(plan.back(), "ship");
  EXPECT_GT(j["report"].value("estimated_pause_s", 0.0), 0.0) << j.dump();
  EXPECT_TRUE(j["report"].contains("estimated_shipping_s")) << j.dump();
  for (const auto& r : kReplicas) EXPECT_TRUE(j["report"]["disk"].contains(r)) << r << ": " << j.dump();
  EXPECT_FALSE(SawStep(RunbookEvents(), "stop_clients")) << "a dry run touched the cluster";
  ExpectServing(before);
}

}  // namespace
}  // namespace ledgerkeep::test
