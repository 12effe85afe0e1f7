// `ledgerkeep keygen`: CURVE key pairs written as NAME.key (secret, 0600) and
// NAME.pub. No broker is involved.
#pragma once

#include "cli/command_group.h"

namespace ledgerkeep {

void RegisterKeygenCommand(CLI::App& app, const GlobalFlags& g, CommandTable& commands);

}  // namespace ledgerkeep
