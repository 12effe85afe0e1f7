// The cluster-wide wedge and unwedge (DESIGN.md §5, runbook steps 8 and 17).
//
// wedge: reads every replica's last block id, picks ONE stop point for the
// cluster — the next-but-one checkpoint above the highest replica, as
// Concord does: (seq + 300) - ((seq + 300) % 150) — sends it to every
// replica, polls their wedge status, re-sends it to replicas that are not
// wedged yet, and reports which replicas are not wedged when time is up.
// Params: {"timeout_s": 120, "reissue_s": 10}.
// unwedge: refused unless every replica is wedged at the same stop point;
// then unwedges all of them.
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
// others get one command each.
Status UnwedgeReplicas(WorkflowContext& ctx, nlohmann::json& report, bool check_first,
                       const std::set<std::string>& skip = {});

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
