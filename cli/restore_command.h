// `ledgerkeep restore`: a replica snapshot onto a clone node (--to-node, the
// clone's agent fetches, verifies and serves it) or into a directory on this
// machine (--to-dir, fetched straight from where the broker recorded the
// source's snapshots, so the source node may be down), or a client archive
// onto its client node (--client).
#pragma once

#include "cli/command_group.h"

namespace ledgerkeep {

void RegisterRestoreCommand(CLI::App& app, const GlobalFlags& g, CommandTable& commands);

}  // namespace ledgerkeep
