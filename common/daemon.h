// What every long-running ledgerkeep process does at start and stop: log
// set-up, loading its cluster config and key, and waiting for SIGTERM/SIGINT
// while its worker thread runs.
#pragma once

#include <functional>
#include <string>

#include "common/config.h"
#include "common/curve_keys.h"
#include "common/status.h"

namespace ledgerkeep {

struct ProcessIdentity {
  ClusterConfig config;
  CurveKeyPair key;
};

// Loads the cluster config and this process's secret key file.
Result<ProcessIdentity> LoadProcessIdentity(const std::string& config_path, const std::string& key_path);

// Blocks SIGTERM and SIGINT in the calling thread and every thread it starts
// afterwards, so that only WaitForStopSignal() sees them. Call before
// starting threads.
void BlockStopSignals();

// Waits until SIGTERM/SIGINT arrives (returns the signal) or `exited`
// turns true (returns 0), checking every 200 ms.
int WaitForStopSignal(const std::function<bool()>& exited);

}  // namespace ledgerkeep
