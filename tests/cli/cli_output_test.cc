// The CLI's shared pieces without a cluster: table-or-JSON output, the human
// sizes and ages, and the command table the dispatcher runs from.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "cli/cli_app.h"
#include "cli/command_group.h"
#include "cli/output.h"

namespace ledgerkeep {
namespace {

std::string Captured(const std::function<void()>& print) {
  testing::internal::CaptureStdout();
  print();
  std::fflush(stdout);
  return testing::internal::GetCapturedStdout();
}

TEST(CliOutputTest, TableAlignsColumnsTwoSpacesApart) {
  Table t({"NODE", "RESULT"});
  t.Add({"r1", "Ok"});
  t.Add({"client1", "Failed"});
  EXPECT_EQ(Captured([&] { t.Print(stdout); }),
            "NODE     RESULT\n"
            "r1       Ok\n"
            "client1  Failed\n");
}

TEST(CliOutputTest, JsonFlagPrintsOneJsonLineInsteadOfTheTable) {
  Table t({"NODE"});
  t.Add({"r1"});
  const nlohmann::json j = {{"r1", true}};
  GlobalFlags g;
  EXPECT_EQ(Captured([&] { PrintTableOrJson(g, t, j); }), "NODE\nr1\n");
  g.json = true;
  EXPECT_EQ(Captured([&] { PrintTableOrJson(g, t, j); }), "{\"r1\":true}\n");
}

TEST(CliOutputTest, HumanSizesAndAges) {
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(1536), "1.5 KiB");
  EXPECT_EQ(HumanBytes(3.0 * 1024 * 1024 * 1024), "3.0 GiB");
  EXPECT_EQ(HumanAge(-1), "-");
  EXPECT_EQ(HumanAge(42'000), "42s");
  EXPECT_EQ(HumanAge(17 * 60'000), "17m");
  EXPECT_EQ(HumanAge(3 * 3'600'000 + 1'800'000), "3.5h");
  EXPECT_EQ(Ago(10'000, 0), "never");
  EXPECT_EQ(Ago(10'000, 8'500), "1.5s ago");
}

TEST(CliExitCodeTest, StatusCodesMapToTheDocumentedExitCodes) {
  EXPECT_EQ(ExitCodeFor(Status::OK()), kExitOk);
  EXPECT_EQ(ExitCodeFor(Status::Unavailable("no broker")), kExitUnreachable);
  EXPECT_EQ(ExitCodeFor(Status::PermissionDenied("key refused")), kExitUnreachable);
  EXPECT_EQ(ExitCodeFor(Status::InvalidArgument("bad flag")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(Status::NotFound("no node")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(Status::Internal("bug")), kExitFailed);
  EXPECT_EQ(ExitCodeFor(Status(StatusCode::kAborted, "r1 failed")), kExitFailed);
}

// Only the command argv named runs; a group command (one with subcommands)
// is never run itself.
TEST(CommandTableTest, RunsOnlyTheParsedCommand) {
  CLI::App app;
  CommandTable commands;
  int ran = 0;
  auto* wedge = app.add_subcommand("wedge");
  auto* stop = wedge->add_subcommand("stop");
  auto* status = wedge->add_subcommand("status");
  auto* nodes = app.add_subcommand("nodes");
  commands.Add(stop, [&] { return ran = 1; });
  commands.Add(status, [&] { return ran = 2; });
  commands.Add(nodes, [&] { return ran = 3; });
  EXPECT_EQ(commands.Parsed(), nullptr);
  app.parse(std::vector<std::string>{"status", "wedge"});  // CLI11 takes argv reversed
  const auto* run = commands.Parsed();
  ASSERT_NE(run, nullptr);
  EXPECT_EQ((*run)(), 2);
  EXPECT_EQ(ran, 2);
}

TEST(CommandTableTest, NothingParsedIsNoCommand) {
  CLI::App app;
  CommandTable commands;
  commands.Add(app.add_subcommand("nodes"), [] { return 0; });
  app.parse(std::vector<std::string>{});
  EXPECT_EQ(commands.Parsed(), nullptr);
}

}  // namespace
}  // namespace ledgerkeep
