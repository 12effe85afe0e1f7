// `ledgerkeep maintenance run|abort`: the broker's maintenance workflow (the
// runbook's maintenance backup as one command), its steps and per-node
// transfer progress shown live from the event log, then its report.
#pragma once

#include "cli/command_group.h"

namespace ledgerkeep {

void RegisterMaintenanceCommands(CLI::App& app, const GlobalFlags& g, CommandTable& commands);

}  // namespace ledgerkeep
