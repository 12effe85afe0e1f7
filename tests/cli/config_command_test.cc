// `ledgerkeep config init` as an operator (and `./run`, compose's init
// service) runs it: the real binary, its flags, exit codes and output; the
// files it writes loaded back the way the broker, agents and CLI load them.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/curve_keys.h"
#include "common/file_util.h"
#include "common/node_config.h"
#include "tests/support/child_process.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

int ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

class ConfigCommandTest : public ::testing::Test {
 protected:
  RunResult Cli(std::vector<std::string> args) {
    ProcessSpec spec;
    spec.argv = {BinPath("ledgerkeep")};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.stdout_path = dir_ / ("cli-" + std::to_string(++runs_) + ".out");
    spec.stderr_path = dir_ / ("cli-" + std::to_string(runs_) + ".err");
    return RunToCompletion(std::move(spec), 60s);
  }
  TempDir dir_{"lk-cfgcmd-"};
  int runs_ = 0;
};

TEST_F(ConfigCommandTest, InitWritesEveryFileFromItsFlagsAndTheyLoadBack) {
  const std::string out = dir_ / "cluster";
  const std::string bin = fs::path(BinPath("ledgerd")).parent_path().string();
  RunResult r = Cli({"--json", "config", "init", "--out", out, "--replicas", "3", "--clients", "2", "--clones", "1",
                     "--cluster-id", "cli-rt", "--broker-host", "broker", "--bind-host", "*", "--port-base", "18001",
                     "--heartbeat-ms", "500", "--data-root", "/var/lib/lk", "--bin-dir", bin, "--blocks-per-sec",
                     "7", "--payload-bytes", "2048", "--genesis-ms", "1700000000000", "--backup-host", "backup",
                     "--backup-dir", "/srv/b"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["out"], out);
  EXPECT_EQ(j["kept"], false);
  EXPECT_EQ(j["cluster_config"], out + "/cluster.toml");
  EXPECT_EQ(j["members"], nlohmann::json({"broker", "r1", "r2", "r3", "c1", "c2", "clone1"}));
  EXPECT_EQ(j["written"].back(), "cluster.toml");

  LK_ASSERT_OK_AND_ASSIGN(ClusterConfig c, LoadClusterConfig(out + "/cluster.toml"));
  EXPECT_EQ(c.cluster_id, "cli-rt");
  EXPECT_EQ(c.connect_host, "broker");
  EXPECT_EQ(c.bind_host, "*");
  EXPECT_EQ(c.cmd_port, 18001);
  EXPECT_EQ(c.ctl_port, 18002);
  EXPECT_EQ(c.events_port, 18003);
  EXPECT_EQ(c.heartbeat_ms, 500);
  EXPECT_EQ(c.suspect_after, 3);
  EXPECT_EQ(c.lost_after, 10);
  EXPECT_EQ(c.allow.size(), 7u);  // operator + 6 agents
  for (const auto& a : c.allow) {
    LK_ASSERT_OK_AND_ASSIGN(CurveKeyPair key, LoadKeyFile(out + "/keys/" + a.node_id + ".key", true));
    EXPECT_EQ(key.public_z85, a.public_z85) << a.node_id;
    EXPECT_EQ(ModeOf(out + "/keys/" + a.node_id + ".key"), 0600) << a.node_id;
  }
  EXPECT_EQ(ModeOf(out + "/keys/broker.key"), 0600);
  EXPECT_EQ(ModeOf(out + "/keys/backup_id"), 0600);

  LK_ASSERT_OK_AND_ASSIGN(NodeConfig r2, LoadNodeConfig(out + "/nodes/r2.toml"));
  EXPECT_EQ(r2.ledger_db, "/var/lib/lk/r2/db");
  ASSERT_EQ(r2.components.size(), 1u);
  EXPECT_EQ(r2.components[0].exec,
            (std::vector<std::string>{bin + "/ledgerd", "--db", "/var/lib/lk/r2/db", "--control",
                                      "/var/lib/lk/r2/ledgerd.sock", "--genesis-time-ms", "1700000000000",
                                      "--blocks-per-sec", "7", "--payload-bytes", "2048", "--st-blocks-per-sec",
                                      "2000"}));
  EXPECT_EQ(r2.components[0].stop_timeout_ms, 30'000);
  EXPECT_EQ(r2.backup_ssh_options,
            (std::vector<std::string>{"-o", "UserKnownHostsFile=" + out + "/keys/known_hosts"}));
  LK_ASSERT_OK_AND_ASSIGN(NodeConfig c2, LoadNodeConfig(out + "/nodes/c2.toml"));
  EXPECT_EQ(c2.client_paths, (std::vector<std::string>{"/var/lib/lk/c2/client/config", "/var/lib/lk/c2/client/db"}));
  LK_ASSERT_OK_AND_ASSIGN(NodeConfig clone, LoadNodeConfig(out + "/nodes/clone1.toml"));
  ASSERT_EQ(clone.components.size(), 1u);
  EXPECT_EQ(clone.components[0].exec[1], "--read-only");
  EXPECT_EQ(ReadFile(out + "/members"), "broker\nr1\nr2\nr3\nc1\nc2\nclone1\n");
  EXPECT_NE(ReadFile(out + "/backup.env").find("BACKUP_DESTINATION=root@backup:/srv/b/{node}\n"), std::string::npos);
}

TEST_F(ConfigCommandTest, InitRefusesToOverwriteWithoutKeepExistingOrForce) {
  const std::string out = dir_ / "c";
  RunResult first = Cli({"config", "init", "--out", out, "--replicas", "1", "--clients", "0"});
  ASSERT_EQ(first.exit_code, 0) << first.Describe();
  EXPECT_NE(first.out.find("export LEDGERKEEP_CONFIG=" + out + "/cluster.toml"), std::string::npos) << first.out;
  const std::string toml = ReadFile(out + "/cluster.toml");
  const std::string key = ReadFile(out + "/keys/r1.key");

  RunResult again = Cli({"config", "init", "--out", out});
  EXPECT_EQ(again.exit_code, 1) << again.Describe();
  EXPECT_NE(again.err.find("exists: --keep-existing keeps it"), std::string::npos) << again.Describe();
  EXPECT_EQ(ReadFile(out + "/cluster.toml"), toml);
  EXPECT_EQ(ReadFile(out + "/keys/r1.key"), key);

  RunResult kept = Cli({"config", "init", "--out", out, "--keep-existing", "--replicas", "4"});
  EXPECT_EQ(kept.exit_code, 0) << kept.Describe();
  EXPECT_NE(kept.out.find("kept it and its keys"), std::string::npos) << kept.Describe();
  EXPECT_EQ(ReadFile(out + "/cluster.toml"), toml);
  EXPECT_EQ(ReadFile(out + "/keys/r1.key"), key);

  RunResult both = Cli({"config", "init", "--out", out, "--keep-existing", "--force"});
  EXPECT_EQ(both.exit_code, 2) << both.Describe();

  RunResult forced = Cli({"config", "init", "--out", out, "--force", "--replicas", "2", "--clients", "0"});
  EXPECT_EQ(forced.exit_code, 0) << forced.Describe();
  EXPECT_NE(ReadFile(out + "/keys/r1.key"), key);
  EXPECT_EQ(ModeOf(out + "/keys/r1.key"), 0600);
  LK_ASSERT_OK_AND_ASSIGN(ClusterConfig c, LoadClusterConfig(out + "/cluster.toml"));
  EXPECT_NE(c.FindNode("r2"), nullptr);
}

TEST_F(ConfigCommandTest, InitNeverOverwritesAKeyTheOperatorMadeUnlessForced) {
  const std::string out = dir_ / "own";
  RunResult keygen = Cli({"keygen", "--out", out + "/keys", "operator"});
  ASSERT_EQ(keygen.exit_code, 0) << keygen.Describe();
  const std::string secret = ReadFile(out + "/keys/operator.key");
  for (const char* flag : {"", "--keep-existing"}) {
    std::vector<std::string> argv = {"config", "init", "--out", out, "--replicas", "1", "--clients", "0"};
    if (*flag != '\0') argv.push_back(flag);
    RunResult r = Cli(argv);
    EXPECT_EQ(r.exit_code, 1) << flag << "\n" << r.Describe();
    EXPECT_NE(r.err.find("never replaces keys"), std::string::npos) << r.Describe();
    EXPECT_EQ(ReadFile(out + "/keys/operator.key"), secret) << flag;
    EXPECT_FALSE(fs::exists(out + "/cluster.toml")) << flag;
  }
  RunResult forced = Cli({"config", "init", "--out", out, "--replicas", "1", "--clients", "0", "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.Describe();
  EXPECT_NE(ReadFile(out + "/keys/operator.key"), secret);
}

TEST_F(ConfigCommandTest, InitDefaultsToTheBinariesNextToItAndRefusesBadValuesWritingNothing) {
  const std::string out = dir_ / "d";
  RunResult r = Cli({"config", "init", "--out", out, "--replicas", "1", "--clients", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  LK_ASSERT_OK_AND_ASSIGN(NodeConfig r1, LoadNodeConfig(out + "/nodes/r1.toml"));
  EXPECT_EQ(r1.components.at(0).exec.at(0), BinPath("ledgerd"));
  EXPECT_EQ(r1.ledger_db, out + "/data/r1/db");

  const std::string never = dir_ / "never";
  const std::vector<std::vector<std::string>> bad = {
      {"--replicas", "-1"},      {"--replicas", "1000"},          {"--clients", "x"},
      {"--port-base", "65534"},  {"--heartbeat-ms", "5"},         {"--genesis-ms", "0"},
      {"--payload-bytes", "1e3"}, {"--cluster-id", "a b"},        {"--broker-host", "-oProxyCommand=x"},
      {"--backup-host", "x;y"},  {"--bin-dir", dir_.path()},
  };
  for (const auto& args : bad) {
    std::vector<std::string> argv = {"config", "init", "--out", never};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult rr = Cli(argv);
    EXPECT_EQ(rr.exit_code, 2) << args[0] << " " << args[1] << "\n" << rr.Describe();
    EXPECT_FALSE(fs::exists(never)) << args[0] << " " << args[1] << " wrote something";
  }
  RunResult no_out = Cli({"config", "init"});
  EXPECT_EQ(no_out.exit_code, 2) << no_out.Describe();
}

}  // namespace
}  // namespace ledgerkeep::test
