// The ClientBackup command (agents/client_backup.h) against real files, real
// libarchive, sha256sum, rsync, an sshd and an rsync daemon: what it ships,
// what it refuses, and that it never replaces an archive.
#include "agents/client_backup.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <utility>

#include "backup/client_archive.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/file_util.h"
#include "common/process.h"
#include "tests/common/sshd_fixture.h"
#include "tests/support/client_tree.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"
#include "tests/support/transfer_fakes.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

using test::ClientTree;
using test::Lines;
using test::PseudoRandom;
using test::Quote;
using test::SetMtime;
using test::Sh;
using test::Slurp;
using test::Sorted;
using test::WriteFile;

class ClientBackupTest : public ::testing::Test {
 protected:
  // Runs the handler as the agent would: a decoded Command envelope in a
  // CommandContext, progress and notes collected.
  CommandOutcome Run(ClientBackupHandler& h, wire::ClientBackupT body) {
    wire::CommandT cmd;
    cmd.cmd_id = ++next_cmd_;
    cmd.issued_at_ms = Clock::System()->NowMs();
    cmd.deadline_ms = cmd.issued_at_ms + 60'000;
    cmd.targets = {"client1"};
    cmd.body.Set(std::move(body));
    wire::BodyUnion b;
    b.Set(std::move(cmd));
    EnvelopeHeader header;
    header.sender = "broker";
    header.msg_id = next_cmd_;
    auto env = DecodeEnvelope(BuildEnvelope(header, std::move(b)));
    EXPECT_TRUE(env.ok()) << env.status().ToString();
    CommandContext ctx(
        std::move(env).value(), &cancelled_, Clock::System(),
        [this](wire::ProgressT p) {
          std::lock_guard<std::mutex> lock(mu_);
          progress_.push_back(std::move(p));
        },
        [this](std::string level, std::string text) {
          std::lock_guard<std::mutex> lock(mu_);
          notes_.push_back(level + ": " + text);
        });
    EXPECT_EQ(h.Lane(ctx.command()), "backup");
    return h.Execute(ctx);
  }

  static wire::ClientBackupT Named(const std::string& name) {
    wire::ClientBackupT b;
    b.archive_name = name;
    return b;
  }

  ClientBackupTuning Fast() {
    ClientBackupTuning t;
    t.max_attempts = 1;
    t.backoff_base_ms = 10;
    return t;
  }

  TempDir dir_{"lk-cbak-"};
  std::atomic<bool> cancelled_{false};
  uint64_t next_cmd_ = 0;
  std::mutex mu_;
  std::vector<wire::ProgressT> progress_;
  std::vector<std::string> notes_;
};

TEST_F(ClientBackupTest, ShipsArchiveAndChecksumThatSha256sumAccepts) {
  ClientTree tree(dir_ / "node");
  const std::string dest = dir_ / "backups/{node}";
  ClientBackupHandler h(
      "client1", tree.paths, dir_ / "work",
      [&]() -> Result<BackupTarget> {
        BackupTarget t;
        t.destination = dest;
        return t;
      },
      ProcessRunner::Real(), Fast());

  CommandOutcome out = Run(h, Named("client1-2024-06-01"));
  LK_ASSERT_OK(out.status);
  const auto* r = out.detail.AsClientBackupResult();
  ASSERT_NE(r, nullptr);
  const std::string shipped = dir_ / "backups/client1/client1-2024-06-01.tar.gz";
  EXPECT_EQ(r->archive, shipped);
  EXPECT_EQ(r->bytes, fs::file_size(shipped));
  EXPECT_EQ(r->entries, tree.names.size());
  EXPECT_EQ(r->source_bytes, tree.file_bytes);
  EXPECT_GE(r->duration_ms, 0);
  EXPECT_EQ(Slurp(shipped + ".sha256"), r->sha256 + "  client1-2024-06-01.tar.gz\n");

  ProcessResult check =
      Sh("cd " + Quote(dir_ / "backups/client1") + " && sha256sum -c client1-2024-06-01.tar.gz.sha256");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  ProcessResult list = Sh("tar tzf " + Quote(shipped));
  EXPECT_EQ(Sorted(Lines(list.stdout_tail)), Sorted(tree.names));
  // Only the two files at the destination; nothing left in the work dir.
  std::set<std::string> at_dest;
  for (const auto& e : fs::directory_iterator(dir_ / "backups/client1")) at_dest.insert(e.path().filename());
  EXPECT_EQ(at_dest,
            (std::set<std::string>{"client1-2024-06-01.tar.gz", "client1-2024-06-01.tar.gz.sha256"}));
  EXPECT_TRUE(fs::is_empty(dir_ / "work"));

  std::lock_guard<std::mutex> lock(mu_);
  std::set<std::string> phases;
  for (const auto& p : progress_) phases.insert(p.phase);
  EXPECT_EQ(phases, (std::set<std::string>{"archive", "transfer"}));
}

TEST_F(ClientBackupTest, ShipsOverSshAndRefusesTheSameNameThere) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  LK_ASSERT_OK(sshd.Start());
  ClientTree tree(dir_ / "node");
  ClientBackupTuning tuning = Fast();
  tuning.ssh_options = {"-o", "UserKnownHostsFile=" + sshd.pinned_known_hosts(), "-o", "LogLevel=ERROR"};
  ClientBackupHandler h(
      "client1", tree.paths, dir_ / "work",
      [&]() -> Result<BackupTarget> {
        BackupTarget t;
        t.destination = "root@127.0.0.1:" + (dir_ / "remote/{node}");
        t.ssh_key = sshd.client_key();
        t.ssh_port = static_cast<uint16_t>(sshd.port());
        return t;
      },
      ProcessRunner::Real(), tuning);
  CommandOutcome out = Run(h, Named("over-ssh"));
  ASSERT_TRUE(out.status.ok()) << out.status.ToString() << "\nsshd log:\n" << sshd.log();
  EXPECT_EQ(out.detail.AsClientBackupResult()->archive,
            "root@127.0.0.1:" + (dir_ / "remote/client1/over-ssh.tar.gz"));
  ProcessResult check =
      Sh("cd " + Quote(dir_ / "remote/client1") + " && sha256sum -c over-ssh.tar.gz.sha256");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(Run(h, Named("over-ssh")).status.code(), StatusCode::kAlreadyExists);
}

TEST_F(ClientBackupTest, SecondBackupWithTheSameNameIsRefused) {
  ClientTree tree(dir_ / "node");
  ClientBackupHandler h(
      "client1", tree.paths, dir_ / "work",
      [&]() -> Result<BackupTarget> {
        BackupTarget t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  LK_ASSERT_OK(Run(h, Named("nightly.tar.gz")).status);  // ".tar.gz" is not doubled
  const std::string shipped = dir_ / "backups/nightly.tar.gz";
  const std::string first = Slurp(shipped);
  WriteFile(tree.root + "/config/telegraf/telegraf.conf", "changed\n");

  CommandOutcome again = Run(h, Named("nightly"));
  EXPECT_EQ(again.status.code(), StatusCode::kAlreadyExists) << again.status.ToString();
  EXPECT_NE(again.status.message().find("--name"), std::string::npos) << again.status.ToString();
  EXPECT_EQ(Slurp(shipped), first);
  ProcessResult check = Sh("cd " + Quote(dir_ / "backups") + " && sha256sum -c nightly.tar.gz.sha256");
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST_F(ClientBackupTest, NoDestinationConfiguredSaysHowToConfigureOne) {
  ClientTree tree(dir_ / "node");
  ClientBackupHandler none(
      "client1", tree.paths, dir_ / "work",
      []() -> Result<BackupTarget> { return Status::NotFound("no backup config"); },
      ProcessRunner::Real(), Fast());
  CommandOutcome out = Run(none, Named("x"));
  EXPECT_EQ(out.status.code(), StatusCode::kFailedPrecondition) << out.status.ToString();
  EXPECT_NE(out.status.message().find("ledgerkeep backup configure --node client1 --destination"),
            std::string::npos)
      << out.status.ToString();

  ClientBackupHandler empty(
      "client1", tree.paths, dir_ / "work",
      []() -> Result<BackupTarget> { return BackupTarget{}; }, ProcessRunner::Real(), Fast());
  EXPECT_EQ(Run(empty, Named("x")).status.code(), StatusCode::kFailedPrecondition);

  // The command's own destination needs no configuration.
  wire::ClientBackupT body = Named("x");
  body.target = std::make_unique<wire::BackupTargetT>();
  body.target->destination = dir_ / "elsewhere";
  LK_EXPECT_OK(Run(none, std::move(body)).status);
  EXPECT_TRUE(fs::exists(dir_ / "elsewhere/x.tar.gz.sha256"));
}

TEST_F(ClientBackupTest, NoPathsConfiguredSaysToSetClientPaths) {
  ClientBackupHandler h(
      "client1", {}, dir_ / "work",
      [&]() -> Result<BackupTarget> {
        BackupTarget t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  CommandOutcome out = Run(h, Named("x"));
  EXPECT_EQ(out.status.code(), StatusCode::kFailedPrecondition) << out.status.ToString();
  EXPECT_NE(out.status.message().find("[client] paths"), std::string::npos) << out.status.ToString();

  // Paths given with the command do not make up for them (issue 13: an
  // operator key must not archive what the node config does not name).
  WriteFile(dir_ / "cfg/app.conf", "a=1\n");
  wire::ClientBackupT body = Named("x");
  body.paths = {dir_ / "cfg"};
  CommandOutcome given = Run(h, std::move(body));
  EXPECT_EQ(given.status.code(), StatusCode::kFailedPrecondition) << given.status.ToString();
  EXPECT_FALSE(fs::exists(dir_ / "backups"));
}

// Issue 13: `backup client --path /etc` archived any file of the client
// node (as root) and shipped it wherever --destination said. --path only
// narrows the configured [client] paths.
TEST_F(ClientBackupTest, PathsOutsideTheConfiguredOnesAreRefusedAndInsideOnesNarrowTheArchive) {
  WriteFile(dir_ / "cfg/app.conf", "a=1\n");
  WriteFile(dir_ / "cfg/sub/more.conf", "b=2\n");
  WriteFile(dir_ / "secret/shadow", "root:x\n");
  fs::create_directory_symlink(dir_ / "secret", dir_ / "cfg/innocent-link");
  ClientBackupHandler h(
      "client1", {dir_ / "cfg"}, dir_ / "work",
      [&]() -> Result<BackupTarget> {
        BackupTarget t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  for (const std::string& bad : std::vector<std::string>{dir_ / "secret", "/etc", dir_ / "cfg/../secret",
                                                         dir_ / "cfg/innocent-link", dir_ / "cfgx"}) {
    wire::ClientBackupT body = Named("bad");
    body.paths = {bad};
    CommandOutcome out = Run(h, std::move(body));
    EXPECT_EQ(out.status.code(), StatusCode::kPermissionDenied) << bad << ": " << out.status.ToString();
  }
  EXPECT_FALSE(fs::exists(dir_ / "backups/bad.tar.gz"));
  wire::ClientBackupT narrow = Named("narrow");
  narrow.paths = {dir_ / "cfg/sub"};
  CommandOutcome ok = Run(h, std::move(narrow));
  LK_ASSERT_OK(ok.status);
  EXPECT_EQ(ok.detail.AsClientBackupResult()->entries, 2u);  // sub/ and more.conf
}

TEST_F(ClientBackupTest, BadArchiveNamesAreRefused) {
  ClientBackupHandler h(
      "client1", {dir_.path()}, dir_ / "work",
      [&]() -> Result<BackupTarget> {
        BackupTarget t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  for (const std::string bad : {"../up", "a/b", ".hidden", "", ".tar.gz"}) {
    CommandOutcome out = Run(h, Named(bad));
    EXPECT_EQ(out.status.code(), StatusCode::kInvalidArgument)
        << "'" << bad << "': " << out.status.ToString();
  }
  EXPECT_FALSE(fs::exists(dir_ / "backups"));
}

TEST_F(ClientBackupTest, UnicodeAndOtherUnsafeNamesAreRefusedAndNothingIsWritten) {
  // 'ünï😀' was archived and shipped, then reported "not at the destination"
  // (rsync lists it escaped), and a second run overwrote it.
  ClientBackupHandler h(
      "client1", {dir_.path()}, dir_ / "work",
      [&]() -> Result<BackupTarget> {
        BackupTarget t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  for (const std::string& bad :
       std::vector<std::string>{"ünï😀", "caf\xc3\xa9", "a b", "x;id", "$(id)", "`id`", "tab\tname",
                                "new\nline", "-rf", "..", "a\\b", "q'uote", std::string(201, 'a')}) {
    CommandOutcome out = Run(h, Named(bad));
    EXPECT_EQ(out.status.code(), StatusCode::kInvalidArgument)
        << "'" << bad << "': " << out.status.ToString();
    EXPECT_EQ(out.status.message().find('\n'), std::string::npos) << out.status.message();
  }
  EXPECT_FALSE(fs::exists(dir_ / "backups"));
  for (const std::string& good :
       std::vector<std::string>{"client1-2024-06-01", "A.b_c-9", std::string(200, 'z')}) {
    EXPECT_TRUE(NewClientArchiveFileName(good).ok()) << good;
  }
}

// Another run (another node sharing the destination) that takes the name
// while this one ships: its archive stays byte-identical, this run fails.
// `take_name` runs just before the shipping rsync starts.
class BeforeShipRunner final : public ProcessRunner {
 public:
  explicit BeforeShipRunner(std::function<void()> take_name) : take_name_(std::move(take_name)) {}
  Result<ProcessResult> Run(const std::vector<std::string>& argv, int64_t timeout_ms) override {
    return ProcessRunner::Real()->Run(argv, timeout_ms);
  }
  Result<ProcessResult> RunStreaming(const std::vector<std::string>& argv, const RunOptions& opts) override {
    const bool ships = std::any_of(argv.begin(), argv.end(),
                                   [](const std::string& a) { return a.rfind("--partial-dir=", 0) == 0; });
    if (ships && take_name_) std::exchange(take_name_, nullptr)();
    return ProcessRunner::Real()->RunStreaming(argv, opts);
  }
  Result<ProcessId> Spawn(const std::vector<std::string>& argv, const std::string& log_path) override {
    return ProcessRunner::Real()->Spawn(argv, log_path);
  }
  bool IsAlive(const ProcessId& id) override { return ProcessRunner::Real()->IsAlive(id); }
  Status Signal(const ProcessId& id, int sig) override { return ProcessRunner::Real()->Signal(id, sig); }

 private:
  std::function<void()> take_name_;
};

class ClientBackupRaceTest : public ClientBackupTest {
 protected:
  // Runs a backup named "race" to `target` while "another run" writes
  // race.tar.gz (and, with `sidecar`, its .sha256) into `dir`; expects this
  // run refused and the other archive untouched.
  void ExpectOtherRunKept(BackupTarget target, const std::string& dir, bool sidecar,
                          ClientBackupTuning tuning) {
    ClientTree tree(dir_ / "node");
    const std::string theirs = PseudoRandom(4096, 7);
    BeforeShipRunner runner([&] {
      WriteFile(dir + "/race.tar.gz", theirs);
      if (sidecar) WriteFile(dir + "/race.tar.gz.sha256", "0000  race.tar.gz\n");
    });
    ClientBackupHandler h(
        "client1", tree.paths, dir_ / "work", [&]() -> Result<BackupTarget> { return target; },
        &runner, tuning);
    CommandOutcome out = Run(h, Named("race"));
    EXPECT_EQ(out.status.code(), StatusCode::kAlreadyExists) << out.status.ToString();
    EXPECT_NE(out.status.message().find("--name"), std::string::npos) << out.status.ToString();
    EXPECT_EQ(Slurp(dir + "/race.tar.gz"), theirs);
    if (sidecar) {
      EXPECT_EQ(Slurp(dir + "/race.tar.gz.sha256"), "0000  race.tar.gz\n");
    } else {
      EXPECT_FALSE(fs::exists(dir + "/race.tar.gz.sha256")) << "a .sha256 of ours next to their archive";
    }
  }
};

TEST_F(ClientBackupRaceTest, ArchiveThatAppearsWhileShippingIsNeverReplacedLocally) {
  BackupTarget t;
  t.destination = dir_ / "backups";
  ExpectOtherRunKept(t, dir_ / "backups", /*sidecar=*/false, Fast());
  // Nothing of ours is left in the incoming directory.
  EXPECT_FALSE(fs::exists(dir_ / "backups/.ledgerkeep-incoming/client1/race.tar.gz"));
}

TEST_F(ClientBackupRaceTest, ArchiveThatAppearsWhileShippingIsNeverReplacedOverSsh) {
  if (!testing::SshdServer::Available()) GTEST_SKIP() << "no sshd / ssh-keygen installed";
  testing::SshdServer sshd;
  LK_ASSERT_OK(sshd.Start());
  // The server's host key pinned, as an operator would.
  std::istringstream pub(Slurp(sshd.dir() + "/host_key.pub"));
  std::string type, key;
  pub >> type >> key;
  const std::string known_hosts = dir_ / "known_hosts";
  WriteFile(known_hosts, "[127.0.0.1]:" + std::to_string(sshd.port()) + " " + type + " " + key + "\n");
  ClientBackupTuning tuning = Fast();
  tuning.ssh_options = {
      "-o", "UserKnownHostsFile=" + known_hosts, "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"};
  BackupTarget t;
  t.destination = "root@127.0.0.1:" + (dir_ / "remote");
  t.ssh_key = sshd.client_key();
  t.ssh_port = static_cast<uint16_t>(sshd.port());
  ExpectOtherRunKept(t, dir_ / "remote", /*sidecar=*/false, tuning);
  EXPECT_FALSE(fs::exists(dir_ / "remote/.ledgerkeep-incoming/client1/race.tar.gz"));
}

TEST_F(ClientBackupRaceTest, ArchiveThatAppearsBeforeShippingToAnRsyncDaemonIsNeverReplaced) {
  test::RsyncDaemon daemon;
  LK_ASSERT_OK(daemon.Start(dir_ / "daemon"));
  BackupTarget t;
  t.destination = "rsync://127.0.0.1:" + std::to_string(daemon.port()) + "/backup/c";
  fs::create_directories(daemon.module_dir() + "/c");
  ExpectOtherRunKept(t, daemon.module_dir() + "/c", /*sidecar=*/true, Fast());
}

TEST_F(ClientBackupTest, CheckOnlyReportsATakenNameAndWritesNothing) {
  ClientTree tree(dir_ / "node");
  ClientBackupHandler h(
      "client1", tree.paths, dir_ / "work",
      [&]() -> Result<BackupTarget> {
        BackupTarget t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  wire::ClientBackupT free = Named("free");
  free.check_only = true;
  LK_EXPECT_OK(Run(h, std::move(free)).status);
  EXPECT_FALSE(fs::exists(dir_ / "backups/free.tar.gz"));
  EXPECT_FALSE(fs::exists(dir_ / "backups/free.tar.gz.sha256"));

  WriteFile(dir_ / "backups/taken.tar.gz.sha256", "x\n");
  wire::ClientBackupT taken = Named("taken");
  taken.check_only = true;
  CommandOutcome out = Run(h, std::move(taken));
  EXPECT_EQ(out.status.code(), StatusCode::kAlreadyExists) << out.status.ToString();
  EXPECT_NE(out.status.message().find("taken.tar.gz"), std::string::npos) << out.status.ToString();
  wire::ClientBackupT bad = Named("ünï");
  bad.check_only = true;
  EXPECT_EQ(Run(h, std::move(bad)).status.code(), StatusCode::kInvalidArgument);
}

TEST_F(ClientBackupTest, MissingPathFailsBeforeAnythingIsShipped) {
  ClientBackupHandler h(
      "client1", {dir_ / "config/nope.conf"}, dir_ / "work",
      [&]() -> Result<BackupTarget> {
        BackupTarget t;
        t.destination = dir_ / "backups";
        return t;
      },
      ProcessRunner::Real(), Fast());
  CommandOutcome out = Run(h, Named("x"));
  EXPECT_EQ(out.status.code(), StatusCode::kNotFound) << out.status.ToString();
  EXPECT_NE(out.status.message().find(dir_ / "config/nope.conf"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "backups/x.tar.gz"));
  EXPECT_TRUE(fs::is_empty(dir_ / "work"));
}

}  // namespace
}  // namespace ledgerkeep
