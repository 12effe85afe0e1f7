// What `ledgerkeep health` says about one replica, from its agent's
// NodeHealth: the `state` JSON field and the STATE column.
//
// "catching_up" (behind the cluster, state transfer or production moving)
// is told apart from "not_producing" (no block produced and no progress):
// the first needs time, the second needs an operator. A replica is
// `healthy` (the exit code) only when it produces blocks on the fast path,
// as before: a catching-up replica is reported, not counted healthy.
// Thread-safety: a pure function.
#pragma once

#include <string>

#include "schemas/ledgerkeep_generated.h"

namespace ledgerkeep {

struct ReplicaHealthState {
  std::string id;    // not_running, slow_path_fault, catching_up, not_producing, healthy
  std::string text;  // one line for the table
  bool healthy = false;
};

ReplicaHealthState ClassifyReplicaHealth(const wire::NodeHealthT& h);

}  // namespace ledgerkeep
