// The maintenance run's step table as JSON and its typed resume state
// (broker/maintenance_workflow.h); the table itself is declared with the
// run's step functions in maintenance_workflow.cc.
#include <ctime>

#include "broker/maintenance_workflow.h"

namespace ledgerkeep {
namespace {

std::string_view StepFailureName(StepFailure f) {
  switch (f) {
    case StepFailure::kNothingChanged: return "nothing_changed";
    case StepFailure::kRollBackIfAborted: return "roll_back_if_aborted";
    case StepFailure::kRollBack: return "roll_back";
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

nlohmann::json MaintenanceStepsJson() {
  nlohmann::json steps = nlohmann::json::array();
  size_t index = 0;
  for (const auto& s : MaintenanceSteps()) {
    steps.push_back({{"index", index++},
                     {"name", s.name},
                     {"on_failure", StepFailureName(s.on_failure)},
                     {"hook", s.hook},
                     {"does", s.does}});
  }
  return {{"steps", steps}};
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
  return s;
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
