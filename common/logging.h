// Logging set-up: every process logs through spdlog to stderr with the
// process name, so interleaved cluster logs stay readable.
#pragma once

#include <string>

#include "common/status.h"

namespace ledgerkeep {

// level: trace|debug|info|warn|error. Call once at process start.
Status InitLogging(const std::string& process_name, const std::string& level);

}  // namespace ledgerkeep
