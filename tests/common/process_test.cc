#include "common/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <string>
#include <vector>

#include "common/clock.h"

namespace ledgerkeep {
namespace {

ProcessRunner* Real() { return ProcessRunner::Real(); }

TEST(ProcessRunnerTest, StreamingSeparatesStdoutAndStderrAndDeliversChunks) {
  std::string out, err;
  RunOptions opts;
  opts.on_stdout = [&](std::string_view c) { out.append(c); };
  opts.on_stderr = [&](std::string_view c) { err.append(c); };
  auto r = Real()->RunStreaming({"/bin/sh", "-c", "echo to-out; echo to-err >&2; exit 3"}, opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->term_signal, 0);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(out, "to-out\n");
  EXPECT_EQ(err, "to-err\n");
  EXPECT_EQ(r->stdout_tail, "to-out\n");
  EXPECT_EQ(r->stderr_tail, "to-err\n");
  EXPECT_NE(r->output.find("to-out"), std::string::npos);
  EXPECT_NE(r->output.find("to-err"), std::string::npos);
}

TEST(ProcessRunnerTest, ChunksArriveWhileTheCommandStillRuns) {
  // The command waits for a file the callback creates after the first
  // chunk: it can only finish if output is streamed, not buffered to exit.
  char tmpl[] = "/tmp/lk-proc-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  const std::string flag = dir + "/go";
  int chunks = 0;
  RunOptions opts;
  opts.timeout_ms = 10'000;
  opts.on_stdout = [&](std::string_view) {
    if (++chunks == 1) std::fclose(std::fopen(flag.c_str(), "w"));
  };
  auto r = Real()->RunStreaming(
      {"/bin/sh", "-c", "echo first; while [ ! -e " + flag + " ]; do sleep 0.01; done; echo second"}, opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->stdout_tail, "first\nsecond\n");
  std::remove(flag.c_str());
  ::rmdir(dir.c_str());
}

TEST(ProcessRunnerTest, KeepsOnlyTheLast64KiBOfEachStream) {
  auto r = Real()->RunStreaming(
      {"/bin/sh", "-c", "head -c 200000 /dev/zero | tr '\\0' a; printf END; head -c 100 /dev/zero >&2"}, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_tail.size(), kProcessOutputTailBytes);
  EXPECT_EQ(r->stdout_tail.substr(r->stdout_tail.size() - 3), "END");
  EXPECT_EQ(r->stderr_tail.size(), 100u);
}

TEST(ProcessRunnerTest, TimeoutTerminatesTheWholeProcessGroup) {
  const int64_t start = MonotonicMs();
  RunOptions opts;
  opts.timeout_ms = 300;
  auto r = Real()->RunStreaming({"/bin/sh", "-c", "sleep 30 & sleep 30; wait"}, opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_EQ(r->term_signal, SIGTERM);
  EXPECT_LT(MonotonicMs() - start, 5000);  // the background sleep did not hold the pipe open
}

TEST(ProcessRunnerTest, ACommandIgnoringSigtermIsKilledAfterTheGrace) {
  RunOptions opts;
  opts.timeout_ms = 200;
  opts.term_grace_ms = 300;
  // The shell prints once the trap is set, so SIGTERM cannot beat it.
  bool ready = false;
  opts.on_stdout = [&](std::string_view) { ready = true; };
  auto r = Real()->RunStreaming({"/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"}, opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(ready);
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->term_signal, SIGKILL);
}

TEST(ProcessRunnerTest, CancellationStopsTheCommand) {
  std::atomic<bool> stop{false};
  int ticks = 0;
  RunOptions opts;
  opts.timeout_ms = 20'000;
  opts.poll_interval_ms = 20;
  opts.cancelled = [&] { return stop.load(); };
  opts.on_tick = [&] {
    if (++ticks == 3) stop = true;
  };
  const int64_t start = MonotonicMs();
  auto r = Real()->RunStreaming({"sleep", "30"}, opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->cancelled);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->term_signal, SIGTERM);
  EXPECT_GE(ticks, 3);
  EXPECT_LT(MonotonicMs() - start, 5000);
}

TEST(ProcessRunnerTest, AMissingBinaryIsAClearError) {
  auto r = Real()->RunStreaming({"/nonexistent/lk-no-such-tool", "x"}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("cannot run '/nonexistent/lk-no-such-tool'"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("No such file or directory"), std::string::npos);
  auto via_path = Real()->Run({"lk-no-such-tool-in-path"}, 1000);
  ASSERT_FALSE(via_path.ok());
  EXPECT_EQ(via_path.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Real()->Run({}, 1000).status().code(), StatusCode::kInvalidArgument);
}

TEST(ProcessRunnerTest, EnvironmentAdditionsReachTheCommand) {
  RunOptions opts;
  opts.env = {{"LK_PROCESS_TEST_VAR", "hello world"}, {"HOME", "/lk-home"}};
  auto r = Real()->RunStreaming({"/bin/sh", "-c", "echo \"$LK_PROCESS_TEST_VAR|$HOME|${PATH:+path}\""}, opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_tail, "hello world|/lk-home|path\n");
}

TEST(ProcessRunnerTest, RunStillCombinesOutputAndReportsExitCode) {
  auto r = Real()->Run({"/bin/sh", "-c", "echo out; echo err >&2; exit 7"}, 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 7);
  EXPECT_NE(r->output.find("out\n"), std::string::npos);
  EXPECT_NE(r->output.find("err\n"), std::string::npos);
}

TEST(ProcessRunnerTest, ADaemonizingChildDoesNotHoldRunOpenAfterTheCommandExits) {
  // A start command that leaves a background process holding stdout: Run
  // returns shortly after the command itself exits.
  const int64_t start = MonotonicMs();
  auto r = Real()->Run({"/bin/sh", "-c", "sleep 3 & echo started"}, 10'000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->output, "started\n");
  EXPECT_LT(MonotonicMs() - start, 2500);
}

// A fake that implements only Run() still streams through the default.
class RunOnlyFake final : public ProcessRunner {
 public:
  Result<ProcessResult> Run(const std::vector<std::string>&, int64_t) override {
    ProcessResult r;
    r.exit_code = 0;
    r.output = "fake output";
    return r;
  }
  Result<ProcessId> Spawn(const std::vector<std::string>&, const std::string&) override {
    return Status::Internal("unused");
  }
  bool IsAlive(const ProcessId&) override { return false; }
  Status Signal(const ProcessId&, int) override { return Status::OK(); }
};

TEST(ProcessRunnerTest, FakesImplementingOnlyRunStreamThroughTheDefault) {
  RunOnlyFake fake;
  std::string seen;
  RunOptions opts;
  opts.on_stdout = [&](std::string_view c) { seen.append(c); };
  auto r = fake.RunStreaming({"x"}, opts);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(seen, "fake output");
}

}  // namespace
}  // namespace ledgerkeep
