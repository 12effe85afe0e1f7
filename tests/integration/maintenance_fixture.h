// The fixture of the maintenance window's end-to-end tests
// (maintenance_test.cc: the runbook procedure and what both modes share;
// online_window_test.cc: the online window of issue 15): a real cluster
// (broker, agents, ledgerd under every replica, a stand-in service under the
// client, the real CLI, rsync to local directories) and what the tests ask it.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "common/process.h"
#include "ledger/control_client.h"
#include "ledger/ledger_store.h"
#include "tests/support/child_process.h"
#include "tests/support/cli_json.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline const std::vector<std::string> kReplicas = {"r1", "r2", "r3"};

class MaintenanceTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const auto& m : mounts_) ::umount2(m.c_str(), MNT_DETACH);
  }

  // `before_start`: runs after the cluster's files exist, before any process
  // starts (e.g. to put a replica's DB on a file system of its own).
  void StartCluster(int blocks_per_sec = 300, int payload_bytes = 1024,
                    const std::function<void(TestCluster&)>& before_start = {}) {
    TestClusterOptions o;
    o.replicas = 3;
    o.clients = 1;
    o.heartbeat_ms = 100;
    // Preflight refuses a suspect node: 10 missed beats (1 s), not 3, so a
    // loaded CI machine delaying one agent's beat does not fail the run.
    o.suspect_after = 10;
    o.lost_after = 30;
    o.clones = clones_;
    o.with_ledger = true;
    o.ledger_blocks_per_sec = blocks_per_sec;
    o.ledger_payload_bytes = payload_bytes;
    // The hooks a run may name (the broker's config defines them).
    hook_dir_ = hook_tmp_.path();
    o.cluster_config_extra =
        "[[hook]]\nname = \"long\"\nexec = [\"/bin/sh\", \"-c\", "
        "\"sleep 40 & echo $! > \\\"$1/child.pid\\\"; echo $$ > \\\"$1/sh.pid\\\"; sleep 40\", \"sh\", \"" +
        hook_dir_ + "\"]\n\n[[hook]]\nname = \"record\"\nexec = [\"/bin/sh\", \"-c\", "
        "\"echo \\\"$0\\\" >> \\\"$1/ran\\\"\", \"record\", \"" + hook_dir_ + "\"]\n";
    o.node_config_extra = node_config_extra_;
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
    if (before_start) before_start(*cluster_);
    LK_ASSERT_OK(cluster_->StartAll());
    ASSERT_TRUE(WaitUntil(
        [&] {
          for (const auto& r : kReplicas)
            if (LastBlock(r) < 20) return false;
          return true;
        },
        30s, 50ms))
        << "replicas do not produce blocks";
    dest_root_ = cluster_->dir() + "/backups";
  }

  RunResult Cli(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 120s) {
    std::vector<std::string> full = {"--json"};
    full.insert(full.end(), args.begin(), args.end());
    return cluster_->RunCli(full, timeout);
  }

  void ConfigureAll() {
    RunResult r = Cli({"backup", "configure", "--destination", dest_root_ + "/{node}"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
  }

  std::vector<std::string> RunArgs(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a = {"maintenance", "run", "--wedge-timeout-s", "30", "--backup-timeout-s", "120"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // The ledgerd status straight from its control socket.
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

  // Runbook step events: (step, state) pairs, in order.
  std::vector<nlohmann::json> RunbookEvents() {
    RunResult r = Cli({"events", "--from-start", "--filter", "runbook"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    std::vector<nlohmann::json> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded()) out.push_back(j);
    }
    return out;
  }
  bool SawStep(const std::vector<nlohmann::json>& evs, const std::string& step, const std::string& state = "") {
    for (const auto& e : evs)
      if (e.value("step", "") == step && (state.empty() || e.value("state", "") == state)) return true;
    return false;
  }

  // Broker log grows with "workflow N (maintenance) <step> <state>: ...".
  bool BrokerLogHas(const std::string& needle) {
    return ReadFile(cluster_->LogPath("broker")).find(needle) != std::string::npos;
  }

  pid_t ComponentPid(const std::string& node, const std::string& component) {
    std::ifstream in(cluster_->DataDir(node) + "/components/" + component + ".pid");
    pid_t pid = 0;
    in >> pid;
    return pid;
  }

  // The cluster serves: every listed replica's block id advances past
  // `above`, none is wedged, and the client component runs.
  void ExpectServing(uint64_t above, const std::vector<std::string>& replicas = kReplicas) {
    SCOPED_TRACE("cluster serving after the run");
    std::map<std::string, uint64_t> seen;
    const bool advancing = WaitUntil(
        [&] {
          RunResult b = Cli({"blocks"}, 30s);
          auto j = nlohmann::json::parse(b.out, nullptr, false);
          if (j.is_discarded()) return false;
          for (const auto& r : replicas) {
            seen[r] = j["replicas"][r].value("lastReachableBlockID", uint64_t{0});
            if (!j["replicas"][r].value("running", false) || seen[r] <= above + 20) return false;
          }
          return true;
        },
        60s, 300ms);
    std::string desc;
    for (auto& [n, v] : seen) desc += n + "=" + std::to_string(v) + " ";
    EXPECT_TRUE(advancing) << "replicas do not advance past " << above << ": " << desc;
    RunResult ws = Cli({"wedge", "status"}, 30s);
    auto w = Json(ws);
    for (const auto& r : replicas) EXPECT_FALSE(w.value(r, true)) << r << " still wedged: " << ws.Describe();
    RunResult ns = Cli({"node", "status", "--node", "c1"}, 30s);
    EXPECT_EQ(ns.exit_code, 0) << ns.Describe();
    auto n = Json(ns);
    EXPECT_TRUE(n["c1"]["components"]["ledger-api"].value("running", false)) << ns.Describe();
  }

  std::vector<std::string> CompleteSnapshots(const std::string& dest) {
    std::vector<std::string> out;
    std::error_code ec;
    if (!fs::exists(dest + "/snapshots", ec)) return out;
    for (const auto& e : fs::directory_iterator(dest + "/snapshots", ec))
      if (e.is_directory() && fs::exists(e.path() / "DONE")) out.push_back(e.path().filename().string());
    return out;
  }

  RunResult Shell(const std::string& cmd) {
    ProcessSpec spec;
    spec.argv = {"/bin/sh", "-c", cmd};
    const std::string base = cluster_->dir() + "/logs/sh-" + std::to_string(++shell_runs_);
    spec.stdout_path = base + ".out";
    spec.stderr_path = base + ".err";
    return RunToCompletion(std::move(spec), 60s);
  }

  // Every command the broker issued to `node` so far (from the event log):
  // "cmd_id kind" each.
  std::vector<std::string> CommandsIssuedTo(const std::string& node) {
    std::vector<std::string> out;
    auto client = cluster_->ConnectOperator();
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    if (!client.ok()) return out;
    auto dump = FetchAllEvents(**client, "command");
    EXPECT_TRUE(dump.ok()) << dump.status().ToString();
    if (!dump.ok()) return out;
    for (const auto& env : dump->events) {
      const auto* c = EventOf(env).body_as_CommandIssued();
      if (c == nullptr || c->targets() == nullptr) continue;
      for (const auto* t : *c->targets())
        if (t->str() == node) out.push_back(std::to_string(c->cmd_id()) + " " + c->kind()->str());
    }
    return out;
  }

  // A pre hook that runs 40 s: a shell whose background child outlives it
  // unless the hook's whole process group is killed. The processes
  // (identified by pid and start time) once both have started.
  std::string LongPreHook() { return "long"; }
  std::vector<ProcessId> WaitLongPreHookStarted() {
    std::vector<ProcessId> procs;
    EXPECT_TRUE(WaitUntil(
        [&] {
          procs.clear();
          for (const char* f : {"/sh.pid", "/child.pid"}) {
            std::ifstream in(hook_dir_ + f);
            pid_t pid = 0;
            if (!(in >> pid) || pid <= 0) return false;
            procs.push_back({pid, ProcessStartTicks(pid)});
          }
          return true;
        },
        60s, 10ms))
        << "the pre hook never started";
    return procs;
  }
  // j[key] when it is an object, else an empty object (so that a missing
  // part of a report fails an expectation instead of throwing).
  static nlohmann::json Field(const nlohmann::json& j, const std::string& key) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_object()) return nlohmann::json::object();
    return j[key];
  }
  static bool AnyAlive(const std::vector<ProcessId>& procs) {
    for (const auto& p : procs)
      if (ProcessRunner::Real()->IsAlive(p)) return true;
    return false;
  }

  std::unique_ptr<TestCluster> cluster_;
  TempDir hook_tmp_{"lk-hook-"};
  std::string hook_dir_;
  std::string dest_root_;
  std::vector<std::string> mounts_;
  int shell_runs_ = 0;
  int clones_ = 0;  // restore clones in the cluster (StartCluster)
  std::string node_config_extra_;  // e.g. a [backup] section for every node (StartCluster)
};

}  // namespace ledgerkeep::test
