// The cluster generator every cluster is made with (`ledgerkeep config
// init`, `./run cluster up`, compose's init service, TestCluster): what it
// writes loads back field by field, existing files are refused, kept or
// replaced as asked, nothing is written for a bad option, and no value it is
// given becomes shell text.
#include "common/config_init.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "common/curve_keys.h"
#include "common/file_util.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"
#include "tests/support/wait.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

int ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

std::string Slurp(const std::string& path) {
  auto r = ReadFileToString(path);
  return r.ok() ? *r : "";
}

class ConfigInitTest : public ::testing::Test {
 protected:
  ConfigInitOptions Options(const std::string& out) {
    ConfigInitOptions o;
    o.out_dir = out;
    o.bin_dir = fs::path(test::BinPath("ledgerd")).parent_path().string();
    return o;
  }
  TempDir root_{"lk-cfginit-"};
};

TEST_F(ConfigInitTest, GeneratesAClusterThatLoadsBackFieldByField) {
  ConfigInitOptions o = Options(root_ / "cluster");
  o.replicas = 2;
  o.clients = 1;
  o.clones = 1;
  o.extra_keys = {{"watcher", wire::Role::Subscriber}, {"ops2", wire::Role::Operator}};
  o.cluster_id = "round-trip";
  o.broker_host = "10.1.2.2";
  o.bind_host = "*";
  o.cmd_port = 9101;
  o.ctl_port = 9102;
  o.events_port = 9107;
  o.heartbeat_ms = 250;
  o.suspect_after = 4;
  o.lost_after = 12;
  o.data_root = root_ / "node data";
  o.blocks_per_sec = 33;
  o.payload_bytes = 4096;
  o.st_blocks_per_sec = 500;
  o.genesis_ms = 1'700'000'000'123;
  o.ledgerd_extra_args = {"--write-buffer-bytes", "262144"};
  o.ledgerd_stop_timeout_s = 20;
  o.client_activity_interval_ms = 200;
  LK_ASSERT_OK_AND_ASSIGN(ConfigInitResult r, InitClusterConfig(o));
  const std::string out = root_ / "cluster";
  EXPECT_EQ(r.out_dir, out);
  EXPECT_FALSE(r.kept);
  ASSERT_FALSE(r.written.empty());
  EXPECT_EQ(r.written.back(), "cluster.toml");  // last: a crash never leaves it without the rest

  // cluster.toml, loaded the way the broker, agents and CLI load it.
  LK_ASSERT_OK_AND_ASSIGN(ClusterConfig c, LoadClusterConfig(out + "/cluster.toml"));
  EXPECT_EQ(c.cluster_id, "round-trip");
  EXPECT_EQ(c.connect_host, "10.1.2.2");
  EXPECT_EQ(c.bind_host, "*");
  EXPECT_EQ(c.cmd_port, 9101);
  EXPECT_EQ(c.ctl_port, 9102);
  EXPECT_EQ(c.events_port, 9107);
  EXPECT_EQ(c.heartbeat_ms, 250);
  EXPECT_EQ(c.suspect_after, 4);
  EXPECT_EQ(c.lost_after, 12);
  EXPECT_EQ(c.operator_key_file, out + "/keys/operator.key");
  EXPECT_TRUE(c.hooks.empty());
  LK_ASSERT_OK_AND_ASSIGN(CurveKeyPair broker, LoadKeyFile(out + "/keys/broker.key", true));
  EXPECT_EQ(c.broker_public_key, broker.public_z85);
  EXPECT_EQ(c.FindNode("broker"), nullptr) << "the broker is not a client of itself";
  const std::vector<std::pair<std::string, wire::Role>> want_allow = {
      {"operator", wire::Role::Operator}, {"r1", wire::Role::Replica},     {"r2", wire::Role::Replica},
      {"c1", wire::Role::Client},         {"clone1", wire::Role::Replica}, {"watcher", wire::Role::Subscriber},
      {"ops2", wire::Role::Operator}};
  ASSERT_EQ(c.allow.size(), want_allow.size());
  for (size_t i = 0; i < want_allow.size(); ++i) {
    const auto& [name, role] = want_allow[i];
    EXPECT_EQ(c.allow[i].node_id, name);
    EXPECT_EQ(c.allow[i].role, role) << name;
    LK_ASSERT_OK_AND_ASSIGN(CurveKeyPair pub, LoadKeyFile(out + "/keys/" + name + ".pub", false));
    EXPECT_EQ(c.allow[i].public_z85, pub.public_z85) << name;
    EXPECT_EQ(ModeOf(out + "/keys/" + name + ".key"), 0600) << name;
    EXPECT_EQ(ModeOf(out + "/keys/" + name + ".pub"), 0644) << name;
  }
  EXPECT_EQ(ModeOf(out + "/keys/broker.key"), 0600);
  EXPECT_EQ(ModeOf(out + "/keys"), 0700);
  EXPECT_EQ(ModeOf(out + "/cluster.toml"), 0644);
  EXPECT_EQ(r.cluster.allow.size(), c.allow.size());

  EXPECT_EQ(Slurp(out + "/members"), "broker\nr1\nr2\nc1\nclone1\n");
  EXPECT_EQ(r.members, (std::vector<std::string>{"broker", "r1", "r2", "c1", "clone1"}));
  EXPECT_FALSE(fs::exists(out + "/backup.env"));
  EXPECT_FALSE(fs::exists(out + "/keys/known_hosts"));
  EXPECT_FALSE(fs::exists(o.data_root)) << "node directories are made where the nodes run";

  // Node configs, loaded the way the agent loads them.
  const std::string bin = o.bin_dir;
  const std::string data = root_ / "node data";
  ASSERT_EQ(r.node_configs.size(), 4u);
  for (const std::string node : {"r1", "r2"}) {
    LK_ASSERT_OK_AND_ASSIGN(NodeConfig n, LoadNodeConfig(out + "/nodes/" + node + ".toml"));
    const std::string dir = data + "/" + node;
    EXPECT_EQ(n.ledger_db, dir + "/db");
    EXPECT_EQ(n.ledger_control, dir + "/ledgerd.sock");
    ASSERT_EQ(n.components.size(), 1u);
    EXPECT_EQ(n.components[0].name, "ledgerd");
    EXPECT_EQ(n.components[0].exec,
              (std::vector<std::string>{bin + "/ledgerd", "--db", dir + "/db", "--control", dir + "/ledgerd.sock",
                                        "--genesis-time-ms", "1700000000123", "--blocks-per-sec", "33",
                                        "--payload-bytes", "4096", "--st-blocks-per-sec", "500",
                                        "--write-buffer-bytes", "262144"}));
    EXPECT_EQ(n.components[0].stop_timeout_ms, 20'000);
    EXPECT_TRUE(n.backup_ssh_options.empty());
    EXPECT_TRUE(n.client_paths.empty());
    EXPECT_EQ(r.node_configs.at(node).components[0].exec, n.components[0].exec);
  }
  LK_ASSERT_OK_AND_ASSIGN(NodeConfig c1, LoadNodeConfig(out + "/nodes/c1.toml"));
  EXPECT_TRUE(c1.ledger_db.empty());
  ASSERT_EQ(c1.components.size(), 1u);
  EXPECT_EQ(c1.components[0].name, "ledger-api");
  ASSERT_EQ(c1.components[0].exec.size(), 5u);
  EXPECT_EQ(c1.components[0].exec[0], "/bin/sh");
  EXPECT_NE(c1.components[0].exec[2].find("sleep 0.2"), std::string::npos) << c1.components[0].exec[2];
  EXPECT_EQ(c1.components[0].exec[4], data + "/c1/client/db");
  EXPECT_EQ(c1.components[0].stop_timeout_ms, 10'000);
  EXPECT_EQ(c1.client_paths, (std::vector<std::string>{data + "/c1/client/config", data + "/c1/client/db"}));
  LK_ASSERT_OK_AND_ASSIGN(NodeConfig clone, LoadNodeConfig(out + "/nodes/clone1.toml"));
  EXPECT_EQ(clone.ledger_db, data + "/clone1/db");
  ASSERT_EQ(clone.components.size(), 1u);
  EXPECT_EQ(clone.components[0].exec,
            (std::vector<std::string>{bin + "/ledgerd", "--read-only", "--db", data + "/clone1/db", "--control",
                                      data + "/clone1/ledgerd.sock"}));
}

TEST_F(ConfigInitTest, RefusesAnExistingConfigKeepsItOrReplacesItAsAsked) {
  const std::string out = root_ / "c";
  ConfigInitOptions o = Options(out);
  o.replicas = 1;
  o.clients = 0;
  LK_ASSERT_OK(InitClusterConfig(o));
  const std::string toml = Slurp(out + "/cluster.toml");
  const std::string key = Slurp(out + "/keys/r1.key");

  auto refused = InitClusterConfig(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(refused.status().message().find("--keep-existing"), std::string::npos) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("--force"), std::string::npos) << refused.status().ToString();
  EXPECT_EQ(Slurp(out + "/cluster.toml"), toml);
  EXPECT_EQ(Slurp(out + "/keys/r1.key"), key);

  o.existing = ConfigInitOptions::Existing::kKeep;
  o.replicas = 3;  // ignored: the existing cluster is kept as it is
  LK_ASSERT_OK_AND_ASSIGN(ConfigInitResult kept, InitClusterConfig(o));
  EXPECT_TRUE(kept.kept);
  EXPECT_TRUE(kept.written.empty());
  EXPECT_EQ(kept.members, (std::vector<std::string>{"broker", "r1"}));
  EXPECT_NE(kept.cluster.FindNode("r1"), nullptr);
  EXPECT_EQ(Slurp(out + "/cluster.toml"), toml);
  EXPECT_EQ(Slurp(out + "/keys/r1.key"), key);
  EXPECT_FALSE(fs::exists(out + "/nodes/r3.toml"));

  o.existing = ConfigInitOptions::Existing::kReplace;
  LK_ASSERT_OK_AND_ASSIGN(ConfigInitResult replaced, InitClusterConfig(o));
  EXPECT_FALSE(replaced.kept);
  EXPECT_NE(Slurp(out + "/keys/r1.key"), key) << "every key is new";
  EXPECT_TRUE(fs::exists(out + "/nodes/r3.toml"));
  EXPECT_EQ(ModeOf(out + "/keys/r1.key"), 0600);
  LK_ASSERT_OK_AND_ASSIGN(CurveKeyPair r1, LoadKeyFile(out + "/keys/r1.key", true));
  EXPECT_EQ(replaced.cluster.FindNode("r1")->public_z85, r1.public_z85);

  // A kept config that does not load is an error, not a silent success.
  std::ofstream(out + "/cluster.toml") << "cluster_id = 5\n";
  o.existing = ConfigInitOptions::Existing::kKeep;
  auto broken = InitClusterConfig(o);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), StatusCode::kInvalidArgument) << broken.status().ToString();
}

TEST_F(ConfigInitTest, WritesIntoADirectoryWithOtherFilesOnlyWhenForced) {
  const std::string out = root_ / "busy";
  fs::create_directories(out);
  std::ofstream(out + "/notes.txt") << "someone's\n";
  ConfigInitOptions o = Options(out);
  auto refused = InitClusterConfig(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(refused.status().message().find("notes.txt"), std::string::npos) << refused.status().ToString();
  EXPECT_FALSE(fs::exists(out + "/keys"));
  EXPECT_FALSE(fs::exists(out + "/cluster.toml"));
  // --keep-existing keeps a config; it is no licence to write among other files.
  o.existing = ConfigInitOptions::Existing::kKeep;
  EXPECT_EQ(InitClusterConfig(o).status().code(), StatusCode::kAlreadyExists);
  o.existing = ConfigInitOptions::Existing::kReplace;
  LK_ASSERT_OK(InitClusterConfig(o));
  EXPECT_TRUE(fs::exists(out + "/cluster.toml"));
  EXPECT_EQ(Slurp(out + "/notes.txt"), "someone's\n");

  // An interrupted run (its files and marker, no cluster.toml) is simply run again.
  const std::string again = root_ / "interrupted";
  LK_ASSERT_OK(InitClusterConfig(Options(again)));
  EXPECT_FALSE(fs::exists(again + "/.config-init-incomplete")) << "a complete run leaves no marker";
  fs::remove(again + "/cluster.toml");
  std::ofstream(again + "/.config-init-incomplete") << "ledgerkeep config init is writing this directory\n";
  std::ofstream(again + "/members.tmp") << "half";
  LK_ASSERT_OK_AND_ASSIGN(ConfigInitResult r, InitClusterConfig(Options(again)));
  EXPECT_TRUE(fs::exists(again + "/cluster.toml"));
  EXPECT_FALSE(fs::exists(again + "/.config-init-incomplete"));
  // A file where the directory should be.
  std::ofstream(root_ / "file") << "x";
  EXPECT_EQ(InitClusterConfig(Options(root_ / "file")).status().code(), StatusCode::kInvalidArgument);
}

// An operator's own keys (`ledgerkeep keygen --out OUT/keys`) in an OUT with
// no cluster config and no interrupted run: never overwritten unless forced.
TEST_F(ConfigInitTest, NeverOverwritesAnOperatorsKeysUnlessForced) {
  const std::string out = root_ / "operator-keys";
  LK_ASSERT_OK_AND_ASSIGN(CurveKeyPair own, GenerateCurveKeyPair("operator"));
  LK_ASSERT_OK(WriteKeyFiles(out + "/keys", own, /*overwrite=*/false));
  const std::string secret = Slurp(out + "/keys/operator.key");
  fs::create_directories(out + "/nodes");  // empty directories are no one's files

  for (auto existing : {ConfigInitOptions::Existing::kRefuse, ConfigInitOptions::Existing::kKeep}) {
    ConfigInitOptions o = Options(out);
    o.existing = existing;
    auto refused = InitClusterConfig(o);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), StatusCode::kAlreadyExists);
    EXPECT_NE(refused.status().message().find("'keys'"), std::string::npos) << refused.status().ToString();
    EXPECT_NE(refused.status().message().find("--force"), std::string::npos) << refused.status().ToString();
    EXPECT_EQ(Slurp(out + "/keys/operator.key"), secret);
    EXPECT_FALSE(fs::exists(out + "/cluster.toml"));
    EXPECT_FALSE(fs::exists(out + "/keys/broker.key"));
  }

  // Empty keys/ and nodes/ directories alone are no reason to refuse.
  const std::string empty_dirs = root_ / "empty-dirs";
  fs::create_directories(empty_dirs + "/keys");
  fs::create_directories(empty_dirs + "/nodes");
  LK_ASSERT_OK(InitClusterConfig(Options(empty_dirs)));

  ConfigInitOptions o = Options(out);
  o.existing = ConfigInitOptions::Existing::kReplace;
  LK_ASSERT_OK(InitClusterConfig(o));
  EXPECT_NE(Slurp(out + "/keys/operator.key"), secret) << "--force replaces it, as it says";
}

TEST_F(ConfigInitTest, RefusesBadOptionsBeforeWritingAnything) {
  const std::string out = root_ / "never";
  struct Case {
    std::string what;
    std::function<void(ConfigInitOptions&)> set;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"cluster id with a blank", [](auto& o) { o.cluster_id = "a b"; }, "--cluster-id"},
      {"cluster id with ;", [](auto& o) { o.cluster_id = "x;touch /tmp/x"; }, "--cluster-id"},
      {"empty cluster id", [](auto& o) { o.cluster_id = ""; }, "--cluster-id"},
      {"broker host as an option", [](auto& o) { o.broker_host = "-oProxyCommand=x"; }, "--broker-host"},
      {"broker host with ;", [](auto& o) { o.broker_host = "h;id"; }, "--broker-host"},
      {"bind host with a newline", [](auto& o) { o.bind_host = "h\nx"; }, "--bind-host"},
      {"backup host with a blank", [](auto& o) { o.backup_host = "back up"; }, "--backup-host"},
      {"backup host as a login", [](auto& o) { o.backup_host = "root@backup"; }, "--backup-host"},
      {"replicas out of range", [](auto& o) { o.replicas = 1000; }, "--replicas"},
      {"negative clients", [](auto& o) { o.clients = -1; }, "--clients"},
      {"port 0", [](auto& o) { o.cmd_port = 0; }, "port"},
      {"out with a newline", [&](auto& o) { o.out_dir = out + "\nx"; }, "--out"},
      {"out an ssh option would split", [&](auto& o) {
         o.out_dir = out + " dir";
         o.backup_host = "backup";
       }, "UserKnownHostsFile"},
      {"no ledgerd in bin dir", [&](auto& o) { o.bin_dir = root_.path(); }, "holds no ledgerd"},
      {"extra key named like a node", [](auto& o) { o.extra_keys = {{"r1", wire::Role::Operator}}; }, "r1"},
      {"extra key with a slash", [](auto& o) { o.extra_keys = {{"../x", wire::Role::Operator}}; }, "extra key"},
  };
  for (const auto& c : cases) {
    ConfigInitOptions o = Options(out);
    c.set(o);
    auto r = InitClusterConfig(o);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.what << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find(c.want), std::string::npos) << c.what << ": " << r.status().ToString();
    EXPECT_FALSE(fs::exists(out)) << c.what << ": wrote something";
    EXPECT_FALSE(fs::exists(out + " dir")) << c.what << ": wrote something";
  }
}

TEST_F(ConfigInitTest, BackupHostGetsSshKeysAPinnedKnownHostsAndAnEnvFileShReadsBack) {
  if (::access("/usr/bin/ssh-keygen", X_OK) != 0) GTEST_SKIP() << "ssh-keygen (openssh-client) is not installed";
  const std::string out = root_ / "with-backup";
  ConfigInitOptions o = Options(out);
  o.replicas = 1;
  o.clients = 1;
  o.clones = 1;
  o.cluster_id = "bk";
  o.backup_host = "backup.example";
  o.backup_dir = root_ / "it's backups";  // quoted in backup.env
  LK_ASSERT_OK_AND_ASSIGN(ConfigInitResult r, InitClusterConfig(o));
  for (const char* f : {"backup_id", "backup_host_key"}) {
    EXPECT_EQ(ModeOf(out + "/keys/" + f), 0600) << f;
    EXPECT_EQ(ModeOf(out + "/keys/" + f + ".pub"), 0644) << f;
    auto check = ProcessRunner::Real()->Run({"ssh-keygen", "-l", "-f", out + "/keys/" + f}, 30'000);
    ASSERT_TRUE(check.ok());
    EXPECT_EQ(check->exit_code, 0) << f << ": " << check->output;
    EXPECT_NE(check->output.find(std::string(f == std::string("backup_id") ? "ledgerkeep-agents@bk"
                                                                           : "ledgerkeep-backup@bk")),
              std::string::npos)
        << check->output;
  }
  EXPECT_EQ(Slurp(out + "/keys/authorized_keys"), Slurp(out + "/keys/backup_id.pub"));
  const std::string host_pub = Slurp(out + "/keys/backup_host_key.pub");
  const std::string type_and_key = host_pub.substr(0, host_pub.find(' ', host_pub.find(' ') + 1));
  EXPECT_EQ(Slurp(out + "/keys/known_hosts"), "backup.example " + type_and_key + "\n");
  // Every agent checks the server's key against that file, none trusts on first use.
  for (const auto& [node, config] : r.node_configs) {
    EXPECT_EQ(config.backup_ssh_options,
              (std::vector<std::string>{"-o", "UserKnownHostsFile=" + out + "/keys/known_hosts"}))
        << node;
  }
  // backup.env as the netns cluster test reads it: `. backup.env`.
  auto sh = ProcessRunner::Real()->Run(
      {"sh", "-c", ". \"$1\" && printf '%s\\n' \"$BACKUP_HOST\" \"$BACKUP_DIR\" \"$BACKUP_DESTINATION\" "
                   "\"$BACKUP_SSH_KEY\"",
       "sh", out + "/backup.env"},
      30'000);
  ASSERT_TRUE(sh.ok());
  EXPECT_EQ(sh->exit_code, 0) << sh->output;
  EXPECT_EQ(sh->stdout_tail, "backup.example\n" + o.backup_dir + "\nroot@backup.example:" + o.backup_dir +
                                 "/{node}\n" + out + "/keys/backup_id\n");
  // Generated again: new SSH keys replace the old ones (ssh-keygen would ask).
  const std::string old_id = Slurp(out + "/keys/backup_id");
  o.existing = ConfigInitOptions::Existing::kReplace;
  LK_ASSERT_OK(InitClusterConfig(o));
  EXPECT_NE(Slurp(out + "/keys/backup_id"), old_id);
}

TEST_F(ConfigInitTest, ExtraTomlIsAppendedAndWhatDoesNotLoadIsNotLeftBehind) {
  const std::string out = root_ / "extra";
  ConfigInitOptions o = Options(out);
  o.replicas = 1;
  o.clients = 0;
  o.cluster_config_extra = "[[hook]]\nname = \"stop-apps\"\nexec = [\"/bin/sh\", \"-c\", \"echo \\\"$1\\\"\", \"x\"]\n";
  o.node_config_extra = "[backup]\ntransfer_streams = 3\n";
  LK_ASSERT_OK_AND_ASSIGN(ConfigInitResult r, InitClusterConfig(o));
  ASSERT_EQ(r.cluster.hooks.size(), 1u);
  EXPECT_EQ(r.cluster.hooks[0].exec, (std::vector<std::string>{"/bin/sh", "-c", "echo \"$1\"", "x"}));
  EXPECT_EQ(r.node_configs.at("r1").backup_transfer_streams, 3);

  const std::string bad = root_ / "bad-hook";
  ConfigInitOptions b = Options(bad);
  b.cluster_config_extra = "[[hook]]\nname = \"x\"\nexec = [\"relative/prog\"]\n";
  auto refused = InitClusterConfig(b);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("does not load"), std::string::npos) << refused.status().ToString();
  EXPECT_FALSE(fs::exists(bad + "/cluster.toml")) << "a cluster.toml that does not load stays behind";
  // Fixed, the same directory is generated into (an interrupted run).
  b.cluster_config_extra.clear();
  LK_EXPECT_OK(InitClusterConfig(b));

  ConfigInitOptions loose = Options(root_ / "loose");
  loose.node_config_extra = "transfer_streams = 3\n";
  EXPECT_EQ(InitClusterConfig(loose).status().code(), StatusCode::kInvalidArgument);
}

// "No user string becomes a command line": the client stand-in gets its
// directory as $1, so a data root full of shell text is just a path.
TEST_F(ConfigInitTest, ClientStandInTakesItsDirectoryAsAnArgument) {
  const std::string canary = root_ / "canary";
  ConfigInitOptions o = Options(root_ / "cfg");
  o.replicas = 0;
  o.clients = 1;
  o.client_activity_interval_ms = 100;
  o.data_root = root_ / ("it's \"$(touch " + canary + ")\" `touch " + canary + "`; touch " + canary);
  LK_ASSERT_OK_AND_ASSIGN(ConfigInitResult r, InitClusterConfig(o));
  const auto& exec = r.node_configs.at("c1").components.at(0).exec;
  const std::string log = o.data_root + "/c1/client/db/activity.log";
  RunOptions run;
  run.timeout_ms = 10'000;
  run.term_grace_ms = 100;
  run.cancelled = [&] { return fs::exists(log); };
  auto result = ProcessRunner::Real()->RunStreaming(exec, run);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_TRUE(fs::exists(log)) << result->output;
  EXPECT_FALSE(fs::exists(canary)) << "a path ran as a command";
}

// What ClusterConfigToml writes is what LoadClusterConfig reads, hooks too.
TEST_F(ConfigInitTest, ClusterConfigTomlRoundTrips) {
  ClusterConfig c;
  c.cluster_id = "rt";
  c.connect_host = "broker";
  c.bind_host = "*";
  c.cmd_port = 1;
  c.ctl_port = 65535;
  c.events_port = 3;
  c.heartbeat_ms = 10;
  c.suspect_after = 1;
  c.lost_after = 2;
  c.operator_key_file = "keys/op \"it's\".key";
  c.broker_public_key = GenerateCurveKeyPair("b")->public_z85;
  c.allow = {{"s1", wire::Role::Subscriber, GenerateCurveKeyPair("s")->public_z85}};
  c.hooks = {{"h.1", {"/bin/x", "a b", "\"q\"\n"}, 86'400}};
  fs::create_directories(root_ / "rt");
  const std::string path = root_ / "rt/cluster.toml";
  LK_ASSERT_OK(WriteFileAtomically(path, ClusterConfigToml(c, "a header")));
  LK_ASSERT_OK_AND_ASSIGN(ClusterConfig back, LoadClusterConfig(path));
  EXPECT_EQ(back.cluster_id, c.cluster_id);
  EXPECT_EQ(back.connect_host, c.connect_host);
  EXPECT_EQ(back.bind_host, c.bind_host);
  EXPECT_EQ(back.cmd_port, 1);
  EXPECT_EQ(back.ctl_port, 65535);
  EXPECT_EQ(back.events_port, 3);
  EXPECT_EQ(back.heartbeat_ms, 10);
  EXPECT_EQ(back.suspect_after, 1);
  EXPECT_EQ(back.lost_after, 2);
  EXPECT_EQ(back.operator_key_file, root_ / "rt/keys/op \"it's\".key");
  EXPECT_EQ(back.broker_public_key, c.broker_public_key);
  ASSERT_EQ(back.allow.size(), 1u);
  EXPECT_EQ(back.allow[0].node_id, "s1");
  EXPECT_EQ(back.allow[0].role, wire::Role::Subscriber);
  EXPECT_EQ(back.allow[0].public_z85, c.allow[0].public_z85);
  ASSERT_EQ(back.hooks.size(), 1u);
  EXPECT_EQ(back.hooks[0].name, "h.1");
  EXPECT_EQ(back.hooks[0].exec, c.hooks[0].exec);
  EXPECT_EQ(back.hooks[0].timeout_s, 86'400);
}

}  // namespace
}  // namespace ledgerkeep
