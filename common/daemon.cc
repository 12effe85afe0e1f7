#include "common/daemon.h"

#include <signal.h>

#include <ctime>

namespace ledgerkeep {

Result<ProcessIdentity> LoadProcessIdentity(const std::string& config_path, const std::string& key_path) {
  ProcessIdentity id;
  LK_ASSIGN_OR_RETURN(id.config, LoadClusterConfig(config_path));
  LK_ASSIGN_OR_RETURN(id.key, LoadKeyFile(key_path, /*need_secret=*/true));
  return id;
}

namespace {
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}
}  // namespace

void BlockStopSignals() {
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForStopSignal(const std::function<bool()>& exited) {
  sigset_t set = StopSignals();
  timespec tick{0, 200'000'000};
  while (!exited()) {
    int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) return sig;
  }
  return 0;
}

}  // namespace ledgerkeep
