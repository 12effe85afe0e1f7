#include "cli/health_state.h"

#include <cstdio>

namespace ledgerkeep {

ReplicaHealthState ClassifyReplicaHealth(const wire::NodeHealthT& h) {
  ReplicaHealthState s;
  s.healthy = h.running && h.blocks_per_sec > 0 && !h.slow_path_fault;
  if (!h.running) {
    s.id = "not_running";
    s.text = "ledgerd not running";
  } else if (h.slow_path_fault) {
    s.id = "slow_path_fault";
    s.text = "slow path forced (fault flag)";
  } else if (h.catching_up) {
    char line[160];
    std::snprintf(line, sizeof line, "catching up: %llu blocks behind, state transfer fetching %.0f blocks/s",
                  static_cast<unsigned long long>(h.lag_blocks), h.catch_up_blocks_per_sec);
    s.id = "catching_up";
    s.text = line;
  } else if (h.blocks_per_sec <= 0) {
    s.id = "not_producing";
    s.text = h.state_transfer_active ? "not producing blocks: state transfer stalled (no progress)"
                                     : "not producing blocks (no progress)";
  } else {
    s.id = "healthy";
    s.text = "healthy";
  }
  return s;
}

}  // namespace ledgerkeep
