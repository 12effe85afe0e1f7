#include "broker/wedge_workflows.h"

#include <chrono>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include "broker/workflow_steps.h"
#include "common/clock.h"

namespace ledgerkeep {
namespace {

constexpr uint64_t kCheckpointWindow = 150;

wire::TargetT Replicas() { return TargetRole(wire::Role::Replica); }

wire::TargetT OneNode(const std::string& node) { return TargetNode(node); }

struct WedgeView {
  bool wedged = false;
  uint64_t stop_point = 0;
  bool running = false;
  std::string error;  // why there is no status
};

// Wedge status of every replica (down ones: not wedged, with the reason).
Result<std::map<std::string, WedgeView>> QueryWedgeStatus(WorkflowContext& ctx, uint32_t timeout_ms) {
  wire::WedgeT w;
  w.action = wire::WedgeAction::Status;
  wire::CommandBodyUnion body;
  body.Set(std::move(w));
  LK_ASSIGN_OR_RETURN(auto st, ctx.RunCommand(Replicas(), std::move(body), timeout_ms));
  std::map<std::string, WedgeView> out;
  for (const auto& t : st.targets) {
    WedgeView v;
    if (ResultOk(*t) && t->result->detail.type == wire::ResultDetail::WedgeStatus) {
      const auto* ws = t->result->detail.AsWedgeStatus();
      v.wedged = ws->wedged;
      v.stop_point = ws->stop_point;
      v.running = ws->running;
      if (!ws->running) v.error = "ledgerd not running";
    } else {
      v.error = ResultText(*t);
    }
    out[t->node_id] = v;
  }
  return out;
}

// Replicas the broker has marked lost, comma-separated. No command reaches
// them: waiting for one only delays the rollback (fault suite: a replica
// partitioned during the wedge held its block-id query up for a minute, past
// --wedge-timeout-s, and the stop point it then picked was already stale).
// A lost clone is none of the wedge's business (issue 13: it held the wedge up).
Result<std::string> LostReplicas(WorkflowContext& ctx) {
  LK_ASSIGN_OR_RETURN(auto replicas, ctx.Members(wire::Role::Replica));
  std::string out;
  for (const auto& n : replicas) {
    if (n.state == wire::NodeState::Lost) out += (out.empty() ? "" : ", ") + n.node_id;
  }
  return out;
}

}  // namespace

Result<uint64_t> ChooseStopPoint(uint64_t highest_block) {
  if (highest_block > std::numeric_limits<uint64_t>::max() - 2 * kCheckpointWindow) {
    return Status::FailedPrecondition("a replica reported block id " + std::to_string(highest_block) +
                                      ": no checkpoint two windows above it fits in 64 bits, so no stop "
                                      "point can be picked (check that replica's DB with ledgerkeep-db)");
  }
  const uint64_t s = highest_block + 2 * kCheckpointWindow;
  return s - (s % kCheckpointWindow);
}

// ---------------------------------------------------------------- wedge

Status WedgeWorkflow::Run(WorkflowContext& ctx, nlohmann::json& report) {
  const auto params = ctx.params();
  auto stop = WedgeReplicas(ctx, report, params.value("timeout_s", int64_t{120}) * 1000,
                            params.value("reissue_s", int64_t{10}) * 1000);
  return stop.ok() ? Status::OK() : stop.status();
}

Result<uint64_t> WedgeReplicas(WorkflowContext& ctx, nlohmann::json& report, int64_t timeout_ms,
                               int64_t reissue_ms) {
  const int64_t deadline = ctx.clock().MonotonicNowMs() + timeout_ms;
  auto& state = ctx.state();
  for (int round = 0;; ++round) {
    LK_ASSIGN_OR_RETURN(const std::string lost, LostReplicas(ctx));
    if (!lost.empty()) {
      return Status::Unavailable("cannot wedge: " + lost + " lost (no heartbeats); the cluster cannot reach one "
                                 "stop point without it");
    }
    uint64_t stop_point = state.value("stop_point", uint64_t{0});
    if (stop_point == 0) {
      ctx.Step("query", "started", "reading every replica's last block id");
      wire::CommandBodyUnion body;
      body.Set(wire::GetBlockIdsT{});
      LK_ASSIGN_OR_RETURN(auto st, ctx.RunCommand(Replicas(), std::move(body), 10'000));
      uint64_t highest = 0;
      std::string unreachable;
      for (const auto& t : st.targets) {
        if (ResultOk(*t) && t->result->detail.type == wire::ResultDetail::BlockIds) {
          highest = std::max(highest, t->result->detail.AsBlockIds()->last);
          report["block_ids"][t->node_id] = t->result->detail.AsBlockIds()->last;
        } else {
          unreachable += (unreachable.empty() ? "" : ", ") + t->node_id + " (" + ResultText(*t) + ")";
        }
      }
      if (highest == 0 && !unreachable.empty()) {
        return Status::Unavailable("no replica reported its block id: " + unreachable);
      }
      LK_ASSIGN_OR_RETURN(stop_point, ChooseStopPoint(highest));
      state["stop_point"] = stop_point;
      LK_RETURN_IF_ERROR(ctx.SaveState());
      ctx.Step("query", "done",
               "highest block " + std::to_string(highest) + "; stop point " + std::to_string(stop_point) +
                   (unreachable.empty() ? "" : "; no answer from " + unreachable));
    }
    report["stop_point"] = stop_point;

    // Send the stop point to every replica, then poll; re-send to those not
    // wedged yet every reissue interval, until all are wedged or time is up.
    std::map<std::string, WedgeView> views;
    std::map<std::string, std::string> refused;
    int64_t next_issue = 0;
    while (true) {
      if (ctx.cancelled()) return Status::Aborted("broker stopping");
      const int64_t now = ctx.clock().MonotonicNowMs();
      if (now >= next_issue) {
        LK_ASSIGN_OR_RETURN(const std::string lost_now, LostReplicas(ctx));
        if (!lost_now.empty()) {
          return Status::Unavailable("not wedged at " + std::to_string(stop_point) + ": " + lost_now +
                                     " lost (no heartbeats)");
        }
        std::vector<std::string> targets;
        if (views.empty()) {
          targets.push_back("");  // all replicas
        } else {
          for (const auto& [node, v] : views)
            if (!(v.wedged && v.stop_point == stop_point)) targets.push_back(node);
        }
        for (const auto& node : targets) {
          if (node.empty()) {  // a new wedge for every replica: it answers for their unwedge now
            for (const auto& e : ctx.NeedsUnwedgeList()) {
              ctx.NoLongerNeedsUnwedge(e.node, "workflow " + std::to_string(ctx.run_id()) +
                                                   " sends it a new stop point (" +
                                                   std::to_string(stop_point) + ")");
            }
          }
          ctx.Step(
              "wedge", "started",
              "stop point " + std::to_string(stop_point) + " to " + (node.empty() ? "all replicas" : node));
          wire::WedgeT w;
          w.action = wire::WedgeAction::Stop;
          w.stop_point = stop_point;
          wire::CommandBodyUnion body;
          body.Set(std::move(w));
          LK_ASSIGN_OR_RETURN(
              auto st, ctx.RunCommand(node.empty() ? Replicas() : OneNode(node), std::move(body), 5'000));
          for (const auto& t : st.targets) {
            if (!ResultOk(*t) && t->result && t->result->message.find("past") != std::string::npos) {
              refused[t->node_id] = t->result->message;
            }
          }
        }
        if (!refused.empty()) {
          bool any_wedged = false;
          for (const auto& [node, v] : views) any_wedged = any_wedged || v.wedged;
          if (!any_wedged && round < 3) {
            // The block ids were stale by the time the stop point arrived
            // (a slow replica held up the query): pick a fresh one.
            ctx.Step("wedge", "info",
                     "stop point " + std::to_string(stop_point) +
                         " already passed by a replica; choosing a new one");
            state["stop_point"] = 0;
            LK_RETURN_IF_ERROR(ctx.SaveState());
            break;
          }
          std::string names;
          for (const auto& [n, why] : refused) names += (names.empty() ? "" : "; ") + n + ": " + why;
          report["refused"] = refused;
          return Status::FailedPrecondition("replicas refused stop point " + std::to_string(stop_point) +
                                            ": " + names);
        }
        next_issue = ctx.clock().MonotonicNowMs() + reissue_ms;
      }
      LK_ASSIGN_OR_RETURN(views, QueryWedgeStatus(ctx, 5'000));
      std::vector<std::string> not_wedged;
      for (const auto& [node, v] : views) {
        report["wedged"][node] = v.wedged && v.stop_point == stop_point;
        if (!(v.wedged && v.stop_point == stop_point)) not_wedged.push_back(node);
      }
      if (not_wedged.empty()) {
        ctx.Step("wait", "done",
                 "all " + std::to_string(views.size()) + " replicas wedged at " + std::to_string(stop_point));
        report["not_wedged"] = nlohmann::json::array();
        return stop_point;
      }
      if (ctx.clock().MonotonicNowMs() >= deadline) {
        std::string names;
        nlohmann::json why = nlohmann::json::object();
        for (const auto& n : not_wedged) {
          names += (names.empty() ? "" : ", ") + n;
          why[n] = views[n].error.empty() ? "not at the stop point yet" : views[n].error;
        }
        report["not_wedged"] = not_wedged;
        report["why"] = why;
        return Status::Timeout("not wedged at " + std::to_string(stop_point) + " after " +
                               std::to_string(timeout_ms / 1000) + " s: " + names +
                               " (run `ledgerkeep wedge stop` again once they are back)");
      }
      ctx.clock().SleepMs(300);
    }
  }
}

// ---------------------------------------------------------------- unwedge

Status UnwedgeWorkflow::Run(WorkflowContext& ctx, nlohmann::json& report) {
  const auto params = ctx.params();
  if (params.contains("node")) {
    if (!params["node"].is_string() || params["node"].get<std::string>().empty()) {
      return Status::InvalidArgument("unwedge: \"node\" must be a node id");
    }
    return UnwedgeOneReplica(ctx, report, params["node"].get<std::string>());
  }
  return UnwedgeReplicas(ctx, report, /*check_first=*/true);
}

Status UnwedgeOneReplica(WorkflowContext& ctx, nlohmann::json& report, const std::string& node) {
  report["node"] = node;
  LK_ASSIGN_OR_RETURN(auto list, ctx.client().ListNodes());
  const wire::NodeInfoT* info = nullptr;
  for (const auto& n : list.nodes)
    if (n->node_id == node) info = n.get();
  if (info == nullptr)
    return Status::NotFound("no node '" + node + "' in the cluster (see `ledgerkeep nodes`)");
  if (info->clone) {
    return Status::FailedPrecondition(
        "refusing to unwedge " + node +
        ": it is a restore clone, not a member of the cluster; clones are never wedged");
  }
  if (info->role != wire::Role::Replica) {
    return Status::FailedPrecondition("refusing to unwedge " + node + ": it is a " + RoleName(info->role) +
                                      " node; only replicas are wedged");
  }
  ctx.Step("check", "started", node + " must be wedged (or on its way to a stop point), the others not all");
  LK_ASSIGN_OR_RETURN(auto views, QueryWedgeStatus(ctx, 10'000));
  auto it = views.find(node);
  if (it == views.end()) return Status::Internal("no wedge status from " + node);
  const WedgeView mine = it->second;
  report["wedged"] = mine.wedged;
  report["stop_point"] = mine.stop_point;
  if (!mine.error.empty()) {
    return Status::FailedPrecondition(
        "cannot unwedge " + node + " now: " + mine.error +
        (mine.running ? "" : " (start it first: ledgerkeep node start --node " + node + ")"));
  }
  if (!mine.wedged && mine.stop_point == 0) {
    return Status::FailedPrecondition(
        "refusing to unwedge " + node +
        ": it is not wedged and has no stop point; there is nothing to release");
  }
  // Releasing one replica of a cluster-wide wedge would break the one stop
  // point the others hold: that is what plain `unwedge` is for.
  bool cluster_wedge = views.size() > 1;
  for (const auto& [other, v] : views) {
    if (other != node && !(v.wedged && v.stop_point == mine.stop_point)) cluster_wedge = false;
  }
  if (cluster_wedge) {
    return Status::FailedPrecondition("refusing to unwedge only " + node + ": every replica is wedged at " +
                                      std::to_string(mine.stop_point) +
                                      " (a cluster wedge, not a stranded replica); resume them all with "
                                      "`ledgerkeep unwedge`");
  }
  ctx.Step("unwedge", "started",
           "releasing " + node + (mine.wedged ? " (wedged at " : " (on its way to stop point ") +
               std::to_string(mine.stop_point) + ")");
  wire::CommandBodyUnion body;
  body.Set(wire::UnwedgeT{});
  auto st = ctx.RunCommand(TargetNode(node), std::move(body), 10'000);
  const std::string run = "workflow " + std::to_string(ctx.run_id());
  if (!st.ok()) {
    if (!ctx.cancelled())
      ctx.NeedsUnwedge(node, "the unwedge of " + run + " got no result: " + st.status().message());
    return st.status().WithContext("unwedge " + node);
  }
  for (const auto& t : st->targets) {
    report["unwedged"][t->node_id] = ResultOk(*t);
    if (!ResultOk(*t)) {
      ctx.NeedsUnwedge(t->node_id, "its unwedge in " + run + " failed: " + ResultText(*t));
      return Status::Aborted("unwedge failed on " + t->node_id + ": " + ResultText(*t) +
                             "; the broker retries it until it succeeds (ledgerkeep events --filter wedge)");
    }
    ctx.NoLongerNeedsUnwedge(t->node_id, "released by " + run + " (`ledgerkeep unwedge --node`)");
  }
  ctx.Step("unwedge", "done", node + " unwedged");
  return Status::OK();
}

Status UnwedgeReplicas(WorkflowContext& ctx, nlohmann::json& report, bool check_first,
                       const std::set<std::string>& skip) {
  auto& state = ctx.state();
  if (check_first && !state.value("unwedging", false)) {
    ctx.Step("check", "started", "every replica must be wedged at the same stop point");
    LK_ASSIGN_OR_RETURN(auto views, QueryWedgeStatus(ctx, 10'000));
    std::set<uint64_t> points;
    std::string problems;
    for (const auto& [node, v] : views) {
      report["wedged"][node] = v.wedged;
      if (!v.wedged) {
        problems += (problems.empty() ? "" : "; ") + node + " is not wedged" +
                    (v.error.empty() ? "" : " (" + v.error + ")");
      } else {
        points.insert(v.stop_point);
      }
    }
    if (!problems.empty()) {
      return Status::FailedPrecondition("refusing to unwedge: " + problems +
                                        ". Unwedge needs every replica wedged at the same point (a replica "
                                        "wedged alone is released with `ledgerkeep unwedge --node ID`)");
    }
    if (points.size() > 1) {
      std::string list;
      for (auto p : points) list += (list.empty() ? "" : ", ") + std::to_string(p);
      return Status::FailedPrecondition(
          "refusing to unwedge: replicas are wedged at different stop points (" + list + ")");
    }
    report["stop_point"] = *points.begin();
    state["unwedging"] = true;
    LK_RETURN_IF_ERROR(ctx.SaveState());
  }
  ctx.Step("unwedge", "started", "resuming block production on every replica");
  const std::string run = "workflow " + std::to_string(ctx.run_id());
  LK_ASSIGN_OR_RETURN(auto replicas, ctx.Members(wire::Role::Replica));
  // Every replica this unwedge does not reach goes on the needs-unwedge list
  // and is retried until it is unwedged (issue 13: a replica whose ledgerd
  // was frozen during the rollback stayed wedged for good).
  std::map<std::string, std::string> missed;  // node -> why
  for (const auto& n : replicas) {
    if (skip.count(n.node_id) != 0) missed[n.node_id] = "lost when " + run + " unwedged the replicas";
  }
  wire::CommandBodyUnion body;
  body.Set(wire::UnwedgeT{});
  std::vector<wire::CommandStatusT> done;
  Status sent;
  if (skip.empty()) {
    auto st = ctx.RunCommand(Replicas(), std::move(body), 10'000);
    if (st.ok()) done.push_back(std::move(*st));
    sent = st.status();
  } else {  // one command per reachable replica (members only: issue 13, a clone got one)
    std::vector<uint64_t> ids;
    for (const auto& n : replicas) {
      if (skip.count(n.node_id) != 0) continue;
      auto id = ctx.IssueCommand(TargetNode(n.node_id), body, 10'000);
      if (!id.ok()) {
        sent = id.status();
        break;
      }
      ids.push_back(*id);
    }
    for (uint64_t id : ids) {
      auto st = ctx.WaitCommand(id, 70'000);
      if (!st.ok()) {
        sent = st.status();
        break;
      }
      done.push_back(std::move(*st));
    }
  }
  std::set<std::string> answered;
  std::string failed;
  for (const auto& st : done) {
    for (const auto& t : st.targets) {
      answered.insert(t->node_id);
      report["unwedged"][t->node_id] = ResultOk(*t);
      if (ResultOk(*t)) {
        ctx.NoLongerNeedsUnwedge(t->node_id, "unwedged by " + run);
      } else {
        failed += (failed.empty() ? "" : "; ") + t->node_id + ": " + ResultText(*t);
        missed[t->node_id] = "its unwedge in " + run + " failed: " + ResultText(*t);
      }
    }
  }
  if (!sent.ok()) {  // the outcome is unknown for the replicas without a result
    for (const auto& n : replicas) {
      if (answered.count(n.node_id) == 0 && missed.count(n.node_id) == 0) {
        missed[n.node_id] = "the unwedge of " + run + " got no result: " + sent.message();
      }
    }
  }
  if (!sent.ok() && ctx.cancelled()) return sent;  // broker stopping: the workflow resumes on restart
  for (const auto& [node, why] : missed) ctx.NeedsUnwedge(node, why);
  if (!missed.empty()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& [node, why] : missed) list.push_back(node);
    report["needs_unwedge"] = list;
  }
  if (!sent.ok()) return sent.WithContext("unwedge");
  if (!failed.empty()) {
    return Status::Aborted("unwedge failed on " + failed +
                           "; the broker retries it until it succeeds (ledgerkeep events --filter wedge)");
  }
  ctx.Step("unwedge", "done", "all replicas unwedged");
  return Status::OK();
}

void RegisterWedgeWorkflows(WorkflowManager& manager) {
  manager.Register("wedge", [](const nlohmann::json&) { return std::make_unique<WedgeWorkflow>(); });
  manager.Register("unwedge", [](const nlohmann::json&) { return std::make_unique<UnwedgeWorkflow>(); });
}

}  // namespace ledgerkeep
