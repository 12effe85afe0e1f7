// The maintenance run's declared step table and its typed resume state
// (broker/maintenance_workflow.h).
#include <gtest/gtest.h>

#include "broker/maintenance_workflow.h"
#include "tests/support/status_macros.h"

namespace ledgerkeep {
namespace {

constexpr MaintenanceMode kOffline = MaintenanceMode::kOffline;
constexpr MaintenanceMode kOnline = MaintenanceMode::kOnline;

std::vector<std::string> Names(MaintenanceMode mode) {
  std::vector<std::string> out;
  for (const auto& s : MaintenanceSteps(mode)) out.emplace_back(s.name);
  return out;
}

TEST(MaintenanceStepsTest, OfflineStepsRunInTheRunbookOrder) {
  EXPECT_EQ(Names(kOffline),
            (std::vector<std::string>{"preflight", "pre_hook", "stop_clients", "wedge", "stop_replicas",
                                      "check_blocks", "client_backup", "final_sync", "start_replicas",
                                      "unwedge", "verify_blocks", "start_clients", "post_hook"}));
}

// Issue 15: the ledger pauses only between wedge and verify_blocks; nothing
// is copied before it runs again, and shipping comes last.
TEST(MaintenanceStepsTest, OnlineStepsCheckpointWhileWedgedAndShipAfterTheClientsRunAgain) {
  EXPECT_EQ(Names(kOnline),
            (std::vector<std::string>{"preflight", "pre_hook", "stop_clients", "wedge", "checkpoint", "unwedge",
                                      "verify_blocks", "client_backup", "start_clients", "post_hook", "ship"}));
}

TEST(MaintenanceStepsTest, NothingIsChangedBeforeTheClientsStopAndEveryLaterFailureRollsBack) {
  for (MaintenanceMode mode : {kOffline, kOnline}) {
    bool touching = false;
    for (const auto& s : MaintenanceSteps(mode)) {
      if (s.name == "stop_clients") touching = true;
      if (s.name == "ship") {
        // The cluster serves again: a shipment that fails ends the run
        // incomplete, it never rolls back.
        EXPECT_EQ(s.on_failure, StepFailure::kIncomplete);
      } else if (touching) {
        EXPECT_EQ(s.on_failure, StepFailure::kRollBack) << s.name;
      } else {
        EXPECT_NE(s.on_failure, StepFailure::kRollBack) << s.name;
      }
    }
    EXPECT_EQ(MaintenanceSteps(mode).front().on_failure, StepFailure::kNothingChanged);
  }
}

TEST(MaintenanceStepsTest, OnlyThePreHookRollsBackWhenAnAbortKilledIt) {
  for (MaintenanceMode mode : {kOffline, kOnline}) {
    for (const auto& s : MaintenanceSteps(mode)) {
      EXPECT_EQ(s.on_failure == StepFailure::kRollBackIfAborted, s.name == "pre_hook") << s.name;
      EXPECT_EQ(s.hook, s.name == "pre_hook" || s.name == "post_hook") << s.name;
      EXPECT_FALSE(s.does.empty()) << s.name;
    }
  }
}

TEST(MaintenanceStepsTest, JsonListsEveryStepWithItsIndexAndFailureRule) {
  EXPECT_EQ(MaintenanceStepsJson(kOnline)["mode"], "online");
  EXPECT_EQ(MaintenanceStepsJson(kOnline)["steps"].back()["on_failure"], "incomplete");
  const auto j = MaintenanceStepsJson(kOffline);
  EXPECT_EQ(j["mode"], "offline");
  ASSERT_TRUE(j.contains("steps"));
  ASSERT_EQ(j["steps"].size(), MaintenanceSteps(kOffline).size());
  for (size_t i = 0; i < j["steps"].size(); ++i) {
    const auto& s = j["steps"][i];
    EXPECT_EQ(s["index"], i);
    EXPECT_EQ(s["name"], std::string(MaintenanceSteps(kOffline)[i].name));
  }
  EXPECT_EQ(j["steps"][0]["on_failure"], "nothing_changed");
  EXPECT_EQ(j["steps"][1]["on_failure"], "roll_back_if_aborted");
  EXPECT_EQ(j["steps"][2]["on_failure"], "roll_back");
  // What the fault suite derives from it: the steps that change the
  // cluster and are not hooks (it kills processes during those).
  std::vector<std::string> kill_steps;
  for (const auto& s : j["steps"]) {
    if (s["on_failure"] == "roll_back" && !s["hook"].get<bool>()) kill_steps.push_back(s["name"]);
  }
  EXPECT_EQ(kill_steps, (std::vector<std::string>{"stop_clients", "wedge", "stop_replicas", "check_blocks",
                                                  "client_backup", "final_sync", "start_replicas", "unwedge",
                                                  "verify_blocks", "start_clients"}));
}

const std::string kDigestA(64, 'a');
const std::string kDigestB(64, 'b');

TEST(CrossCheckCheckpointsTest, AgreeingCheckpointsAtTheStopPointPass) {
  LK_EXPECT_OK(CrossCheckCheckpoints(450, {{"r1", 450, 450, kDigestA}, {"r2", 450, 450, kDigestA},
                                           {"r3", 450, 450, kDigestA}, {"r4", 450, 450, kDigestA}}));
}

TEST(CrossCheckCheckpointsTest, ACheckpointNotAtTheStopPointIsNamed) {
  Status s = CrossCheckCheckpoints(450, {{"r1", 450, 450, kDigestA}, {"r2", 449, 449, kDigestA},
                                         {"r3", 450, 451, kDigestA}});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("r2's checkpoint ends at block 449/449"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("r3's checkpoint ends at block 450/451"), std::string::npos) << s.ToString();
  EXPECT_EQ(s.message().find("r1"), std::string::npos) << s.ToString();
}

TEST(CrossCheckCheckpointsTest, ADifferentDigestAtTheStopPointNamesTheOddReplica) {
  Status s = CrossCheckCheckpoints(450, {{"r1", 450, 450, kDigestA}, {"r2", 450, 450, kDigestA},
                                         {"r3", 450, 450, kDigestB}, {"r4", 450, 450, kDigestA}});
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("r3's block 450 has digest bbbb"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("(3 of 4)"), std::string::npos) << s.ToString();
  EXPECT_EQ(s.message().find("r1's"), std::string::npos) << s.ToString();
}

TEST(CrossCheckCheckpointsTest, NoCheckpointsFail) {
  EXPECT_FALSE(CrossCheckCheckpoints(450, {}).ok());
}

TEST(MaintenanceStateTest, RoundTripsAndLeavesTheWedgeHelpersKeysAlone) {
  nlohmann::json state = {{"stop_point", 450}, {"unwedging", true}};
  MaintenanceState s;
  s.step = 7;
  s.rolling_back = true;
  s.failure = "final_sync failed: disk full";
  s.window_start_ms = 1'700'000'000'123;
  s.window_end_ms = 1'700'000'060'456;
  s.common_block = 450;
  s.archive = "nightly";
  s.client_backup_cmd = 41;
  s.final_sync_cmd = 42;
  s.checkpoints_taken = true;
  s.pause_start_ms = 1'700'000'000'500;
  s.pause_end_ms = 1'700'000'000'900;
  s.ship_start_ms = 1'700'000'001'000;
  s.ship_cmds = {{"r1", 43}};
  s.shipped = {{"r2", "20261207T154828.892Z"}};
  s.WriteTo(state);
  EXPECT_EQ(state["stop_point"], 450);
  EXPECT_EQ(state["unwedging"], true);
  auto back = MaintenanceState::ReadFrom(nlohmann::json::parse(state.dump()));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->step, 7u);
  EXPECT_TRUE(back->rolling_back);
  EXPECT_EQ(back->failure, s.failure);
  EXPECT_EQ(back->window_start_ms, s.window_start_ms);
  EXPECT_EQ(back->window_end_ms, s.window_end_ms);
  EXPECT_EQ(back->common_block, std::optional<uint64_t>(450));
  EXPECT_EQ(back->archive, "nightly");
  EXPECT_EQ(back->client_backup_cmd, 41u);
  EXPECT_EQ(back->final_sync_cmd, 42u);
  EXPECT_TRUE(back->checkpoints_taken);
  EXPECT_EQ(back->pause_start_ms, s.pause_start_ms);
  EXPECT_EQ(back->pause_end_ms, s.pause_end_ms);
  EXPECT_EQ(back->ship_start_ms, s.ship_start_ms);
  EXPECT_EQ(back->ship_cmds, s.ship_cmds);
  EXPECT_EQ(back->shipped, s.shipped);
}

TEST(MaintenanceStateTest, ARecordWithoutTheKeysIsAFreshRun) {
  auto s = MaintenanceState::ReadFrom(nlohmann::json::object());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->step, 0u);
  EXPECT_FALSE(s->rolling_back);
  EXPECT_FALSE(s->common_block.has_value());
  EXPECT_TRUE(s->archive.empty());
  EXPECT_EQ(s->final_sync_cmd, 0u);
}

TEST(MaintenanceStateTest, AKeyOfTheWrongTypeIsCorruptionNamingIt) {
  auto s = MaintenanceState::ReadFrom({{"step", "three"}});
  ASSERT_EQ(s.status().code(), StatusCode::kCorruption);
  EXPECT_NE(s.status().message().find("'step'"), std::string::npos) << s.status().message();
  EXPECT_EQ(MaintenanceState::ReadFrom({{"archive", 5}}).status().code(), StatusCode::kCorruption);
  EXPECT_EQ(MaintenanceState::ReadFrom(nlohmann::json::array()).status().code(), StatusCode::kCorruption);
}

TEST(MaintenanceStateTest, TheDefaultArchiveNameComesFromTheGivenTime) {
  // 2026-05-17T01:59:00Z
  EXPECT_EQ(DefaultArchiveName(7, 1'778'983'140'000), "maintenance-7-20260517T015900Z");
}

}  // namespace
}  // namespace ledgerkeep
