// The backup group of the `ledgerkeep` CLI: `backup schedule|unschedule|
// run-now|configure|status|list|verify|client`. The agents do the work; the
// CLI checks the destination flags first (a usage error sends nothing) and
// shows per-node results.
#pragma once

#include <nlohmann/json.hpp>

#include "backup/backup_types.h"
#include "cli/command_group.h"

namespace ledgerkeep {

void RegisterBackupCommands(CLI::App& app, const GlobalFlags& g, CommandTable& commands);

// One snapshot's verification as JSON (backup verify, restore).
nlohmann::json VerificationJson(const SnapshotVerification& v);

}  // namespace ledgerkeep
