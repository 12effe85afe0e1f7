// The maintenance run's step table as JSON and its typed resume state
// (broker/maintenance_workflow.h); the table itself is in
// maintenance_workflow.cc, beside the run (maintenance_run.h) whose step
// functions it names.
#include <ctime>
#include <map>

#include "broker/maintenance_workflow.h"

namespace ledgerkeep {
namespace {

std::string_view StepFailureName(StepFailure f) {
  switch (f) {
    case StepFailure::kNothingChanged: return "nothing_changed";
    case StepFailure::kRollBackIfAborted: return "roll_back_if_aborted";
    case StepFailure::kRollBack: return "roll_back";
    case StepFailure::kIncomplete: return "incomplete";
  }
  return "roll_back";
}

// A key of the persisted state read as T; Corruption naming it when it has another type.
template <typename T>
Status ReadKey(const nlohmann::json& state, const char* key, T* out) {
  auto it = state.find(key);
  if (it == state.end() || it->is_null()) return Status::OK();
  try {
    *out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return Status::Corruption(std::string("maintenance state: '") + key + "' has the wrong type (" +
                              it->type_name() + ")");
  }
  return Status::OK();
}

}  // namespace

nlohmann::json MaintenanceStepsJson(MaintenanceMode mode) {
  nlohmann::json steps = nlohmann::json::array();
  size_t index = 0;
  for (const auto& s : MaintenanceSteps(mode)) {
    steps.push_back({{"index", index++},
                     {"name", s.name},
                     {"on_failure", StepFailureName(s.on_failure)},
                     {"hook", s.hook},
                     {"does", s.does}});
  }
  return {{"mode", mode == MaintenanceMode::kOnline ? "online" : "offline"}, {"steps", steps}};
}

void MaintenanceState::WriteTo(nlohmann::json& state) const {
  state["step"] = step;
  state["rolling_back"] = rolling_back;
  state["failure"] = failure;
  state["window_start_ms"] = window_start_ms;
  state["window_end_ms"] = window_end_ms;
  if (common_block) {
    state["common_block"] = *common_block;
  } else {
    state.erase("common_block");
  }
  state["archive"] = archive;
  state["client_backup_cmd"] = client_backup_cmd;
  state["final_sync_cmd"] = final_sync_cmd;
  state["checkpoints_taken"] = checkpoints_taken;
  state["pause_start_ms"] = pause_start_ms;
  state["pause_end_ms"] = pause_end_ms;
  state["ship_start_ms"] = ship_start_ms;
  state["ship_end_ms"] = ship_end_ms;
  state["ship_cmds"] = ship_cmds;
  state["shipped"] = shipped;
}

Result<MaintenanceState> MaintenanceState::ReadFrom(const nlohmann::json& state) {
  MaintenanceState s;
  if (!state.is_object()) return Status::Corruption("maintenance state is not a JSON object");
  LK_RETURN_IF_ERROR(ReadKey(state, "step", &s.step));
  LK_RETURN_IF_ERROR(ReadKey(state, "rolling_back", &s.rolling_back));
  LK_RETURN_IF_ERROR(ReadKey(state, "failure", &s.failure));
  LK_RETURN_IF_ERROR(ReadKey(state, "window_start_ms", &s.window_start_ms));
  LK_RETURN_IF_ERROR(ReadKey(state, "window_end_ms", &s.window_end_ms));
  uint64_t common = 0;
  if (state.contains("common_block") && !state["common_block"].is_null()) {
    LK_RETURN_IF_ERROR(ReadKey(state, "common_block", &common));
    s.common_block = common;
  }
  LK_RETURN_IF_ERROR(ReadKey(state, "archive", &s.archive));
  LK_RETURN_IF_ERROR(ReadKey(state, "client_backup_cmd", &s.client_backup_cmd));
  LK_RETURN_IF_ERROR(ReadKey(state, "final_sync_cmd", &s.final_sync_cmd));
  LK_RETURN_IF_ERROR(ReadKey(state, "checkpoints_taken", &s.checkpoints_taken));
  LK_RETURN_IF_ERROR(ReadKey(state, "pause_start_ms", &s.pause_start_ms));
  LK_RETURN_IF_ERROR(ReadKey(state, "pause_end_ms", &s.pause_end_ms));
  LK_RETURN_IF_ERROR(ReadKey(state, "ship_start_ms", &s.ship_start_ms));
  LK_RETURN_IF_ERROR(ReadKey(state, "ship_end_ms", &s.ship_end_ms));
  LK_RETURN_IF_ERROR(ReadKey(state, "ship_cmds", &s.ship_cmds));
  LK_RETURN_IF_ERROR(ReadKey(state, "shipped", &s.shipped));
  return s;
}

Status CrossCheckCheckpoints(uint64_t stop_point, const std::vector<ReplicaCheckpoint>& checkpoints) {
  if (checkpoints.empty()) return Status::FailedPrecondition("no replica took a checkpoint");
  std::string problems;
  auto add = [&](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  std::map<std::string, size_t> votes;
  for (const auto& c : checkpoints) {
    if (c.last_reachable != stop_point || c.last != stop_point) {
      add(c.node + "'s checkpoint ends at block " + std::to_string(c.last_reachable) + "/" + std::to_string(c.last) +
          ", not at the stop point " + std::to_string(stop_point));
    }
    ++votes[c.stop_digest];
  }
  if (votes.size() > 1) {
    std::string common;
    size_t most = 0;
    for (const auto& [digest, n] : votes) {
      if (n > most) most = n, common = digest;
    }
    for (const auto& c : checkpoints) {
      if (c.stop_digest == common) continue;
      add(c.node + "'s block " + std::to_string(stop_point) + " has digest " + c.stop_digest.substr(0, 16) +
          "..., the others' " + common.substr(0, 16) + "... (" + std::to_string(most) + " of " +
          std::to_string(checkpoints.size()) + ")");
    }
  }
  if (problems.empty()) return Status::OK();
  return Status::FailedPrecondition("replicas disagree at the stop point: " + problems);
}

std::string DefaultArchiveName(uint64_t run_id, int64_t now_ms) {
  const time_t secs = static_cast<time_t>(now_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return "maintenance-" + std::to_string(run_id) + "-" + buf;
}

}  // namespace ledgerkeep
