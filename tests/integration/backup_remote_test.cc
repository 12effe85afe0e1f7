// Backups to remote destinations through a real cluster (broker, agents,
// ledgerd, CLI): over SSH to a real sshd, to a real rsync daemon, and an
// agent SIGKILLed in the middle of a transfer to a daemon (made slow by a
// throttling TCP relay so the kill lands mid-transfer every time).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "backup/backup_manifest.h"
#include "ledger/control_client.h"
#include "tests/common/sshd_fixture.h"
#include "tests/support/cli_json.h"
#include "tests/support/snapshot_checks.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/transfer_fakes.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// ---------------------------------------------------------------- helpers


// A complete, consistent snapshot on disk whose files match its manifest.
void ExpectSnapshotVerifies(const std::string& dest, const std::string& id) {
  SnapshotManifest m = VerifiedManifest(dest, id);
  EXPECT_GT(m.last, 0u) << id;
  EXPECT_TRUE(m.consistent) << id;
  EXPECT_FALSE(m.files.empty()) << id;
}

// Processes whose command line contains every needle (arguments joined by
// spaces), e.g. the rsync an agent runs for one destination.
std::vector<pid_t> FindProcesses(const std::vector<std::string>& needles) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = ReadFile(e.path().string() + "/cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    bool all = !cmd.empty();
    for (const auto& n : needles) all = all && cmd.find(n) != std::string::npos;
    if (all) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

// "N files, M bytes" under dir (rsync's hidden temporary files included).
std::string DescribeTree(const std::string& dir) {
  uint64_t files = 0, bytes = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    ++files;
    bytes += e.file_size();
  }
  return std::to_string(files) + " files, " + std::to_string(bytes) + " bytes in the killed run's snapshot";
}

std::vector<std::string> LeakedCheckpoints(const std::string& ledger_db) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::path(ledger_db).parent_path(), ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(".ledgerkeep-checkpoint-", 0) == 0) out.push_back(n);
  }
  return out;
}

class BackupRemoteTest : public ::testing::Test {
 protected:
  void StartCluster(int replicas, const std::string& node_config_extra = "", int blocks_per_sec = 400) {
    TestClusterOptions o;
    o.replicas = replicas;
    o.clients = 0;
    o.with_ledger = true;
    o.ledger_blocks_per_sec = blocks_per_sec;
    o.node_config_extra = node_config_extra;
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
    LK_ASSERT_OK(cluster_->StartAll());
  }
  RunResult Cli(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 120s) {
    std::vector<std::string> full = {"--json"};
    full.insert(full.end(), args.begin(), args.end());
    return cluster_->RunCli(full, timeout);
  }
  uint64_t LastBlock(const std::string& node) {
    ledger::LedgerControlClient c(cluster_->LedgerControl(node));
    auto st = c.GetStatus();
    return st.ok() ? st->last_reachable : 0;
  }
  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(BackupRemoteTest, SshDestinationWorksEndToEnd) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  LK_ASSERT_OK(sshd.Start());
  const std::string known_hosts = sshd.dir() + "/known_hosts";
  StartCluster(2, "[backup]\nssh_options = [\"-o\", \"UserKnownHostsFile=" + known_hosts +
                      "\", \"-o\", \"StrictHostKeyChecking=no\", \"-o\", \"LogLevel=ERROR\"]\n");
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > 100 && LastBlock("r2") > 100; }, 20s));
  const std::string dest_root = cluster_->dir() + "/ssh-backups";
  const std::vector<std::string> run = {"backup", "run-now", "--destination", "root@127.0.0.1:" + dest_root + "/{node}",
                                        "--ssh-key", sshd.client_key(), "--ssh-port", std::to_string(sshd.port())};
  RunResult first = Cli(run);
  ASSERT_EQ(first.exit_code, 0) << first.Describe() << "\nsshd log:\n" << sshd.log();
  auto j = Json(first);
  for (const char* node : {"r1", "r2"}) {
    SCOPED_TRACE(node);
    ASSERT_TRUE(j[node].value("ok", false)) << j.dump();
    const std::string dest = dest_root + "/" + node;
    const std::string id = j[node].value("snapshot_id", "");
    EXPECT_EQ(SnapshotDirs(dest, true), std::vector<std::string>{id});
    ExpectSnapshotVerifies(dest, id);
    EXPECT_EQ(ReadFile(dest + "/.ledgerkeep-owner"), cluster_->Config().cluster_id + " " + node + "\n");
  }
  // The ssh_options of the node config were used: ssh recorded the host key
  // in the known_hosts file they name (hashed: Debian's HashKnownHosts).
  EXPECT_FALSE(ReadFile(known_hosts).empty()) << "the [backup] ssh_options were not used";

  // From here on the destination is the nodes' configured one.
  RunResult configure = Cli({"backup", "configure", "--role", "replica", "--destination",
                             "root@127.0.0.1:" + dest_root + "/{node}", "--ssh-key", sshd.client_key(), "--ssh-port",
                             std::to_string(sshd.port())});
  ASSERT_EQ(configure.exit_code, 0) << configure.Describe();

  // A second run over SSH: incremental (hard-linked to the first), and the
  // incomplete snapshot of a crashed run is deleted on the remote host.
  const std::string dead = dest_root + "/r1/snapshots/20200101T000000.000Z";
  fs::create_directories(dead + "/data");
  std::ofstream(dead + "/data/000001.sst") << "partial";
  RunResult second = Cli({"backup", "run-now"});
  ASSERT_EQ(second.exit_code, 0) << second.Describe();
  auto j2 = Json(second);
  EXPECT_FALSE(fs::exists(dead)) << "the incomplete snapshot was not deleted over SSH";
  for (const char* node : {"r1", "r2"}) {
    SCOPED_TRACE(node);
    const std::string dest = dest_root + "/" + node;
    EXPECT_EQ(SnapshotDirs(dest, true).size(), 2u);
    ExpectSnapshotVerifies(dest, j2[node].value("snapshot_id", ""));
    EXPECT_LT(j2[node].value("bytes_transferred", uint64_t{0}), j2[node].value("bytes_total", uint64_t{0}))
        << j2.dump();
  }
  // backup list reads the snapshots back over SSH.
  RunResult list = Cli({"backup", "list", "--node", "r2"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  auto l = Json(list);
  ASSERT_EQ(l["snapshots"].size(), 2u) << l.dump();
  for (const auto& s : l["snapshots"]) {
    EXPECT_TRUE(s.value("complete", false)) << l.dump();
    EXPECT_TRUE(s.value("consistent", false)) << l.dump();
    EXPECT_GT(s.value("last_block_id", uint64_t{0}), 0u) << l.dump();
  }
}

TEST_F(BackupRemoteTest, RsyncDaemonDestinationWorks) {
  RsyncDaemon daemon;
  TempDir tmp("lk-rsyncd-");
  LK_ASSERT_OK(daemon.Start(tmp.path()));
  StartCluster(2);
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > 100 && LastBlock("r2") > 100; }, 20s));
  const std::vector<std::string> run = {"backup", "run-now", "--destination",
                                        "rsync://127.0.0.1:" + std::to_string(daemon.port()) + "/backup/{node}"};
  RunResult first = Cli(run);
  ASSERT_EQ(first.exit_code, 0) << first.Describe() << "\nrsyncd log:\n" << ReadFile(tmp.path() + "/rsyncd.log");
  auto j = Json(first);
  for (const char* node : {"r1", "r2"}) {
    SCOPED_TRACE(node);
    const std::string dest = daemon.module_dir() + "/" + node;
    const std::string id = j[node].value("snapshot_id", "");
    EXPECT_EQ(SnapshotDirs(dest, true), std::vector<std::string>{id});
    ExpectSnapshotVerifies(dest, id);
  }
  // Second run: the daemon has no shell, so the incomplete snapshot of a
  // crashed run is deleted with rsync --delete; complete ones stay.
  const std::string dead = daemon.module_dir() + "/r2/snapshots/20200101T000000.000Z";
  fs::create_directories(dead + "/data");
  std::ofstream(dead + "/data/000001.sst") << "partial";
  RunResult second = Cli(run);
  ASSERT_EQ(second.exit_code, 0) << second.Describe();
  auto j2 = Json(second);
  EXPECT_FALSE(fs::exists(dead)) << "the incomplete snapshot was not deleted through the daemon";
  for (const char* node : {"r1", "r2"}) {
    SCOPED_TRACE(node);
    const std::string dest = daemon.module_dir() + "/" + node;
    EXPECT_EQ(SnapshotDirs(dest, true).size(), 2u);
    EXPECT_TRUE(SnapshotDirs(dest, false).empty());
    ExpectSnapshotVerifies(dest, j2[node].value("snapshot_id", ""));
  }
}

TEST_F(BackupRemoteTest, AgentKilledMidTransferLeavesNoCompleteSnapshotAndTheNextRunCompletes) {
  RsyncDaemon daemon;
  TempDir tmp("lk-rsyncd-");
  LK_ASSERT_OK(daemon.Start(tmp.path()));
  // 256 KiB/s towards the daemon: a few MiB take seconds.
  ThrottledRelay relay(daemon.port(), 256 * 1024);
  LK_ASSERT_OK(relay.Start());
  StartCluster(1, "", /*blocks_per_sec=*/1000);
  ASSERT_TRUE(WaitUntil([&] { return LastBlock("r1") > 3000; }, 30s));  // >= 3 MiB of payload
  const std::string dest = daemon.module_dir() + "/r1";
  const std::string url = "rsync://127.0.0.1:" + std::to_string(relay.port()) + "/backup/{node}";
  RunResult configure = Cli({"backup", "configure", "--node", "r1", "--destination", url});
  ASSERT_EQ(configure.exit_code, 0) << configure.Describe();
  LK_ASSERT_OK_AND_ASSIGN(auto run, cluster_->StartCli({"--json", "backup", "run-now", "--node", "r1"}, "run-now-1"));
  // Mid-transfer: the agent says it is running and rsync has started
  // writing the new snapshot's data (no DONE yet).
  std::string id;
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto incomplete = SnapshotDirs(dest, false);
        if (incomplete.empty() || relay.forwarded() < 256 * 1024) return false;
        id = incomplete.back();
        return true;
      },
      30s, 20ms))
      << "the transfer never started; agent log:\n" << TailLines(ReadFile(cluster_->LogPath("r1")), 40);
  auto status = Json(Cli({"backup", "status", "--node", "r1"}));
  EXPECT_TRUE(status["r1"].value("running", false)) << status.dump();
  ASSERT_FALSE(fs::exists(dest + "/snapshots/" + id + "/DONE"));
  LK_ASSERT_OK(cluster_->KillAgent("r1", SIGKILL));

  // The agent's rsync runs in its own process group: the SIGKILL does not
  // reach it. It must not go on copying into the destination on its own
  // (the agent that would publish or delete its snapshot is gone, and the
  // restarted agent's next run would share the destination with it).
  const std::vector<std::string> orphan_needles = {"--info=progress2", "/backup/r1/snapshots/" + id};
  const bool orphan_seen = !FindProcesses(orphan_needles).empty();
  const int64_t kill_ms = MonotonicMs();
  const bool orphan_stopped = WaitUntil([&] { return FindProcesses(orphan_needles).empty(); }, 5s, 20ms);
  const int64_t orphan_lived_ms = MonotonicMs() - kill_ms;
  std::printf("[ note     ] after the agent's SIGKILL its rsync %s (%lld ms); %s\n",
              !orphan_seen      ? "was already gone"
              : orphan_stopped ? "stopped by itself"
                               : "was still copying",
              static_cast<long long>(orphan_lived_ms), DescribeTree(dest + "/snapshots/" + id).c_str());
  EXPECT_TRUE(orphan_stopped) << "the killed agent's rsync was still copying into " << dest << " "
                              << orphan_lived_ms << " ms later";
  // Either way, let it finish (or fail) quickly so the rest is deterministic.
  relay.SetRate(0);
  ASSERT_TRUE(WaitUntil([&] { return FindProcesses(orphan_needles).empty(); }, 20s, 20ms))
      << "the orphaned rsync never exited";
  EXPECT_FALSE(fs::exists(dest + "/snapshots/" + id + "/DONE")) << "the orphaned rsync published the snapshot";

  LK_ASSERT_OK(cluster_->StartAgent("r1"));
  LK_ASSERT_OK(cluster_->WaitNodeState("r1", "alive", 15s));
  // The interrupted command is reported, not re-run.
  auto exited = run->WaitExit(30s);
  ASSERT_TRUE(exited.has_value()) << "run-now did not finish after the agent restarted";
  EXPECT_EQ(*exited, 1) << run->ReadStdout();
  auto interrupted = nlohmann::json::parse(run->ReadStdout(), nullptr, false);
  ASSERT_FALSE(interrupted.is_discarded()) << run->ReadStdout();
  EXPECT_NE(interrupted["r1"].value("error", "").find("Interrupted"), std::string::npos) << interrupted.dump();

  // The half-written snapshot is listed, as incomplete, with --incomplete
  // only (never offered otherwise).
  RunResult list = Cli({"backup", "list", "--node", "r1", "--incomplete"});
  ASSERT_EQ(list.exit_code, 0) << list.Describe();
  auto l = Json(list);
  bool listed_incomplete = false;
  for (const auto& s : l["snapshots"]) {
    if (s.value("snapshot_id", "") == id) listed_incomplete = !s.value("complete", true);
    EXPECT_FALSE(s.value("complete", false)) << "a snapshot is complete after the only run was killed: " << l.dump();
  }
  EXPECT_TRUE(listed_incomplete) << l.dump();

  // The next run completes and removes the debris of the killed one.
  RunResult again = Cli({"backup", "run-now", "--node", "r1"});
  ASSERT_EQ(again.exit_code, 0) << again.Describe();
  const std::string new_id = Json(again)["r1"].value("snapshot_id", "");
  EXPECT_EQ(SnapshotDirs(dest, true), std::vector<std::string>{new_id});
  EXPECT_TRUE(SnapshotDirs(dest, false).empty()) << "the killed run's snapshot is still there";
  ExpectSnapshotVerifies(dest, new_id);
  auto l2 = Json(Cli({"backup", "list", "--node", "r1"}));
  ASSERT_EQ(l2["snapshots"].size(), 1u) << l2.dump();
  EXPECT_TRUE(l2["snapshots"][0].value("complete", false)) << l2.dump();
  // The killed run's RocksDB checkpoint (hard links next to the DB) must not
  // stay behind forever, pinning old SST files.
  EXPECT_TRUE(LeakedCheckpoints(cluster_->LedgerDb("r1")).empty())
      << "left next to the ledger DB: " << ::testing::PrintToString(LeakedCheckpoints(cluster_->LedgerDb("r1")));
}

}  // namespace
}  // namespace ledgerkeep::test
