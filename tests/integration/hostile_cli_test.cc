// Every option of every `ledgerkeep` command, tried with hostile values
// against a live cluster (issue 13, "close the classes"): option text
// (`-o...`), quotes, `$()`, backticks, `;` and `|`, newlines, 5,000-byte
// strings, unicode, negative and huge numbers, `../`, a directory that holds
// someone's data. The commands and their options are read from the CLI's
// own --help, so an option added later is tried too. Which values each
// option gets is seeded (LK_HOSTILE_SEED, default below; the seed is
// printed); every option gets every value that would run a command if it
// reached a shell or ssh's option parser.
//
// Then: nothing executed (no canary file), no process died (broker, agents,
// ledgerds), every exit code is a documented one (0 ok, 1 a target failed,
// 2 usage; numeric options: always 2), nothing was deleted (the snapshots
// and client archive taken first, a directory of "data" next to them).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "ledger/control_client.h"
#include "tests/common/sshd_fixture.h"
#include "tests/support/cli_json.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uint32_t kDefaultSeed = 1313;
constexpr size_t kValuesPerOption = 4;

struct CliOption {
  std::vector<std::string> command;  // e.g. {"backup", "run-now"}
  std::string name;                  // "--destination"
  bool takes_value = false;
  bool numeric = false;              // UINT / INT
};

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
  return out;
}

class HostileCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Relative paths a value names (keygen --out ..) land in a scratch dir.
    old_cwd_ = fs::current_path();
    fs::current_path(cwd_.path());
    canary_dir_ = canaries_.path();
    TestClusterOptions o;
    o.replicas = 2;
    o.clients = 1;
    o.clones = 1;
    o.with_ledger = true;
    o.ledger_blocks_per_sec = 200;
    o.heartbeat_ms = 100;
    o.suspect_after = 10;
    o.lost_after = 30;
    LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create(o));
    LK_ASSERT_OK(cluster_->StartAll());
    if (testing::SshdServer::Available()) {
      LK_ASSERT_OK(sshd_.Start());
      ssh_ok_ = true;
    }
  }
  void TearDown() override { fs::current_path(old_cwd_); }

  RunResult Cli(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 120s) {
    return cluster_->RunCli(args, timeout);
  }

  // The subcommands listed under "Subcommands:" of `ledgerkeep <path> --help`.
  std::vector<std::string> Subcommands(const std::vector<std::string>& path) {
    std::vector<std::string> args = path;
    args.push_back("--help");
    RunResult r = Cli(args, 20s);
    EXPECT_EQ(r.exit_code, 0) << Join(args) << "\n" << r.Describe();
    std::vector<std::string> out;
    std::istringstream in(r.out);
    std::string line;
    bool in_subs = false;
    static const std::regex sub_re(R"(^  ([a-z][a-z-]*)\s{2,}.*$)");
    while (std::getline(in, line)) {
      if (line.rfind("Subcommands:", 0) == 0) {
        in_subs = true;
        continue;
      }
      std::smatch m;
      if (in_subs && std::regex_match(line, m, sub_re)) out.push_back(m[1]);
    }
    return out;
  }

  // The options of `ledgerkeep <path>` from its --help ("  --name TYPE ...").
  std::vector<CliOption> Options(const std::vector<std::string>& path) {
    std::vector<std::string> args = path;
    args.push_back("--help");
    RunResult r = Cli(args, 20s);
    std::vector<CliOption> out;
    std::istringstream in(r.out);
    std::string line;
    static const std::regex opt_re(R"(^\s+(?:-[a-zA-Z],)?(--[a-z][a-z0-9-]*)(?:\s+([A-Z]+)(?::\S+)?)?(?:\s.*)?$)");
    while (std::getline(in, line)) {
      std::smatch m;
      if (!std::regex_match(line, m, opt_re)) continue;
      CliOption o;
      o.command = path;
      o.name = m[1];
      if (o.name == "--help") continue;
      const std::string type = m[2];
      o.takes_value = type == "TEXT" || type == "UINT" || type == "INT";
      o.numeric = type == "UINT" || type == "INT";
      out.push_back(std::move(o));
    }
    return out;
  }

  // Every leaf command under `path`, with its options.
  void Discover(const std::vector<std::string>& path, std::vector<CliOption>* all) {
    const auto subs = Subcommands(path);
    if (subs.empty()) {
      for (auto& o : Options(path)) all->push_back(std::move(o));
      return;
    }
    for (const auto& s : subs) {
      auto p = path;
      p.push_back(s);
      Discover(p, all);
    }
  }

  // The arguments that make each command runnable, quick and harmless; an
  // option tried with a hostile value replaces its entry here.
  std::vector<std::pair<std::string, std::string>> Base(const std::vector<std::string>& cmd, int run) {
    const std::string c = Join(cmd);
    const std::string dest = ssh_ok_ ? "root@127.0.0.1:" + cluster_->dir() + "/ssh-backups/{node}"
                                     : cluster_->dir() + "/backups/{node}";
    std::vector<std::pair<std::string, std::string>> ssh;
    if (ssh_ok_) {
      ssh = {{"--ssh-key", sshd_.client_key()},
             {"--ssh-port", std::to_string(sshd_.port())},
             {"--known-hosts", sshd_.pinned_known_hosts()}};
    }
    auto with_ssh = [&](std::vector<std::pair<std::string, std::string>> base) {
      base.insert(base.end(), ssh.begin(), ssh.end());
      return base;
    };
    if (c == "keygen") return {{"--out", cwd_.path() + "/keys-" + std::to_string(run)}};
    if (c == "events") return {{"--last", "3"}};
    if (c == "ping") return {{"--node", "r1"}, {"--wait-s", "10"}};
    if (c.rfind("node ", 0) == 0) return {{"--node", "r1"}, {"--component", "no-such-component"}, {"--wait-s", "10"}};
    if (c == "blocks" || c == "health" || c == "wedge status") return {{"--wait-s", "10"}};
    if (c == "wedge stop") return {{"--timeout-s", "30"}};  // only ever run with a bad --timeout-s
    if (c == "unwedge") return {{"--node", "r1"}};
    if (c == "backup schedule") {
      return with_ssh({{"--node", "r1"}, {"--frequency", "daily"}, {"--destination", dest}});
    }
    if (c == "backup run-now") return with_ssh({{"--node", "r1"}, {"--destination", dest}, {"--wait-s", "60"}});
    if (c == "backup configure") return with_ssh({{"--node", "r2"}, {"--destination", dest}});
    if (c == "backup client") {
      return {{"--node", "c1"}, {"--name", "probe-" + std::to_string(run)}, {"--wait-s", "60"}};
    }
    if (c == "backup list" || c == "backup verify") return {{"--node", "r1"}};
    if (c == "backup status" || c == "backup unschedule") return {{"--node", "r2"}};
    if (c == "restore") return {{"--node", "r1"}, {"--to-dir", cwd_.path() + "/restore-" + std::to_string(run)}};
    if (c == "maintenance run") return {{"--dry-run", ""}};
    return {};
  }

  // The hostile values; {C} becomes a canary path (a file nothing may create).
  std::vector<std::string> Pool() {
    return {"-oProxyCommand=touch {C}",
            "$(touch {C})",
            "`touch {C}`",
            "x; touch {C}",
            "x | touch {C}",
            "x\ntouch {C}",
            "{D}/k -o ProxyCommand=touch {C}",
            "{D}/backup_id -o ProxyCommand='sh -c \"touch {C}\"'",  // issue 13 point 1, as reported
            "r1 && touch {C}",
            "--all",
            "'",
            "\"",
            "a'b\"c",
            std::string(5000, 'x'),
            "/" + std::string(5000, 'y'),
            "\xc3\xbcn\xc3\xaf\xf0\x9f\x98\x80",
            "../../../../etc/passwd",
            "../",
            "..",
            "-1",
            "-9223372036854775808",
            "18446744073709551616",
            "99999999999999999999999",
            "0x10",
            "1e3",
            " 5",
            "",
            "%s%n%x",
            "${HOME}",
            "*",
            precious_};
  }

  std::unique_ptr<TestCluster> cluster_;
  testing::SshdServer sshd_;
  bool ssh_ok_ = false;
  TempDir cwd_{"lk-hostile-cwd-"};
  TempDir canaries_{"lk-canary-"};
  std::string canary_dir_;
  std::string precious_ = cwd_.path() + "/precious";
  fs::path old_cwd_;
};

TEST_F(HostileCliTest, EveryOptionOfEveryCommandWithHostileValuesRunsNothingKillsNothingDeletesNothing) {
  uint32_t seed = kDefaultSeed;
  if (const char* s = std::getenv("LK_HOSTILE_SEED")) seed = static_cast<uint32_t>(std::strtoul(s, nullptr, 10));
  std::printf("hostile CLI seed %u (LK_HOSTILE_SEED=%u to replay)\n", seed, seed);
  std::mt19937 rng(seed);

  // What must survive: someone's data, r1's snapshot, c1's archive.
  fs::create_directories(precious_ + "/sub");
  std::ofstream(precious_ + "/sub/data") << "keep me\n";
  const std::string local_dest = cluster_->dir() + "/backups/{node}";
  RunResult conf = Cli({"backup", "configure", "--destination", local_dest});
  ASSERT_EQ(conf.exit_code, 0) << conf.Describe();
  RunResult snap = Cli({"--json", "backup", "run-now", "--node", "r1"});
  ASSERT_EQ(snap.exit_code, 0) << snap.Describe();
  const std::string snap_id = LastJsonLine(snap.out)["r1"].value("snapshot_id", "");
  ASSERT_FALSE(snap_id.empty()) << snap.out;
  const std::string snap_done = cluster_->dir() + "/backups/r1/snapshots/" + snap_id + "/DONE";
  const std::string snap_digest = ReadFile(snap_done);
  RunResult archive = Cli({"backup", "client", "--node", "c1", "--name", "keep"});
  ASSERT_EQ(archive.exit_code, 0) << archive.Describe();
  const std::string archive_path = cluster_->dir() + "/backups/c1/keep.tar.gz";
  ASSERT_TRUE(fs::exists(archive_path));
  const std::string archive_bytes = ReadFile(archive_path);

  std::vector<CliOption> options;
  Discover({}, &options);
  // The global options, tried on `nodes`.
  for (const char* g : {"--config", "--key", "--timeout-ms"}) {
    options.push_back({{"nodes"}, g, true, std::string(g) == "--timeout-ms"});
  }
  std::set<std::string> commands;
  for (const auto& o : options) commands.insert(Join(o.command));
  ASSERT_GE(commands.size(), 20u) << "the CLI's --help was not read right";

  const auto pool = Pool();
  std::vector<std::string> canary_values, other_values;
  for (const auto& v : pool) (v.find("{C}") != std::string::npos ? canary_values : other_values).push_back(v);
  int run = 0, tried = 0;
  std::map<int, int> exits;
  for (const auto& opt : options) {
    if (!opt.takes_value) continue;
    // Every value that would run a command, and a seeded choice of the rest.
    std::vector<std::string> values = canary_values;
    std::sample(other_values.begin(), other_values.end(), std::back_inserter(values), kValuesPerOption, rng);
    for (std::string value : values) {
      ++run;
      const std::string canary = canary_dir_ + "/c" + std::to_string(run);
      for (size_t p = value.find("{C}"); p != std::string::npos; p = value.find("{C}")) value.replace(p, 3, canary);
      // A value taken as a plain path (it may be one) lands in the scratch dir.
      for (size_t p = value.find("{D}"); p != std::string::npos; p = value.find("{D}")) {
        value.replace(p, 3, cwd_.path());
      }
      // The reported key value names a real key file here, so ssh and rsync
      // get as far as using it: it must stay one file name.
      if (ssh_ok_ && value.find("backup_id -o ProxyCommand") != std::string::npos) {
        fs::create_directories(fs::path(value).parent_path());
        fs::copy_file(sshd_.client_key(), value, fs::copy_options::overwrite_existing);
        fs::permissions(value, fs::perms::owner_read | fs::perms::owner_write);
      }
      std::vector<std::string> args = opt.command;
      bool replaced = false;
      for (const auto& [name, v] : Base(opt.command, run)) {
        if (name == opt.name) {
          args.push_back(name + "=" + value);  // one element: the value is never taken for an option
          replaced = true;
        } else {
          args.push_back(name);
          if (!v.empty()) args.push_back(v);
        }
      }
      if (!replaced) args.push_back(opt.name + "=" + value);
      ++tried;
      RunResult r = Cli(args, 180s);
      ++exits[r.exit_code];
      const std::string what = Join(opt.command) + " " + opt.name + "=" + value.substr(0, 60);
      EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1 || r.exit_code == 2) << what << "\n" << r.Describe();
      if (opt.numeric) {
        EXPECT_EQ(r.exit_code, 2) << what << "\n" << r.Describe();
      }
      EXPECT_FALSE(fs::exists(canary)) << "EXECUTED: " << what;
      if (r.exit_code == 0 && std::getenv("LK_HOSTILE_VERBOSE") != nullptr) std::printf("exit 0: %s\n", what.c_str());
    }
  }
  std::string summary;
  for (const auto& [code, n] : exits) summary += " exit " + std::to_string(code) + ": " + std::to_string(n) + ";";
  std::printf("%d invocations over %zu options of %zu commands;%s\n", tried, options.size(), commands.size(),
              summary.c_str());

  // Nothing executed anywhere we can see (no canary file was made).
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(canary_dir_)) {
    if (e.is_regular_file()) found.push_back(e.path().string());
  }
  EXPECT_TRUE(found.empty()) << "a value ran as a command: " << Join(found);
  // No process died.
  for (const auto& node : cluster_->AgentNodes()) {
    ChildProcess* p = cluster_->agent_process(node);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(p->IsRunning()) << node << "'s agent died";
  }
  for (const auto& node : cluster_->Clones()) {
    EXPECT_TRUE(cluster_->agent_process(node)->IsRunning()) << node << "'s agent died";
  }
  ASSERT_NE(cluster_->broker_process(), nullptr);
  EXPECT_TRUE(cluster_->broker_process()->IsRunning()) << "the broker died";
  LK_EXPECT_OK(cluster_->PingAllOk());
  for (const char* r : {"r1", "r2"}) {
    ledger::LedgerControlClient c(cluster_->LedgerControl(r));
    auto before = c.GetStatus();
    ASSERT_TRUE(before.ok()) << r << "'s ledgerd is gone: " << before.status().ToString();
    EXPECT_TRUE(WaitUntil([&] { auto s = c.GetStatus(); return s.ok() && s->last > before->last; }, 20s))
        << r << " stopped producing blocks";
  }
  // Nothing deleted.
  EXPECT_EQ(ReadFile(precious_ + "/sub/data"), "keep me\n");
  EXPECT_EQ(ReadFile(snap_done), snap_digest) << "r1's snapshot " << snap_id << " was touched";
  EXPECT_EQ(ReadFile(archive_path), archive_bytes) << "c1's archive was touched";
}

}  // namespace
}  // namespace ledgerkeep::test
