// The ledger group of the `ledgerkeep` CLI: `node start|stop|status` (the
// node components), `blocks` (block ids per replica and whether they agree),
// `health`, `wedge stop|status` and `unwedge` (the broker's wedge workflows).
#pragma once

#include "cli/command_group.h"

namespace ledgerkeep {

void RegisterLedgerCommands(CLI::App& app, const GlobalFlags& g, CommandTable& commands);

}  // namespace ledgerkeep
