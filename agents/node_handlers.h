// The node-management and ledger commands of the agents (issue 3):
// NodeManagement (start/stop/status of components), GetBlockIds, Wedge,
// Unwedge, GetHealth. Ledger queries go to the local ledgerd's control
// socket; block ids fall back to reading the DB offline when it is stopped.
#pragma once

#include <memory>

#include "agents/command_handler.h"
#include "agents/component_supervisor.h"
#include "common/node_config.h"

namespace ledgerkeep {

struct NodeServices {
  NodeConfig config;
  std::unique_ptr<ComponentSupervisor> supervisor;
};

// Every handler an agent of `role` runs (Ping included). Replica-only
// commands are absent for clients, so the agent refuses them clearly.
HandlerMap BuildHandlers(wire::Role role, std::shared_ptr<NodeServices> services);

}  // namespace ledgerkeep
