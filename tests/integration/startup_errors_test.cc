// What every long-running binary and the CLI do with a bad cluster config or
// a key file others can read: exit code 2 (README: usage / config error) and
// the reason on stderr, naming the key or the file; nothing is started.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <regex>

#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

using namespace std::chrono_literals;

class StartupErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override { LK_ASSERT_OK_AND_ASSIGN(cluster_, TestCluster::Create({})); }

  // Runs the broker, an agent and the CLI with `config` and `key_of(name)`;
  // each must exit 2 and say `want` on stderr.
  void ExpectEveryBinaryExitsTwoSaying(const std::string& config, const std::string& want) {
    const std::string logs = cluster_->dir() + "/logs/";
    struct Run {
      std::string name;
      std::vector<std::string> argv;
    };
    const std::vector<Run> runs = {
        {"broker",
         {BinPath("ledgerkeep-broker"), "--config", config, "--key", cluster_->KeyPath("broker"),
          "--data-dir", cluster_->DataDir("broker")}},
        {"agent",
         {BinPath("ledgerkeep-agent"), "--config", config, "--key", cluster_->KeyPath("r1"), "--role",
          "replica", "--node-id", "r1", "--data-dir", cluster_->DataDir("r1"), "--http-listen", "off"}},
        {"cli", {BinPath("ledgerkeep"), "--config", config, "--key", cluster_->KeyPath("operator"), "nodes"}},
    };
    for (const auto& r : runs) {
      ProcessSpec spec;
      spec.argv = r.argv;
      spec.stdout_path = logs + "startup-" + r.name + ".out";
      spec.stderr_path = logs + "startup-" + r.name + ".err";
      RunResult res = RunToCompletion(spec, 20s);
      EXPECT_EQ(res.exit_code, 2) << r.name << ": " << res.Describe();
      EXPECT_NE(res.err.find(want), std::string::npos)
          << r.name << " does not say '" << want << "': " << res.Describe();
    }
  }

  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(StartupErrorsTest, AWrongTypeInTheClusterConfigIsExitTwoNamingTheKeyInEveryBinary) {
  const std::string good = ReadFile(cluster_->config_path());
  const std::string bad = cluster_->dir() + "/bad-type.toml";
  std::ofstream(bad) << std::regex_replace(good, std::regex("ctl_port = ([0-9]+)"), "ctl_port = \"$1\"");
  ExpectEveryBinaryExitsTwoSaying(bad, "broker.ctl_port must be a whole number from 1 to 65535");
}

TEST_F(StartupErrorsTest, AnUnknownKeyInTheClusterConfigIsExitTwoNamingTheKeyInEveryBinary) {
  const std::string good = ReadFile(cluster_->config_path());
  const std::string bad = cluster_->dir() + "/typo.toml";
  std::ofstream(bad) << std::regex_replace(good, std::regex("heartbeat_ms ="), "heartbeat_msec =");
  ExpectEveryBinaryExitsTwoSaying(bad, "liveness.heartbeat_msec is not a known key");
}

TEST_F(StartupErrorsTest, ASecretKeyFileOthersCanReadIsExitTwoWithTheChmodInEveryBinary) {
  for (const char* name : {"broker", "r1", "operator"}) {
    ASSERT_EQ(::chmod(cluster_->KeyPath(name).c_str(), 0644), 0);
  }
  // One message per binary names its own key; the common part is the fix.
  ExpectEveryBinaryExitsTwoSaying(cluster_->config_path(),
                                  "has mode 0644; it must be readable only by its owner");
}

}  // namespace
}  // namespace ledgerkeep::test
