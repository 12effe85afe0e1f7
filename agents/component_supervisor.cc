#include "agents/component_supervisor.h"

#include <signal.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "common/file_util.h"

namespace ledgerkeep {
namespace {

std::string Join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// The status command says "running" with exit 0, unless it printed
// false/stopped/exited (docker inspect prints true/false).
bool StatusOutputSaysRunning(const ProcessResult& r) {
  if (r.exit_code != 0) return false;
  std::string out = r.output;
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out.find("false") == std::string::npos && out.find("stopped") == std::string::npos &&
         out.find("exited") == std::string::npos && out.find("inactive") == std::string::npos;
}

}  // namespace

ComponentSupervisor::ComponentSupervisor(std::vector<ComponentSpec> specs, std::string state_dir,
                                         ProcessRunner* runner)
    : specs_(std::move(specs)), state_dir_(std::move(state_dir)), runner_(runner) {}

Result<std::vector<const ComponentSpec*>> ComponentSupervisor::Select(
    const std::vector<std::string>& names) const {
  std::vector<const ComponentSpec*> out;
  if (names.empty()) {
    for (const auto& s : specs_) out.push_back(&s);
    return out;
  }
  for (const auto& n : names) {
    const ComponentSpec* found = nullptr;
    for (const auto& s : specs_)
      if (s.name == n) found = &s;
    if (found == nullptr) {
      std::string known;
      for (const auto& s : specs_) known += (known.empty() ? "" : ", ") + s.name;
      return Status::NotFound("no component '" + n + "' on this node (configured: " +
                              (known.empty() ? "none" : known) + ")");
    }
    out.push_back(found);
  }
  return out;
}

ProcessId ComponentSupervisor::ReadPid(const std::string& name) const {
  auto content = ReadFileToString(state_dir_ + "/" + name + ".pid");
  ProcessId id;
  if (!content.ok()) return id;
  std::istringstream in(*content);
  in >> id.pid >> id.start_ticks;
  return id;
}

ComponentStatus ComponentSupervisor::ManagedStatusOf(const ComponentSpec& spec) const {
  ComponentStatus st;
  st.name = spec.name;
  ProcessId id = ReadPid(spec.name);
  st.running = runner_->IsAlive(id);
  st.pid = st.running ? id.pid : 0;
  st.detail = st.running ? "pid " + std::to_string(id.pid) : "not running";
  return st;
}

ComponentStatus ComponentSupervisor::StatusOf(const ComponentSpec& spec) {
  if (spec.managed()) return ManagedStatusOf(spec);
  ComponentStatus st;
  st.name = spec.name;
  auto r = runner_->Run(spec.status, 30'000);
  if (!r.ok()) {
    st.detail = "status command failed: " + r.status().message();
    return st;
  }
  st.running = StatusOutputSaysRunning(*r);
  st.detail = st.running ? "running" : "not running";
  return st;
}

std::vector<ComponentStatus> ComponentSupervisor::Inspect() {
  std::vector<ComponentStatus> out;
  for (const auto& s : specs_) out.push_back(StatusOf(s));
  return out;
}

std::vector<ComponentStatus> ComponentSupervisor::InspectWithoutCommands() const {
  std::vector<ComponentStatus> out;
  for (const auto& s : specs_) {
    if (s.managed()) {
      out.push_back(ManagedStatusOf(s));
    } else {
      ComponentStatus st;
      st.name = s.name;
      st.detail = "external: not inspected here (ledgerkeep node status runs its status command)";
      out.push_back(st);
    }
  }
  return out;
}

Status ComponentSupervisor::StartOne(const ComponentSpec& spec) {
  std::error_code ec;
  std::filesystem::remove(state_dir_ + "/" + spec.name + ".stopped", ec);
  if (StatusOf(spec).running) return Status::OK();
  if (spec.managed()) {
    LK_RETURN_IF_ERROR(CreateDirectories(state_dir_, 0700));
    auto id = runner_->Spawn(spec.exec, state_dir_ + "/" + spec.name + ".log");
    if (!id.ok()) return id.status().WithContext("start " + spec.name);
    LK_RETURN_IF_ERROR(WriteFileAtomically(state_dir_ + "/" + spec.name + ".pid",
                                           std::to_string(id->pid) + " " +
                                               std::to_string(id->start_ticks) + "\n"));
    // A component that dies at once (bad flags, locked DB) is a failed start.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!runner_->IsAlive(*id)) {
      return Status::Aborted(spec.name + " exited right after starting; see " + state_dir_ + "/" +
                             spec.name + ".log");
    }
    spdlog::info("started {} (pid {})", spec.name, id->pid);
    return Status::OK();
  }
  auto r = runner_->Run(spec.start, spec.stop_timeout_ms);
  if (!r.ok()) return r.status().WithContext("start " + spec.name);
  if (r->exit_code != 0) {
    return Status::Aborted("start command of " + spec.name + " (" + Join(spec.start) +
                           ") failed with exit code " + std::to_string(r->exit_code) + ": " + r->output);
  }
  spdlog::info("started {} ({})", spec.name, Join(spec.start));
  return Status::OK();
}

Status ComponentSupervisor::StopOne(const ComponentSpec& spec) {
  LK_RETURN_IF_ERROR(CreateDirectories(state_dir_, 0700));
  LK_RETURN_IF_ERROR(WriteFileAtomically(state_dir_ + "/" + spec.name + ".stopped", "stopped on request\n"));
  const int64_t deadline = MonotonicMs() + spec.stop_timeout_ms;
  if (spec.managed()) {
    ProcessId id = ReadPid(spec.name);
    if (!runner_->IsAlive(id)) return Status::OK();
    LK_RETURN_IF_ERROR(runner_->Signal(id, SIGTERM));
    spdlog::info("stopping {} (pid {}): SIGTERM, waiting up to {} s", spec.name, id.pid,
                 spec.stop_timeout_ms / 1000);
    while (runner_->IsAlive(id)) {
      if (MonotonicMs() >= deadline) {
        return Status::Timeout(spec.name + " (pid " + std::to_string(id.pid) + ") did not exit within " +
                               std::to_string(spec.stop_timeout_ms / 1000) +
                               " s of SIGTERM and is still running. ledgerkeep does not SIGKILL a live "
                               "database: find out why it hangs (see its log), then stop it again");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    spdlog::info("{} stopped", spec.name);
    return Status::OK();
  }
  auto r = runner_->Run(spec.stop, spec.stop_timeout_ms);
  if (!r.ok()) return r.status().WithContext("stop " + spec.name);
  if (r->exit_code != 0 || r->timed_out) {
    return Status::Aborted("stop command of " + spec.name + " (" + Join(spec.stop) + ") " +
                           (r->timed_out ? "timed out" : "failed with exit code " + std::to_string(r->exit_code)) +
                           ": " + r->output);
  }
  while (StatusOf(spec).running) {
    if (MonotonicMs() >= deadline) {
      return Status::Timeout(spec.name + " still reports running " +
                             std::to_string(spec.stop_timeout_ms / 1000) + " s after its stop command");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Status::OK();
}

Status ComponentSupervisor::Start(const std::vector<std::string>& names) {
  LK_ASSIGN_OR_RETURN(auto selected, Select(names));
  for (const auto* s : selected) LK_RETURN_IF_ERROR(StartOne(*s));
  return Status::OK();
}

Status ComponentSupervisor::Stop(const std::vector<std::string>& names) {
  LK_ASSIGN_OR_RETURN(auto selected, Select(names));
  // Stop in reverse order of start (dependents first).
  std::string errors;
  for (auto it = selected.rbegin(); it != selected.rend(); ++it) {
    Status s = StopOne(**it);
    if (!s.ok()) errors += (errors.empty() ? "" : "; ") + s.message();
  }
  if (!errors.empty()) return Status::Timeout(errors);
  return Status::OK();
}

Status ComponentSupervisor::AutoStart() {
  for (const auto& s : specs_) {
    if (std::error_code ec; std::filesystem::exists(state_dir_ + "/" + s.name + ".stopped", ec)) {
      spdlog::info("{} was stopped on request; not starting it (use `ledgerkeep node start`)", s.name);
      continue;
    }
    Status st = StartOne(s);
    if (!st.ok()) return st;
  }
  return Status::OK();
}

}  // namespace ledgerkeep
