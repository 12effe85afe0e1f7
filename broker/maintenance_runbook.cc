// The runbook's steps and what they stand on (broker/maintenance_run.h):
// the steps both modes share (hooks, stopping and starting the
// components, wedge and unwedge), the nodes and their components, the
// preflight, the offline block checks, the client archives and the
// offline final sync.
#include <map>
#include <set>

#include "backup/backup_destination.h"
#include "broker/maintenance_run.h"
#include "broker/wedge_workflows.h"
#include "broker/workflow_steps.h"
#include "common/config.h"
#include "common/process.h"

namespace ledgerkeep::maintenance_internal {

// A hook killed by an abort or a broker shutdown gets SIGKILL this long after SIGTERM.
constexpr int64_t kHookGraceMs = 2'000;

// -------------------------------------------------------------- steps
Status MaintenanceRun::PreHook() { return Hook("pre_hook"); }
Status MaintenanceRun::PostHook() { return Hook("post_hook"); }

Status MaintenanceRun::StopClients() {
  if (state_.window_start_ms == 0) {
    state_.window_start_ms = ctx_.clock().NowMs();
    LK_RETURN_IF_ERROR(SaveState());
  }
  return Components(wire::Role::Client, wire::NodeAction::Stop);
}

Status MaintenanceRun::Wedge() {
  auto stop =
      WedgeReplicas(ctx_, report_["wedge"], params_.value("wedge_timeout_s", int64_t{120}) * 1000, 10'000);
  if (!stop.ok()) return stop.status();
  report_["stop_point"] = *stop;
  return Status::OK();
}

Status MaintenanceRun::StopReplicas() { return Components(wire::Role::Replica, wire::NodeAction::Stop); }

// The client archives and the replicas' final sync are independent: the
// client backups are issued first (client_backup) and waited for after
// the final sync, so they overlap (the window is the slower of the two,
// not the sum).
Status MaintenanceRun::FinalSyncAndClientBackups() {
  Status replicas = FinalSync();
  Status clients = WaitClientBackups();
  if (!replicas.ok()) return replicas;
  return clients;
}

Status MaintenanceRun::StartReplicas() { return Components(wire::Role::Replica, wire::NodeAction::Start); }

Status MaintenanceRun::Unwedge() { return UnwedgeReplicas(ctx_, report_["unwedge"], /*check_first=*/true); }

Status MaintenanceRun::StartClients() {
  Status s = Components(wire::Role::Client, wire::NodeAction::Start);
  if (s.ok()) {
    state_.window_end_ms = ctx_.clock().NowMs();
    LK_RETURN_IF_ERROR(SaveState());
  }
  return s;
}

// -------------------------------------------------------------- nodes
Result<std::vector<std::string>> MaintenanceRun::NodesWithRole(wire::Role role) {
  LK_ASSIGN_OR_RETURN(auto members, ctx_.Members(role));  // clones are not in the window
  std::vector<std::string> out;
  for (const auto& n : members) out.push_back(n.node_id);
  return out;
}

// Runs a command on every node of `role`; an error names each failure.
Result<wire::CommandStatusT> MaintenanceRun::OnAll(wire::Role role, wire::CommandBodyUnion body, uint32_t timeout_ms) {
  LK_ASSIGN_OR_RETURN(auto nodes, NodesWithRole(role));
  if (nodes.empty()) return wire::CommandStatusT{};
  LK_ASSIGN_OR_RETURN(auto st, ctx_.RunCommand(TargetRole(role), std::move(body), timeout_ms));
  std::string failed;
  for (const auto& t : st.targets) {
    if (!ResultOk(*t)) failed += (failed.empty() ? "" : "; ") + t->node_id + ": " + ResultText(*t);
  }
  if (!failed.empty()) return Status::Aborted(failed);
  return st;
}

// Starts or stops the components of every node of `role` except `skip`
// (nodes the rollback cannot reach), verified.
Status MaintenanceRun::Components(wire::Role role, wire::NodeAction action, const std::set<std::string>& skip) {
  wire::NodeManagementT m;
  m.action = action;
  wire::CommandBodyUnion body;
  body.Set(std::move(m));
  const uint32_t timeout = static_cast<uint32_t>(params_.value("stop_timeout_s", int64_t{120}) * 1000);
  std::vector<wire::CommandStatusT> done;
  if (skip.empty()) {
    LK_ASSIGN_OR_RETURN(auto st, OnAll(role, std::move(body), timeout));
    done.push_back(std::move(st));
  } else {
    LK_ASSIGN_OR_RETURN(auto nodes, NodesWithRole(role));
    std::vector<uint64_t> ids;
    for (const auto& n : nodes) {
      if (skip.count(n) != 0) continue;
      LK_ASSIGN_OR_RETURN(uint64_t id, ctx_.IssueCommand(TargetNode(n), body, timeout));
      ids.push_back(id);
    }
    std::string failed;
    for (uint64_t id : ids) {
      LK_ASSIGN_OR_RETURN(auto st, ctx_.WaitCommand(id, timeout + 60'000));
      for (const auto& t : st.targets) {
        if (!ResultOk(*t)) failed += (failed.empty() ? "" : "; ") + t->node_id + ": " + ResultText(*t);
      }
      done.push_back(std::move(st));
    }
    if (!failed.empty()) return Status::Aborted(failed);
  }
  // Verify: every component in the wanted state.
  const bool want_running = action == wire::NodeAction::Start;
  for (const auto& st : done) {
  for (const auto& t : st.targets) {
    if (t->result->detail.type != wire::ResultDetail::NodeStatus) continue;
    for (const auto& c : t->result->detail.AsNodeStatus()->components) {
      if (c->running != want_running) {
        return Status::Aborted(t->node_id + ": component " + c->name + " is still " +
                               (c->running ? "running" : "stopped"));
      }
    }
  }
  }
  return Status::OK();
}

// Members the broker has marked lost (cut off, or down).
std::set<std::string> MaintenanceRun::LostNodes() {
  std::set<std::string> out;
  auto members = ctx_.Members(wire::Role::Unknown);
  if (!members.ok()) return out;
  for (const auto& n : *members)
    if (n.state == wire::NodeState::Lost) out.insert(n.node_id);
  return out;
}

// -------------------------------------------------------------- preflight
Status MaintenanceRun::Preflight() {
  // Named hooks exist before anything is changed.
  for (const char* which : {"pre_hook", "post_hook"}) LK_RETURN_IF_ERROR(NamedHook(which).status());
  std::string problems;
  auto add = [&](const std::string& p) { problems += (problems.empty() ? "" : "; ") + p; };
  LK_ASSIGN_OR_RETURN(auto members, ctx_.Members(wire::Role::Unknown));
  for (const auto& n : members) {
    if (n.state != wire::NodeState::Alive) add(n.node_id + " is " + NodeStateName(n.state));
  }
  if (!problems.empty()) return Status::FailedPrecondition("not every node is alive: " + problems);

  // Destinations: every node has one, and no two share one.
  wire::CommandBodyUnion status_body;
  status_body.Set(wire::GetBackupStatusT{});
  wire::TargetT all;
  all.all = true;
  LK_ASSIGN_OR_RETURN(auto st, ctx_.RunCommand(all, std::move(status_body), 15'000));
  std::map<std::string, std::string> owner;
  for (const auto& t : st.targets) {
    if (!ResultOk(*t) || t->result->detail.type != wire::ResultDetail::BackupStatus) {
      add(t->node_id + ": no backup status (" + ResultText(*t) + ")");
      continue;
    }
    const auto* b = t->result->detail.AsBackupStatus();
    if (b->destination.empty() || b->mode == "checkpoint" || b->mode == "none") {
      add(t->node_id + " has no backup destination (ledgerkeep backup configure --node " + t->node_id +
          " --destination ...)");
      continue;
    }
    auto d = ParseDestination(b->destination, "", "", 0);
    std::string key = d.ok() ? d->Normalized() : b->destination;
    if (auto it = owner.find(key); it != owner.end()) {
      add(t->node_id + " and " + it->second + " share the destination " + b->destination);
    }
    owner[key] = t->node_id;
    report_["destinations"][t->node_id] = b->destination;
  }
  if (!problems.empty()) return Status::FailedPrecondition(problems);
  LK_RETURN_IF_ERROR(CheckClientArchiveName());
  if (online_) LK_RETURN_IF_ERROR(CheckCheckpointSpace());

  // Replicas healthy: producing blocks, fast path only (no slow path
  // between two samples, no forced slow path).
  auto sample = [&]() -> Result<std::map<std::string, wire::NodeHealthT>> {
    wire::CommandBodyUnion body;
    body.Set(wire::GetHealthT{});
    LK_ASSIGN_OR_RETURN(auto hs, OnAll(wire::Role::Replica, std::move(body), 10'000));
    std::map<std::string, wire::NodeHealthT> out;
    for (const auto& t : hs.targets)
      if (t->result->detail.type == wire::ResultDetail::NodeHealth) out[t->node_id] = *t->result->detail.AsNodeHealth();
    return out;
  };
  LK_ASSIGN_OR_RETURN(auto first, sample());
  ctx_.clock().SleepMs(1000);
  LK_ASSIGN_OR_RETURN(auto second, sample());
  bool catching_up = false;
  for (const auto& [node, h] : second) {
    const auto& before = first[node];
    catching_up = catching_up || (h.running && h.catching_up);
    if (!h.running) add(node + ": ledgerd is not running");
    else if (h.catching_up) add(node + ": catching up, " + std::to_string(h.lag_blocks) + " blocks behind");
    else if (h.blocks_per_sec <= 0) add(node + ": not producing blocks (no progress)");
    else if (h.slow_path_fault || h.slow_paths > before.slow_paths) add(node + ": on the slow path");
    else if (h.state_transfer_active) add(node + ": in state transfer");
    report_["health"][node] = {{"blocks_per_sec", h.blocks_per_sec}, {"slow_paths", h.slow_paths}};
  }
  if (catching_up) {
    add("run again once they have caught up (`ledgerkeep health` shows the gap); if it never closes, the "
        "cluster's --blocks-per-sec is above what the host or state transfer sustains");
  }
  if (!problems.empty()) {
    for (const auto& e : ctx_.NeedsUnwedgeList()) {
      add(e.node + " still needs an unwedge (" + e.reason +
          "; the broker retries it, `ledgerkeep unwedge --node " + e.node + "` releases it now)");
    }
    return Status::FailedPrecondition("replicas not healthy: " + problems);
  }
  return Status::OK();
}

// The hook an operator named for `which` ("pre_hook" / "post_hook"):
// null when none was named; InvalidArgument for a name the broker's
// config does not define (issue 13: the command comes from the broker
// host's config, never from the request).
Result<const HookSpec*> MaintenanceRun::NamedHook(const std::string& which) const {
  const auto it = params_.find(which);
  if (it == params_.end() || !it->is_string() || it->get<std::string>().empty()) {
    return static_cast<const HookSpec*>(nullptr);
  }
  const std::string name = it->get<std::string>();
  LK_RETURN_IF_ERROR(ValidateHookName(name));
  const HookSpec* h = ctx_.config().FindHook(name);
  if (h != nullptr) return h;
  std::string known;
  for (const auto& x : ctx_.config().hooks) known += (known.empty() ? "" : ", ") + x.name;
  return Status::InvalidArgument("no hook '" + name + "' in the broker's cluster config (" +
                                 (known.empty() ? std::string("it defines none") : "it defines " + known) +
                                 "); a hook is a [[hook]] entry with a name and an exec list");
}

// Runs the named hook's argv (no shell) in a process group of its own
// (RunStreaming). A broker shutdown, and for the pre hook an abort, kill
// the whole group at once (SIGTERM, SIGKILL kHookGraceMs later): an abort
// during a 40 s pre hook took effect only after 40 s (issue 13).
// The post hook also runs during a rollback, which an abort asked for: an
// abort never stops it.
Status MaintenanceRun::Hook(const std::string& which) {
  LK_ASSIGN_OR_RETURN(const HookSpec* hook, NamedHook(which));
  if (hook == nullptr) return Status::OK();
  std::string cmd;
  for (const auto& a : hook->exec) cmd += (cmd.empty() ? "" : " ") + a;
  const bool abortable = which == "pre_hook";
  RunOptions o;
  o.timeout_ms = static_cast<int64_t>(hook->timeout_s) * 1000;
  o.term_grace_ms = kHookGraceMs;
  o.cancelled = [&] { return ctx_.cancelled() || (abortable && ctx_.abort_requested()); };
  auto r = ProcessRunner::Real()->RunStreaming(hook->exec, o);
  if (!r.ok()) return r.status().WithContext(which + " '" + hook->name + "'");
  report_["hooks"][which] = {{"name", hook->name},
                             {"command", hook->exec},
                             {"exit_code", r->exit_code},
                             {"output", r->output.substr(0, 2000)}};
  if (r->cancelled) {
    report_["hooks"][which]["killed"] = true;
    return Status::Aborted(which + " '" + hook->name + "' (" + cmd + ") killed (its process group): " +
                           (ctx_.cancelled() ? "broker stopping" : "aborted by the operator"));
  }
  if (r->exit_code != 0 || r->timed_out) {
    return Status::Aborted(which + " '" + hook->name + "' (" + cmd + ") failed (exit " +
                           std::to_string(r->exit_code) + (r->timed_out ? ", timed out" : "") +
                           "): " + r->output.substr(0, 500));
  }
  return Status::OK();
}

// -------------------------------------------------------------- blocks
Status MaintenanceRun::CheckBlocks() {
  wire::CommandBodyUnion body;
  body.Set(wire::GetBlockIdsT{});
  LK_ASSIGN_OR_RETURN(auto st, OnAll(wire::Role::Replica, std::move(body), 30'000));
  std::set<std::pair<uint64_t, uint64_t>> distinct;
  std::string listing;
  for (const auto& t : st.targets) {
    const auto* b = t->result->detail.AsBlockIds();
    if (b == nullptr) return Status::Internal(t->node_id + " answered without block ids");
    distinct.insert({b->last_reachable, b->last});
    listing += (listing.empty() ? "" : ", ") + t->node_id + " " + std::to_string(b->last_reachable) + "/" +
               std::to_string(b->last);
    report_["block_ids"][t->node_id] = {{"last_reachable", b->last_reachable}, {"last", b->last},
                                        {"running", b->running}};
    if (b->running) return Status::FailedPrecondition(t->node_id + "'s ledgerd is still running");
  }
  if (distinct.size() != 1 || distinct.begin()->first != distinct.begin()->second) {
    return Status::FailedPrecondition("replicas did not stop at the same block with no gap (last reachable/last: " +
                                      listing + "); restarting them now");
  }
  state_.common_block = distinct.begin()->first;
  report_["common_block"] = distinct.begin()->first;
  return SaveState();
}

Status MaintenanceRun::VerifyBlocksAdvance() {
  const uint64_t common = state_.common_block.value_or(0);
  const int64_t deadline = ctx_.clock().MonotonicNowMs() + 60'000;
  std::string lagging;
  while (ctx_.clock().MonotonicNowMs() < deadline) {
    wire::CommandBodyUnion body;
    body.Set(wire::GetBlockIdsT{});
    LK_ASSIGN_OR_RETURN(auto st, OnAll(wire::Role::Replica, std::move(body), 10'000));
    lagging.clear();
    for (const auto& t : st.targets) {
      const auto* b = t->result->detail.AsBlockIds();
      if (b == nullptr || b->last_reachable <= common) lagging += (lagging.empty() ? "" : ", ") + t->node_id;
    }
    if (lagging.empty()) {
      if (online_ && state_.pause_end_ms == 0) {
        state_.pause_end_ms = ctx_.clock().NowMs();
        return SaveState();
      }
      return Status::OK();
    }
    ctx_.clock().SleepMs(20);
  }
  return Status::Timeout("blocks do not advance on " + lagging + " after unwedge");
}

// -------------------------------------------------------------- backups
// The client archives' name: --archive, else maintenance-<run>-<time>;
// chosen once and persisted.
Result<std::string> MaintenanceRun::ArchiveName() {
  if (state_.archive.empty()) {
    state_.archive = params_.value("archive", "");
    if (state_.archive.empty()) state_.archive = DefaultArchiveName(ctx_.run_id(), ctx_.clock().NowMs());
    LK_RETURN_IF_ERROR(SaveState());
  }
  return state_.archive;
}

// Preflight: every client can write the archive under its name (valid,
// not taken at its destination), so a taken name fails before anything
// is stopped, not in the middle of the window.
Status MaintenanceRun::CheckClientArchiveName() {
  LK_ASSIGN_OR_RETURN(auto clients, NodesWithRole(wire::Role::Client));
  if (clients.empty()) return Status::OK();
  LK_ASSIGN_OR_RETURN(std::string name, ArchiveName());
  wire::ClientBackupT cb;
  cb.archive_name = name;
  cb.check_only = true;
  wire::CommandBodyUnion body;
  body.Set(std::move(cb));
  auto st = OnAll(wire::Role::Client, std::move(body), 60'000);
  if (!st.ok()) return Status::FailedPrecondition("client archive " + name + ": " + st.status().message());
  return Status::OK();
}

Status MaintenanceRun::IssueClientBackups() {
  LK_ASSIGN_OR_RETURN(auto clients, NodesWithRole(wire::Role::Client));
  if (clients.empty() || state_.client_backup_cmd != 0) return Status::OK();
  LK_ASSIGN_OR_RETURN(std::string name, ArchiveName());
  wire::ClientBackupT cb;
  cb.archive_name = name;
  wire::CommandBodyUnion body;
  body.Set(std::move(cb));
  LK_ASSIGN_OR_RETURN(uint64_t id, ctx_.IssueCommand(TargetRole(wire::Role::Client), std::move(body), 60'000,
                                                     "client_backup"));
  state_.client_backup_cmd = id;
  return SaveState();
}

Status MaintenanceRun::WaitClientBackups() {
  const uint64_t id = state_.client_backup_cmd;
  if (id == 0) return Status::OK();
  const int64_t timeout = params_.value("backup_timeout_s", int64_t{3600}) * 1000;
  LK_ASSIGN_OR_RETURN(auto st, ctx_.WaitCommand(id, timeout));
  std::string failed;
  for (const auto& t : st.targets) {
    if (!ResultOk(*t)) {
      failed += (failed.empty() ? "" : "; ") + t->node_id + ": " + ResultText(*t);
      continue;
    }
    if (const auto* r = t->result->detail.AsClientBackupResult()) {
      report_["clients"][t->node_id] = {{"archive", r->archive}, {"sha256", r->sha256}, {"bytes", r->bytes}};
    }
  }
  if (!failed.empty()) return Status::Aborted("client backup failed on " + failed);
  return Status::OK();
}

Status MaintenanceRun::FinalSync() {
  const uint32_t timeout = static_cast<uint32_t>(params_.value("backup_timeout_s", int64_t{3600}) * 1000);
  uint64_t id = state_.final_sync_cmd;
  if (id == 0) {  // issue once; after a broker restart, wait for the same one
    wire::RunBackupNowT r;
    r.reason = "maintenance";
    wire::CommandBodyUnion body;
    body.Set(std::move(r));
    LK_ASSIGN_OR_RETURN(id, ctx_.IssueCommand(TargetRole(wire::Role::Replica), std::move(body), 60'000,
                                              "final_sync"));
    state_.final_sync_cmd = id;
    LK_RETURN_IF_ERROR(SaveState());
  }
  LK_ASSIGN_OR_RETURN(auto st, ctx_.WaitCommand(id, timeout));
  const uint64_t common = state_.common_block.value_or(0);
  std::string failed;
  for (const auto& t : st.targets) {
    const auto* b = t->result ? t->result->detail.AsBackupResult() : nullptr;
    if (!ResultOk(*t) || b == nullptr) {
      failed += (failed.empty() ? "" : "; ") + t->node_id + ": " + ResultText(*t);
      continue;
    }
    report_["replicas"][t->node_id] = {{"snapshot_id", b->snapshot_id}, {"bytes_transferred", b->bytes_transferred},
                                       {"bytes_total", b->bytes_total}, {"duration_ms", b->duration_ms},
                                       {"consistent", b->consistent}, {"last_block_id", b->last_block_id},
                                       {"destination", b->destination}};
    if (!b->consistent) failed += (failed.empty() ? "" : "; ") + t->node_id + ": snapshot not consistent";
    if (b->last_block_id != common) {
      failed += (failed.empty() ? "" : "; ") + t->node_id + ": snapshot at block " +
                std::to_string(b->last_block_id) + ", expected " + std::to_string(common);
    }
  }
  if (!failed.empty()) return Status::Aborted("final sync failed on " + failed);
  return Status::OK();
}

}  // namespace ledgerkeep::maintenance_internal
