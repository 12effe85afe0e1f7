// The cluster-wide wedge and unwedge (DESIGN.md §5, runbook steps 8 and 17).
//
// wedge: reads every replica's last block id, picks ONE stop point for the
// cluster — the next-but-one checkpoint above the highest replica, as
// Concord does: (seq + 300) - ((seq + 300) % 150) — sends it to every
// replica, polls their wedge status, re-sends it to replicas that are not
// wedged yet, and reports which replicas are not wedged when time is up.
// Params: {"timeout_s": 120, "reissue_s": 10}.
// unwedge: refused unless every replica is wedged at the same stop point;
// then unwedges all of them. With params {"node": "r3"}: releases that one
// stranded replica (UnwedgeOneReplica).
// A replica an unwedge does not reach (it fails, the node is lost) goes on
// the broker's needs-unwedge list and is retried until it is unwedged
// (UnwedgeRetrier); a new wedge takes every replica off that list.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "broker/workflow.h"

namespace ledgerkeep {

// The cluster's stop point for a wedge (DESIGN.md §5): the next-but-one
// checkpoint (window 150) above `highest_block`, the highest block any
// replica reported: (seq + 300) - ((seq + 300) % 150). So 0..149 -> 300,
// 150..299 -> 450: always more than one window and at most two above it.
// FailedPrecondition when seq + 300 does not fit in 64 bits (a replica
// reporting a block id that high is corrupt): no stop point is picked
// rather than one that wrapped around below the chain.
Result<uint64_t> ChooseStopPoint(uint64_t highest_block);

// The wedge as a step of a larger workflow: picks (or resumes, from
// ctx.state()["stop_point"]) the stop point and returns it once every
// replica is wedged there; Timeout names the replicas that are not.
Result<uint64_t> WedgeReplicas(WorkflowContext& ctx, nlohmann::json& report, int64_t timeout_ms,
                               int64_t reissue_ms);
// Unwedges every replica. With check_first, refuses unless all are wedged at
// one stop point (a rollback skips the check: it unwedges whatever it can).
// `skip`: replicas not to wait for (lost ones, during a rollback); the
// others get one command each. Replicas skipped or not unwedged are put on
// the needs-unwedge list (report["needs_unwedge"]), the others taken off it.
Status UnwedgeReplicas(WorkflowContext& ctx, nlohmann::json& report, bool check_first,
                       const std::set<std::string>& skip = {});

// Releases one stranded replica (`ledgerkeep unwedge --node NODE`): one
// that is wedged, or has a stop point it is on its way to, while the others
// are not all wedged at that point. Refused (FailedPrecondition, naming why)
// for a clone, a client, a replica that is not wedged or cannot be asked,
// and one replica of a cluster-wide wedge (use UnwedgeReplicas). Takes the
// node off the needs-unwedge list; a failed unwedge puts it on.
Status UnwedgeOneReplica(WorkflowContext& ctx, nlohmann::json& report, const std::string& node);

class WedgeWorkflow final : public Workflow {
 public:
  Status Run(WorkflowContext& ctx, nlohmann::json& report) override;
};

class UnwedgeWorkflow final : public Workflow {
 public:
  Status Run(WorkflowContext& ctx, nlohmann::json& report) override;
};

void RegisterWedgeWorkflows(WorkflowManager& manager);

}  // namespace ledgerkeep
