// ComponentSupervisor: starts, stops and inspects a node's components
// (DESIGN.md §1; the runbook's "node management").
//
// Managed components are daemons the agent spawns; their identity (pid and
// kernel start time) is kept in `<state_dir>/<name>.pid`, so a restarted
// agent still knows them and never starts a second copy. A component that
// was stopped on purpose is marked `<name>.stopped` and is not started again
// by AutoStart() (an agent restart during a maintenance window must not bring
// the ledger back). External components run the configured commands.
// Stop sends SIGTERM (or runs the stop command) and waits up to the
// component's stop timeout for a clean exit; if it is still running it
// reports that as an error and never escalates to SIGKILL of a live DB.
// Thread-safety: not thread-safe; the agent calls it from one lane.
#pragma once

#include <string>
#include <vector>

#include "common/clock.h"
#include "common/node_config.h"
#include "common/process.h"

namespace ledgerkeep {

struct ComponentStatus {
  std::string name;
  bool running = false;
  int64_t pid = 0;
  std::string detail;
};

class ComponentSupervisor {
 public:
  ComponentSupervisor(std::vector<ComponentSpec> specs, std::string state_dir, ProcessRunner* runner);

  std::vector<ComponentStatus> Inspect();
  // What can be known without running anything: managed components from
  // their pid files (written crash-safely by the lane that starts them);
  // external ones say "not inspected" (their status command may be slow).
  // Unlike the rest, safe to call from any thread (the agent's HTTP status).
  std::vector<ComponentStatus> InspectWithoutCommands() const;
  // NotFound naming a name that is no component of this node.
  Status CheckNames(const std::vector<std::string>& names) const { return Select(names).status(); }
  // `names` empty = all. Already running is fine. NotFound for an unknown name.
  Status Start(const std::vector<std::string>& names);
  Status Stop(const std::vector<std::string>& names);
  // Starts every component not marked stopped on purpose.
  Status AutoStart();

  bool empty() const { return specs_.empty(); }

 private:
  Result<std::vector<const ComponentSpec*>> Select(const std::vector<std::string>& names) const;
  ComponentStatus StatusOf(const ComponentSpec& spec);
  ComponentStatus ManagedStatusOf(const ComponentSpec& spec) const;
  Status StartOne(const ComponentSpec& spec);
  Status StopOne(const ComponentSpec& spec);
  ProcessId ReadPid(const std::string& name) const;

  std::vector<ComponentSpec> specs_;
  std::string state_dir_;
  ProcessRunner* runner_;
};

}  // namespace ledgerkeep
