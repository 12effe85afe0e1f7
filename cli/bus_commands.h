// The bus group of the `ledgerkeep` CLI: `nodes` (the agents the broker
// knows), `ping` (a round trip through every target's dispatch path) and
// `events` (the durable event log, replayed and optionally followed).
#pragma once

#include "cli/command_group.h"

namespace ledgerkeep {

void RegisterBusCommands(CLI::App& app, const GlobalFlags& g, CommandTable& commands);

}  // namespace ledgerkeep
