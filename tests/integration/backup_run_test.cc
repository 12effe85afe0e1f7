// `backup run-now` through a real cluster (broker, agents, ledgerd, CLI,
// rsync to local directories): progress, consistent snapshots on every
// replica, incremental second runs, and two runs for one node queued rather
// than interleaved.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backup/backup_manifest.h"
#include "ledger/control_client.h"
#include "ledger/ledger_store.h"
#include "tests/support/cli_json.h"
#include "tests/support/snapshot_checks.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class BackupRunTest : public ::testing::Test {
 protected:
  void StartCluster(int replicas, int blocks_per_sec, int payload_bytes) {
    TestClusterOptions o;
    o.replicas = replicas;
    o.clients = 1;
    o.with_ledger = true;
    o.ledger_blocks_per_sec = blocks_per_sec;
    o.ledger_payload_bytes = payload_bytes;
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
    LK_ASSERT_OK(cluster_->StartAll());
  }
  RunResult Cli(const std::vector<std::string>& args, bool json = true) {
    std::vector<std::string> full;
    if (json) full.push_back("--json");
    full.insert(full.end(), args.begin(), args.end());
    return cluster_->RunCli(full, 120s);
  }
  // Every event of the log whose "<kind>.<node>" starts with `filter`.
  std::vector<nlohmann::json> Events(const std::string& filter) {
    RunResult r = Cli({"events", "--from-start", "--filter", filter});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    std::vector<nlohmann::json> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded()) out.push_back(j);
    }
    return out;
  }
  uint64_t LastBlock(const std::string& node) {
    ledger::LedgerControlClient c(cluster_->LedgerControl(node));
    auto st = c.GetStatus();
    return st.ok() ? st->last_reachable : 0;
  }
  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(BackupRunTest, RunNowShowsProgressAndEveryReplicaGetsAConsistentSnapshot) {
  StartCluster(2, 1000, 1024);
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > 2000 && LastBlock("r2") > 2000; }, 30s));
  const std::string root = cluster_->dir() + "/backups";
  const std::vector<std::string> replicas = {"r1", "r2"};

  RunResult configure = Cli({"backup", "configure", "--role", "replica", "--destination", root + "/{node}"});
  ASSERT_EQ(configure.exit_code, 0) << configure.Describe();
  RunResult first = Cli({"backup", "run-now"});
  ASSERT_EQ(first.exit_code, 0) << first.Describe();
  auto j1 = Json(first);
  EXPECT_EQ(j1.size(), 2u) << "run-now targets the replicas only by default: " << j1.dump();
  std::map<std::string, std::string> first_ids;
  for (const auto& node : replicas) {
    SCOPED_TRACE(node);
    ASSERT_TRUE(j1[node].value("ok", false)) << j1.dump();
    EXPECT_TRUE(j1[node].value("consistent", false)) << j1.dump();
    EXPECT_GT(j1[node].value("bytes_transferred", uint64_t{0}), 0u) << j1.dump();
    first_ids[node] = j1[node].value("snapshot_id", "");
    // backup list: one complete, consistent snapshot with block ids.
    RunResult list = Cli({"backup", "list", "--node", node});
    ASSERT_EQ(list.exit_code, 0) << list.Describe();
    auto l = Json(list);
    EXPECT_EQ(l.value("destination", ""), root + "/" + node) << l.dump();
    ASSERT_EQ(l["snapshots"].size(), 1u) << l.dump();
    const auto& s = l["snapshots"][0];
    EXPECT_EQ(s.value("snapshot_id", ""), first_ids[node]);
    EXPECT_TRUE(s.value("complete", false)) << l.dump();
    EXPECT_TRUE(s.value("consistent", false)) << l.dump();
    EXPECT_GT(s.value("last_block_id", uint64_t{0}), 0u) << l.dump();
    EXPECT_GT(s.value("files", uint64_t{0}), 0u) << l.dump();
    EXPECT_EQ(s.value("last_block_id", uint64_t{0}), j1[node].value("last_block_id", uint64_t{1})) << l.dump();
    auto m = VerifiedManifest(root + "/" + node, first_ids[node]);
    EXPECT_EQ(m.node, node);
    EXPECT_EQ(m.last, s.value("last_block_id", uint64_t{0}));
    // The snapshot is a ledger that opens and whose chain verifies.
    auto store = ledger::LedgerStore::OpenReadOnly(root + "/" + node + "/snapshots/" + first_ids[node] + "/data");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    EXPECT_EQ((*store)->GetBlockIds().last, m.last);
    auto verify = (*store)->VerifyChain(0, 0);
    ASSERT_TRUE(verify.ok()) << verify.status().ToString();
    EXPECT_TRUE(verify->ok()) << verify->error;
  }
  // Progress was reported for every replica while it ran (journaled by the
  // agent, stored by the broker), ending at 100%.
  for (const auto& node : replicas) {
    auto progress = Events("progress." + node);
    EXPECT_FALSE(progress.empty()) << node << " reported no progress";
    double max_percent = 0;
    for (const auto& p : progress) max_percent = std::max(max_percent, p.value("percent", 0.0));
    EXPECT_EQ(max_percent, 100.0) << node;
  }

  // Second run, as an operator sees it (live lines, then "done ..." per
  // node): incremental, so it sends less than the first.
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > 2500; }, 20s));
  RunResult second = Cli({"backup", "run-now"}, /*json=*/false);
  ASSERT_EQ(second.exit_code, 0) << second.Describe();
  auto status = Json(Cli({"backup", "status"}));
  for (const auto& node : replicas) {
    SCOPED_TRACE(node);
    const auto& last = status[node]["last_snapshot"];
    const std::string id = last.value("snapshot_id", "");
    EXPECT_NE(id, first_ids[node]);
    EXPECT_NE(second.out.find(node + "     done " + id), std::string::npos) << second.out;
    EXPECT_EQ(status[node].value("destination", ""), root + "/" + node) << status.dump();
    EXPECT_LT(last.value("bytes_transferred", UINT64_MAX), j1[node].value("bytes_transferred", uint64_t{0}))
        << "the second run was not incremental: " << status.dump() << "\nfirst: " << j1.dump();
    EXPECT_EQ(SnapshotDirs(root + "/" + node, true), (std::vector<std::string>{first_ids[node], id}));
    auto m = VerifiedManifest(root + "/" + node, id);
    EXPECT_EQ(m.previous, first_ids[node]);
  }
}

// `run-now --destination D` on a node without a configured destination
// backs up to D (and the broker from then on counts D as that node's), so
// `backup list` and `backup status` must show D's snapshots too.
TEST_F(BackupRunTest, RunNowToAnExplicitDestinationIsListedAfterwards) {
  StartCluster(1, 200, 1024);
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > 100; }, 20s));
  const std::string dest = cluster_->dir() + "/adhoc/r1";
  RunResult run = Cli({"backup", "run-now", "--node", "r1", "--destination", dest});
  ASSERT_EQ(run.exit_code, 0) << run.Describe();
  const std::string id = Json(run)["r1"].value("snapshot_id", "");
  ASSERT_EQ(SnapshotDirs(dest, true), std::vector<std::string>{id});
  RunResult list = Cli({"backup", "list", "--node", "r1"});
  EXPECT_EQ(list.exit_code, 0) << list.Describe();
  auto l = Json(list);
  EXPECT_EQ(l.value("destination", ""), dest) << list.Describe();
  EXPECT_EQ(l["snapshots"].size(), 1u) << list.Describe();
  auto status = Json(Cli({"backup", "status", "--node", "r1"}));
  EXPECT_EQ(status["r1"].value("destination", ""), dest) << status.dump();
}

TEST_F(BackupRunTest, SecondRunWhileOneRunsIsQueuedNotInterleaved) {
  StartCluster(1, 1000, 4096);
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > 4000; }, 30s));  // ~16 MiB
  const std::string dest = cluster_->dir() + "/backups/r1";
  LK_ASSERT_OK_AND_ASSIGN(auto client, cluster_->ConnectOperator(10'000));
  auto body = [&] {
    wire::RunBackupNowT r;
    r.target = std::make_unique<wire::BackupTargetT>();
    r.target->destination = dest;
    r.reason = "test";
    wire::CommandBodyUnion b;
    b.Set(std::move(r));
    return b;
  };
  wire::TargetT target;
  target.node_id = "r1";
  LK_ASSERT_OK_AND_ASSIGN(auto a, client->Issue(target, body(), 120'000));
  LK_ASSERT_OK_AND_ASSIGN(auto b, client->Issue(target, body(), 120'000));
  LK_ASSERT_OK_AND_ASSIGN(auto da, client->Wait(a.cmd_id, 120'000, nullptr));
  LK_ASSERT_OK_AND_ASSIGN(auto db, client->Wait(b.cmd_id, 120'000, nullptr));
  std::vector<SnapshotManifest> manifests;
  for (const auto* st : {&da, &db}) {
    ASSERT_TRUE(st->finished) << DescribeCommandStatus(*st);
    LK_ASSERT_OK(AllTargetsOk(*st));
    const auto& r = st->targets.at(0)->result;
    ASSERT_EQ(r->detail.type, wire::ResultDetail::BackupResult);
    const auto* res = r->detail.AsBackupResult();
    ASSERT_TRUE(res->ok) << res->error;
    manifests.push_back(VerifiedManifest(dest, res->snapshot_id));
  }
  ASSERT_EQ(manifests.size(), 2u);
  std::sort(manifests.begin(), manifests.end(),
            [](const auto& x, const auto& y) { return x.started_at_ms < y.started_at_ms; });
  const auto& earlier = manifests[0];
  const auto& later = manifests[1];
  // Precondition: the second command reached the broker while the first ran.
  ASSERT_LT(std::max(da.issued_at_ms, db.issued_at_ms), earlier.finished_at_ms)
      << "the first run finished before the second was issued; the test proves nothing";
  EXPECT_NE(earlier.snapshot_id, later.snapshot_id);
  EXPECT_LE(earlier.finished_at_ms, later.started_at_ms)
      << "runs interleaved: [" << earlier.started_at_ms << ", " << earlier.finished_at_ms << "] and ["
      << later.started_at_ms << ", " << later.finished_at_ms << "]";
  // The later run saw the earlier one complete and built on it.
  EXPECT_EQ(later.previous, earlier.snapshot_id);
  EXPECT_EQ(SnapshotDirs(dest, true), (std::vector<std::string>{earlier.snapshot_id, later.snapshot_id}));
  EXPECT_TRUE(SnapshotDirs(dest, false).empty());
}

}  // namespace
}  // namespace ledgerkeep::test
