// Restore end to end through a real cluster (broker, agents, ledgerd under
// every replica and, --read-only, under a clone agent, the real CLI, rsync
// to local destinations): restore onto a clone after a maintenance run,
// corruption and incomplete snapshots refused, restore onto a live member
// refused, client archives restored, truncated and hostile archives refused
// (README "Restore and analytics").
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ledger/control_client.h"
#include "ledger/ledger_store.h"
#include "tests/support/child_process.h"
#include "tests/support/cli_json.h"
#include "tests/support/snapshot_checks.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class RestoreTest : public ::testing::Test {
 protected:
  void StartCluster(int replicas, int clients, int clones) {
    TestClusterOptions o;
    o.replicas = replicas;
    o.clients = clients;
    o.clones = clones;
    o.with_ledger = true;
    o.ledger_blocks_per_sec = 300;
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
    LK_ASSERT_OK(cluster_->StartAll());
    dest_root_ = cluster_->dir() + "/backups";
    if (replicas > 0) {
      ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") >= 20; }, 30s, 50ms)) << "r1 produces no blocks";
    }
  }

  RunResult Cli(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 120s) {
    std::vector<std::string> full = {"--json"};
    full.insert(full.end(), args.begin(), args.end());
    return cluster_->RunCli(full, timeout);
  }

  std::optional<ledger::LedgerStatus> Ledger(const std::string& node) {
    ledger::ControlClientOptions o;
    o.timeout = 1000ms;
    ledger::LedgerControlClient c(cluster_->LedgerControl(node), o);
    auto st = c.GetStatus();
    if (!st.ok()) return std::nullopt;
    return *st;
  }
  uint64_t LastBlock(const std::string& node) {
    auto st = Ledger(node);
    return st ? st->last_reachable : 0;
  }

  // ledgerkeep-db against a DB directory, JSON out.
  RunResult Db(const std::vector<std::string>& args) {
    ProcessSpec spec;
    spec.argv = {BinPath("ledgerkeep-db")};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    const std::string base = cluster_->dir() + "/logs/db-" + std::to_string(++db_runs_);
    spec.stdout_path = base + ".out";
    spec.stderr_path = base + ".err";
    return RunToCompletion(std::move(spec), 60s);
  }

  std::string Dest(const std::string& node) const { return dest_root_ + "/" + node; }

  std::string LargestSst(const std::string& snap) const {
    std::string best;
    uintmax_t size = 0;
    for (const auto& e : fs::directory_iterator(snap + "/data")) {
      if (e.path().extension() == ".sst" && e.file_size() > size) {
        size = e.file_size();
        best = e.path().filename().string();
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

  std::unique_ptr<TestCluster> cluster_;
  std::string dest_root_;
  int db_runs_ = 0;
};

// ---------------------------------------------------------------------------
TEST_F(RestoreTest, CloneRestoredAfterMaintenanceHoldsTheCommonBlockAndMatchesAStoppedReplica) {
  StartCluster(/*replicas=*/2, /*clients=*/1, /*clones=*/1);
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r2") >= 20; }, 30s, 50ms));
  // Clones are not members: they are listed as clones and get no destination.
  RunResult nodes = Cli({"nodes"});
  ASSERT_EQ(nodes.exit_code, 0) << nodes.Describe();
  bool clone_listed = false;
  for (const auto& n : Json(nodes)) {
    if (n.value("node", "") == "clone1") clone_listed = n.value("clone", false);
  }
  EXPECT_TRUE(clone_listed) << nodes.out;
  RunResult conf = Cli({"backup", "configure", "--destination", dest_root_ + "/{node}"});
  ASSERT_EQ(conf.exit_code, 0) << conf.Describe();
  EXPECT_FALSE(Json(conf).contains("clone1")) << conf.out;
  EXPECT_FALSE(fs::exists(Dest("clone1")));

  // The maintenance window runs with the clone present (it is not wedged,
  // stopped or backed up).
  RunResult run = Cli({"maintenance", "run", "--wedge-timeout-s", "30", "--backup-timeout-s", "120"}, 180s);
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  const auto j = LastJsonLine(run.out);
  const auto& report = j["report"];
  const uint64_t common = report.value("common_block", uint64_t{0});
  ASSERT_GT(common, 0u) << j.dump();
  const std::string snap = report["replicas"]["r1"].value("snapshot_id", "");
  ASSERT_FALSE(snap.empty()) << j.dump();

  // Restore r1's latest snapshot onto the clone.
  RunResult restore = Cli({"restore", "--node", "r1", "--snapshot", "latest", "--to-node", "clone1"}, 120s);
  ASSERT_EQ(restore.exit_code, 0) << restore.Describe();
  const auto r = LastJsonLine(restore.out);
  EXPECT_EQ(r.value("snapshot_id", ""), snap) << r.dump();
  EXPECT_TRUE(r.value("ledgerd_started", false)) << r.dump();
  ASSERT_TRUE(r.contains("verification")) << r.dump();
  EXPECT_TRUE(r["verification"].value("ok", false)) << r.dump();
  EXPECT_EQ(r["verification"].value("last_reachable", uint64_t{0}), common);
  EXPECT_EQ(r["verification"].value("last_block_id", uint64_t{0}), common);
  EXPECT_EQ(r["verification"].value("blocks_verified", uint64_t{0}), common);

  // ledgerd --read-only serves the restored DB at the common block and
  // produces nothing.
  auto st = Ledger("clone1");
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->last_reachable, common);
  EXPECT_EQ(st->last, common);

  // Analytics on the clone's DB (while its ledgerd serves it).
  const std::string clone_db = cluster_->LedgerDb("clone1");
  RunResult info = Db({clone_db, "getBlockInfo", std::to_string(common)});
  ASSERT_EQ(info.exit_code, 0) << info.Describe();
  const auto info_j = Json(info);
  ASSERT_FALSE(info_j["keys"].empty()) << info.out;
  const std::string key = info_j["keys"][0];
  RunResult value = Db({clone_db, "getValue", key, std::to_string(common)});
  ASSERT_EQ(value.exit_code, 0) << value.Describe();
  EXPECT_EQ(Json(value).value("blockVersion", ""), std::to_string(common));
  // The clone's read-only ledgerd answers the same block info and key
  // lookup over its control socket.
  {
    ledger::ControlClientOptions co;
    co.timeout = 5000ms;
    ledger::LedgerControlClient c(cluster_->LedgerControl("clone1"), co);
    auto block = c.GetBlock(common);
    ASSERT_TRUE(block.ok()) << block.status().ToString();
    EXPECT_EQ(block->digest_hex, info_j.value("digest", "")) << info.out;
    EXPECT_EQ(std::to_string(block->num_updates), info_j.value("numUpdates", "")) << info.out;
    auto kv = c.GetKey(key, common);
    ASSERT_TRUE(kv.ok()) << kv.status().ToString();
    EXPECT_EQ(kv->block_id, common);
    EXPECT_EQ(std::to_string(kv->value.size()), Json(value).value("size", "")) << value.out;
    // Read-only: it refuses a wedge, and produces nothing.
    EXPECT_FALSE(c.Wedge(((common / 150) + 1) * 150).ok());
  }
  RunResult stats = Db({clone_db, "rangeStats", "1", std::to_string(common)});
  ASSERT_EQ(stats.exit_code, 0) << stats.Describe();
  EXPECT_EQ(Json(stats).value("blocks", ""), std::to_string(common)) << stats.out;
  EXPECT_NE(Json(stats).value("distinctKeys", "0"), "0") << stats.out;

  // compareTo against the stopped source replica: no mismatch over the
  // restored range.
  RunResult stop = Cli({"node", "stop", "--node", "r2"});
  ASSERT_EQ(stop.exit_code, 0) << stop.Describe();
  RunResult cmp = Db({clone_db, "compareTo", cluster_->LedgerDb("r2")});
  ASSERT_EQ(cmp.exit_code, 0) << cmp.Describe();
  EXPECT_EQ(Json(cmp).value("result", ""), "match");
  EXPECT_EQ(Json(cmp).value("commonTo", ""), std::to_string(common));

  // Restoring onto a live member is refused, and r1's ledger keeps going.
  const uint64_t r1_before = LastBlock("r1");
  RunResult refused = Cli({"restore", "--node", "r1", "--to-node", "r1"});
  EXPECT_NE(refused.exit_code, 0) << refused.Describe();
  EXPECT_NE(refused.err.find("live member of the cluster"), std::string::npos) << refused.Describe();
  EXPECT_TRUE(WaitUntil([&] { return LastBlock("r1") > r1_before; }, 10s, 50ms)) << "r1 stopped serving";
}

// ---------------------------------------------------------------------------
// Issue 13 point 2: after `run-now --destination /tmp/adhoc/{node}` and a
// plain run-now, list, status and verify showed the newer snapshot while
// `restore --snapshot latest` restored the older one from the one-off place
// (the broker had recorded it as the node's destination). One model now:
// a one-off destination never replaces the home, every place is recorded
// with its newest snapshot, and "latest" is the newest complete snapshot
// over all places, for list, status, verify and every restore.
TEST_F(RestoreTest, LatestIsTheNewestSnapshotWhereverItIsAndAOneOffNeverReplacesTheHome) {
  StartCluster(/*replicas=*/1, /*clients=*/0, /*clones=*/1);
  const std::string home = dest_root_ + "/home/{node}";
  const std::string adhoc = dest_root_ + "/adhoc/{node}";
  RunResult conf = Cli({"backup", "configure", "--node", "r1", "--destination", home});
  ASSERT_EQ(conf.exit_code, 0) << conf.Describe();
  auto run_now = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"backup", "run-now", "--node", "r1"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = Cli(args, 120s);
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    return LastJsonLine(r.out)["r1"];
  };
  const auto one_off = run_now({"--destination", adhoc});
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > one_off.value("last_block_id", uint64_t{0}) + 20; }, 30s));
  const auto newer = run_now({});
  const std::string newest = newer.value("snapshot_id", "");
  ASSERT_GT(newest, one_off.value("snapshot_id", "")) << newer.dump();
  ASSERT_GT(newer.value("last_block_id", uint64_t{0}), one_off.value("last_block_id", uint64_t{0}));

  // The home stays the home, on the agent and in the broker.
  RunResult nodes = Cli({"nodes"});
  const auto node_list = Json(nodes);
  for (const auto& n : node_list) {
    if (n.value("node", "") != "r1") continue;
    EXPECT_EQ(n.value("backup_destination", ""), dest_root_ + "/home/r1") << nodes.out;
    EXPECT_EQ(n["backup_places"].size(), 2u) << nodes.out;
  }
  RunResult status = Cli({"backup", "status", "--node", "r1"});
  ASSERT_EQ(status.exit_code, 0) << status.Describe();
  EXPECT_EQ(Json(status)["r1"].value("destination", ""), dest_root_ + "/home/r1") << status.out;
  EXPECT_EQ(Json(status)["r1"]["last_snapshot"].value("snapshot_id", ""), newest) << status.out;

  // list shows both places and marks the newest as latest.
  RunResult list = Cli({"backup", "list", "--node", "r1"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  std::string listed_latest;
  const auto listed = Json(list);
  for (const auto& snap : listed["snapshots"]) {
    if (snap.value("latest", false)) listed_latest = snap.value("snapshot_id", "");
  }
  EXPECT_EQ(listed_latest, newest) << list.out;
  EXPECT_EQ(listed["snapshots"].size(), 2u) << list.out;

  // Every restore takes the same one: here, to a directory and to the clone.
  RunResult to_dir = Cli({"restore", "--node", "r1", "--snapshot", "latest", "--to-dir",
                          cluster_->dir() + "/restored/r1"},
                         120s);
  ASSERT_EQ(to_dir.exit_code, 0) << to_dir.Describe();
  EXPECT_EQ(LastJsonLine(to_dir.out).value("snapshot_id", ""), newest) << to_dir.out;
  RunResult to_clone = Cli({"restore", "--node", "r1", "--to-node", "clone1"}, 120s);
  ASSERT_EQ(to_clone.exit_code, 0) << to_clone.Describe();
  const auto clone_j = LastJsonLine(to_clone.out);
  EXPECT_EQ(clone_j.value("snapshot_id", ""), newest) << to_clone.out;
  EXPECT_EQ(clone_j["verification"].value("last_block_id", uint64_t{0}), newer.value("last_block_id", uint64_t{0}));

  // A newer one-off snapshot is the latest now, and is found where it is.
  const auto newest_one_off = run_now({"--destination", adhoc});
  const std::string id = newest_one_off.value("snapshot_id", "");
  RunResult verify = Cli({"backup", "verify", "--node", "r1"}, 120s);
  ASSERT_EQ(verify.exit_code, 0) << verify.Describe();
  ASSERT_EQ(Json(verify)["snapshots"].size(), 1u) << verify.out;
  EXPECT_EQ(Json(verify)["snapshots"][0].value("snapshot_id", ""), id) << verify.out;
  RunResult again = Cli({"restore", "--node", "r1", "--snapshot", "latest", "--to-node", "clone1"}, 120s);
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  EXPECT_EQ(LastJsonLine(again.out).value("snapshot_id", ""), id) << again.out;
  EXPECT_EQ(LastJsonLine(again.out).value("source", ""), dest_root_ + "/adhoc/r1") << again.out;
  // Still one home.
  RunResult status2 = Cli({"backup", "status", "--node", "r1"});
  EXPECT_EQ(Json(status2)["r1"].value("destination", ""), dest_root_ + "/home/r1") << status2.out;
}

// Issue 13 point 7: a destination inside the node's own data directory or
// live DB was accepted; with ledgerd stopped the snapshot then held the
// earlier snapshots. Refused, after resolving symlinks, before anything is
// written.
TEST_F(RestoreTest, DestinationInsideTheLedgerOrTheAgentsDataDirectoryIsRefused) {
  StartCluster(/*replicas=*/1, /*clients=*/0, /*clones=*/0);
  const std::string link = cluster_->dir() + "/innocent-looking-link";
  fs::create_directory_symlink(cluster_->DataDir("r1"), link);
  for (const std::string& dest : std::vector<std::string>{cluster_->LedgerDb("r1") + "/backups", cluster_->DataDir("r1") + "/backups",
                                 link + "/backups"}) {
    for (const char* verb : {"run-now", "configure"}) {
      RunResult r = Cli({"backup", verb, "--node", "r1", "--destination", dest});
      EXPECT_EQ(r.exit_code, 1) << verb << " " << dest << ": " << r.Describe();
      EXPECT_NE(r.out.find("inside"), std::string::npos) << r.out;
    }
    EXPECT_FALSE(fs::exists(dest)) << dest;
  }
  // Checkpoint mode's local checkpoints never go into the live DB either.
  RunResult cp = Cli({"backup", "schedule", "--node", "r1", "--mode", "checkpoint", "--frequency", "hourly",
                      "--destination", link + "/db/checkpoints"});
  EXPECT_EQ(cp.exit_code, 1) << cp.Describe();
  EXPECT_NE(cp.out.find("inside the ledger DB"), std::string::npos) << cp.out;
  EXPECT_FALSE(fs::exists(cluster_->LedgerDb("r1") + "/checkpoints"));
  RunResult ok = Cli({"backup", "run-now", "--node", "r1", "--destination", dest_root_ + "/{node}"}, 120s);
  EXPECT_EQ(ok.exit_code, 0) << ok.Describe();
}

TEST_F(RestoreTest, CorruptSnapshotFailsVerifyAndRestoreAndIncompleteOnesAreNeverOffered) {
  StartCluster(/*replicas=*/1, /*clients=*/0, /*clones=*/1);
  const std::string dest = Dest("r1");
  for (int i = 0; i < 2; ++i) {
    RunResult b = Cli({"backup", "run-now", "--node", "r1", "--destination", dest_root_ + "/{node}"});
    ASSERT_EQ(b.exit_code, 0) << b.Describe();
  }
  auto ids = SnapshotDirs(dest, true);
  ASSERT_EQ(ids.size(), 2u);

  // The source node is down: the clone still restores, from where the
  // broker says r1's backups are.
  LK_ASSERT_OK(cluster_->KillAgent("r1"));
  RunResult good = Cli({"restore", "--node", "r1", "--to-node", "clone1"});
  ASSERT_EQ(good.exit_code, 0) << good.Describe();
  EXPECT_EQ(LastJsonLine(good.out).value("snapshot_id", ""), ids[1]);
  const uint64_t restored_last = LastJsonLine(good.out)["verification"].value("last_block_id", uint64_t{0});
  // --to-dir: on this machine, also without r1.
  const std::string here = cluster_->dir() + "/restored-here";
  RunResult local = Cli({"restore", "--node", "r1", "--to-dir", here});
  ASSERT_EQ(local.exit_code, 0) << local.Describe();
  EXPECT_TRUE(LastJsonLine(local.out)["verification"].value("ok", false)) << local.out;
  RunResult local_last = Db({here, "getLastBlockID"});
  ASSERT_EQ(local_last.exit_code, 0) << local_last.Describe();
  EXPECT_EQ(Json(local_last).value("lastBlockID", ""), std::to_string(restored_last));
  LK_ASSERT_OK(cluster_->StartAgent("r1"));
  LK_ASSERT_OK(cluster_->WaitNodeState("r1", "alive", 15s));

  // Verify on the backup server's copy, then damage the latest snapshot.
  RunResult ok = Cli({"backup", "verify", "--node", "r1", "--all"});
  ASSERT_EQ(ok.exit_code, 0) << ok.Describe();
  EXPECT_EQ(Json(ok).value("method", ""), "in place");
  EXPECT_EQ(Json(ok)["snapshots"].size(), 2u);
  const std::string snap = dest + "/snapshots/" + ids[1];
  const std::string sst = LargestSst(snap);
  ASSERT_FALSE(sst.empty());
  FlipByte(snap + "/data/" + sst, fs::file_size(snap + "/data/" + sst) / 2);

  RunResult bad = Cli({"backup", "verify", "--node", "r1"});
  EXPECT_EQ(bad.exit_code, 1) << bad.Describe();
  const auto bj = Json(bad);
  EXPECT_FALSE(bj.value("ok", true));
  bool named = false;
  for (const auto& p : bj["snapshots"][0]["problems"]) named = named || p.value("file", "") == "data/" + sst;
  EXPECT_TRUE(named) << bad.out;

  RunResult refused = Cli({"restore", "--node", "r1", "--to-node", "clone1"});
  EXPECT_NE(refused.exit_code, 0) << refused.Describe();
  EXPECT_NE(refused.out.find(sst), std::string::npos) << refused.Describe();
  // The clone still serves what it had.
  ASSERT_TRUE(WaitUntil([&] { return Ledger("clone1").has_value(); }, 30s, 50ms));
  EXPECT_EQ(LastBlock("clone1"), restored_last);

  // A snapshot without DONE: not listed, not restorable by its id.
  fs::remove(dest + "/snapshots/" + ids[0] + "/DONE");
  RunResult list = Cli({"backup", "list", "--node", "r1"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  const auto listed = Json(list);  // a range-for over Json(list)["snapshots"] would outlive its temporary
  for (const auto& s : listed["snapshots"]) EXPECT_NE(s.value("snapshot_id", ""), ids[0]) << list.out;
  RunResult by_id = Cli({"restore", "--node", "r1", "--snapshot", ids[0], "--to-node", "clone1"});
  EXPECT_NE(by_id.exit_code, 0) << by_id.Describe();
  EXPECT_NE(by_id.out.find("has no DONE"), std::string::npos) << by_id.Describe();
  RunResult to_dir =
      Cli({"restore", "--node", "r1", "--snapshot", ids[0], "--to-dir", cluster_->dir() + "/here"});
  EXPECT_NE(to_dir.exit_code, 0) << to_dir.Describe();
  EXPECT_NE(to_dir.out.find("has no DONE"), std::string::npos) << to_dir.Describe();
  EXPECT_FALSE(fs::exists(cluster_->dir() + "/here"));
}

// ---------------------------------------------------------------------------
TEST_F(RestoreTest, ClientArchiveRestoresWithModesAndDamagedOrHostileArchivesWriteNothing) {
  StartCluster(/*replicas=*/0, /*clients=*/1, /*clones=*/0);
  RunResult conf = Cli({"backup", "configure", "--node", "c1", "--destination", dest_root_ + "/{node}"});
  ASSERT_EQ(conf.exit_code, 0) << conf.Describe();
  const std::string cfg = cluster_->DataDir("c1") + "/client/config/environment-vars";
  ASSERT_EQ(::chmod(cfg.c_str(), 0640), 0);
  RunResult b = Cli({"backup", "client", "--node", "c1", "--name", "good"});
  ASSERT_EQ(b.exit_code, 0) << b.Describe();

  // A good archive: contents and modes back.
  const std::string out = cluster_->dir() + "/restored";
  RunResult r = Cli({"restore", "--client", "c1", "--archive", "good", "--to-dir", out});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_TRUE(Json(r).value("ok", false)) << r.out;
  const std::string back = out + cfg;  // entries keep their absolute path, minus the leading '/'
  ASSERT_TRUE(fs::exists(back)) << back;
  EXPECT_EQ(ReadFile(back), ReadFile(cfg));
  struct stat st {};
  ASSERT_EQ(::stat(back.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);

  // Truncated at the destination: a clear error, nothing written.
  RunResult b2 = Cli({"backup", "client", "--node", "c1", "--name", "cut"});
  ASSERT_EQ(b2.exit_code, 0) << b2.Describe();
  const std::string cut = Dest("c1") + "/cut.tar.gz";
  fs::resize_file(cut, fs::file_size(cut) / 2);
  const std::string out2 = cluster_->dir() + "/restored-cut";
  RunResult r2 = Cli({"restore", "--client", "c1", "--archive", "cut", "--to-dir", out2});
  EXPECT_EQ(r2.exit_code, 1) << r2.Describe();
  EXPECT_NE(r2.out.find("damaged or truncated"), std::string::npos) << r2.Describe();
  EXPECT_FALSE(fs::exists(out2));

  // An archive with a ../ entry (GNU tar -P keeps it), with a matching
  // checksum: refused, nothing written in or outside the target.
  const std::string evil_src = cluster_->dir() + "/evil/src";
  fs::create_directories(evil_src);
  std::ofstream(evil_src + "/ok.txt") << "fine\n";
  std::ofstream(cluster_->dir() + "/evil/escape.txt") << "escaped\n";
  ProcessSpec tar;
  tar.argv = {"/bin/sh", "-c",
              "cd '" + evil_src + "' && tar czPf '" + Dest("c1") +
                  "/evil.tar.gz' ok.txt ../escape.txt && cd '" + Dest("c1") +
                  "' && sha256sum evil.tar.gz > evil.tar.gz.sha256"};
  tar.stdout_path = cluster_->dir() + "/logs/tar.out";
  tar.stderr_path = cluster_->dir() + "/logs/tar.err";
  RunResult made = RunToCompletion(std::move(tar), 30s);
  ASSERT_EQ(made.exit_code, 0) << made.Describe();
  const std::string out3 = cluster_->dir() + "/target/inner";
  fs::create_directories(cluster_->dir() + "/target");
  RunResult r3 = Cli({"restore", "--client", "c1", "--archive", "evil", "--to-dir", out3});
  EXPECT_EQ(r3.exit_code, 1) << r3.Describe();
  EXPECT_NE(r3.out.find("refusing entry '../escape.txt'"), std::string::npos) << r3.Describe();
  EXPECT_FALSE(fs::exists(out3));
  EXPECT_FALSE(fs::exists(out3 + ".restore-tmp"));
  EXPECT_FALSE(fs::exists(cluster_->dir() + "/target/escape.txt"));
  EXPECT_TRUE(fs::is_empty(cluster_->dir() + "/target"));
}

}  // namespace
}  // namespace ledgerkeep::test
