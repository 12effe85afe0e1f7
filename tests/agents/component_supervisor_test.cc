#include "agents/component_supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace ledgerkeep {
namespace {

class ComponentSupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-sup-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    // Never leave a daemon behind, whatever the test did.
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      if (e.path().extension() != ".pid") continue;
      std::ifstream in(e.path());
      pid_t pid = 0;
      in >> pid;
      if (pid > 0) ::kill(pid, SIGKILL);
    }
    std::filesystem::remove_all(dir_);
  }
  ComponentSpec Managed(const std::string& name, std::vector<std::string> exec, int64_t stop_ms = 5000) {
    ComponentSpec s;
    s.name = name;
    s.exec = std::move(exec);
    s.stop_timeout_ms = stop_ms;
    return s;
  }
  std::string dir_;
};

TEST_F(ComponentSupervisorTest, StartsADaemonThatOutlivesTheSupervisorAndStopsItCleanly) {
  auto spec = Managed("svc", {"sleep", "1000"});
  int64_t pid = 0;
  {
    ComponentSupervisor sup({spec}, dir_, ProcessRunner::Real());
    ASSERT_TRUE(sup.Start({}).ok());
    auto st = sup.Inspect();
    ASSERT_TRUE(st[0].running);
    pid = st[0].pid;
    ASSERT_TRUE(sup.Start({}).ok());  // idempotent: no second copy
    EXPECT_EQ(sup.Inspect()[0].pid, pid);
  }
  // A new supervisor (an agent restart) finds the same process.
  ComponentSupervisor sup({spec}, dir_, ProcessRunner::Real());
  EXPECT_TRUE(sup.Inspect()[0].running);
  EXPECT_EQ(sup.Inspect()[0].pid, pid);
  ASSERT_TRUE(sup.Stop({}).ok());
  EXPECT_FALSE(sup.Inspect()[0].running);
  // Gone (a zombie at most, when PID 1 of this container does not reap).
  EXPECT_FALSE(ProcessRunner::Real()->IsAlive(ProcessId{static_cast<pid_t>(pid), 0}));
}

TEST_F(ComponentSupervisorTest, StopOfAComponentThatIgnoresSigtermFailsAndLeavesItRunning) {
  auto spec = Managed("stubborn", {"/bin/sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"}, 1000);
  ComponentSupervisor sup({spec}, dir_, ProcessRunner::Real());
  ASSERT_TRUE(sup.Start({}).ok());
  Status s = sup.Stop({});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kTimeout);
  EXPECT_NE(s.message().find("does not SIGKILL"), std::string::npos) << s.message();
  EXPECT_TRUE(sup.Inspect()[0].running);  // never killed behind the operator's back
}

TEST_F(ComponentSupervisorTest, AutoStartSkipsComponentsStoppedOnRequest) {
  ComponentSupervisor sup({Managed("a", {"sleep", "1000"}), Managed("b", {"sleep", "1000"})}, dir_,
                          ProcessRunner::Real());
  ASSERT_TRUE(sup.AutoStart().ok());
  ASSERT_TRUE(sup.Stop({"a"}).ok());
  ComponentSupervisor again({Managed("a", {"sleep", "1000"}), Managed("b", {"sleep", "1000"})}, dir_,
                            ProcessRunner::Real());
  ASSERT_TRUE(again.AutoStart().ok());
  auto st = again.Inspect();
  EXPECT_FALSE(st[0].running);  // 'a' stays stopped until `node start`
  EXPECT_TRUE(st[1].running);
  ASSERT_TRUE(again.Start({"a"}).ok());
  EXPECT_TRUE(again.Inspect()[0].running);
  ASSERT_TRUE(again.Stop({}).ok());
}

TEST_F(ComponentSupervisorTest, AComponentThatDiesAtOnceIsAFailedStart) {
  ComponentSupervisor sup({Managed("broken", {"/bin/sh", "-c", "exit 3"})}, dir_, ProcessRunner::Real());
  Status s = sup.Start({});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("exited right after starting"), std::string::npos);
  Status missing = ComponentSupervisor({Managed("x", {"/nonexistent/binary"})}, dir_, ProcessRunner::Real()).Start({});
  EXPECT_FALSE(missing.ok());
}

TEST_F(ComponentSupervisorTest, ExternalComponentsUseTheConfiguredCommands) {
  const std::string flag = dir_ + "/running";
  ComponentSpec s;
  s.name = "concord";
  s.start = {"/bin/sh", "-c", "touch " + flag};
  s.stop = {"/bin/sh", "-c", "rm -f " + flag};
  s.status = {"/bin/sh", "-c", "test -f " + flag};
  ComponentSupervisor sup({s}, dir_, ProcessRunner::Real());
  EXPECT_FALSE(sup.Inspect()[0].running);
  ASSERT_TRUE(sup.Start({}).ok());
  EXPECT_TRUE(std::filesystem::exists(flag));
  EXPECT_TRUE(sup.Inspect()[0].running);
  ASSERT_TRUE(sup.Stop({}).ok());
  EXPECT_FALSE(sup.Inspect()[0].running);
}

TEST_F(ComponentSupervisorTest, UnknownComponentNameIsNamedInTheError) {
  ComponentSupervisor sup({Managed("ledgerd", {"sleep", "1000"})}, dir_, ProcessRunner::Real());
  Status s = sup.Start({"nginx"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no component 'nginx'"), std::string::npos);
  EXPECT_NE(s.message().find("ledgerd"), std::string::npos);
}

}  // namespace
}  // namespace ledgerkeep
