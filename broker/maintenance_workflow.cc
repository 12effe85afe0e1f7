#include "broker/maintenance_workflow.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "backup/backup_destination.h"
#include "broker/wedge_workflows.h"
#include "broker/workflow_steps.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/process.h"

namespace ledgerkeep {
namespace {

// A hook killed by an abort or a broker shutdown gets SIGKILL this long after SIGTERM.
constexpr int64_t kHookGraceMs = 2'000;

class MaintenanceRun {
 public:
  MaintenanceRun(WorkflowContext& ctx, nlohmann::json& report)
      : ctx_(ctx),
        report_(report),
        params_(ctx.params()),
        online_(params_.value("mode", std::string("online")) != "offline") {}

  // A row of the step table: the declaration and the function that runs it.
  struct StepDef {
    MaintenanceStep step;
    Status (MaintenanceRun::*forward)();
  };
  static const std::vector<StepDef>& Table(MaintenanceMode mode);

  Status Execute() {
    if (const auto m = params_.find("mode");
        m != params_.end() && !(m->is_string() && (*m == "online" || *m == "offline"))) {
      return Status::InvalidArgument("mode must be \"online\" or \"offline\"");
    }
    LK_ASSIGN_OR_RETURN(state_, MaintenanceState::ReadFrom(ctx_.state()));
    report_["mode"] = online_ ? "online" : "offline";
    if (params_.value("dry_run", false)) return DryRun();
    if (state_.rolling_back) return Rollback(state_.failure.empty() ? "resumed rollback" : state_.failure);
    const auto& table = Table(online_ ? MaintenanceMode::kOnline : MaintenanceMode::kOffline);
    // After a broker restart the report starts empty: carry over what the
    // saved state knows from the steps already done.
    if (ctx_.state().contains("stop_point")) report_["stop_point"] = ctx_.state()["stop_point"];
    if (state_.common_block) report_["common_block"] = *state_.common_block;
    if (!state_.archive.empty()) report_["archive"] = state_.archive;
    if (state_.step > 0) report_["resumed_at_step"] = table[std::min(state_.step, table.size() - 1)].step.name;
    for (size_t step = state_.step; step < table.size(); ++step) {
      const MaintenanceStep& def = table[step].step;
      const std::string name(def.name);
      if (ctx_.abort_requested()) {
        if (def.on_failure == StepFailure::kRollBack) return Rollback("aborted by the operator");
        if (def.on_failure == StepFailure::kIncomplete) return Incomplete("aborted by the operator");
        // Not even the pre hook runs after an abort.
        report_["failed_step"] = name;
        return Status::Aborted("aborted by the operator before " + name + "; nothing was changed");
      }
      if (ctx_.cancelled()) return Status::Aborted("broker stopping");
      state_.step = step;
      LK_RETURN_IF_ERROR(SaveState());
      ctx_.Step(name, "started", "");
      const int64_t t0 = ctx_.clock().MonotonicNowMs();
      Status s = (this->*table[step].forward)();
      const int64_t ms = ctx_.clock().MonotonicNowMs() - t0;
      report_["steps"][name] = {{"ms", ms}, {"ok", s.ok()}};
      if (ctx_.cancelled()) return Status::Aborted("broker stopping");  // resumes on restart
      if (!s.ok()) {
        ctx_.Step(name, "failed", s.message());
        report_["failed_step"] = name;
        switch (def.on_failure) {
          case StepFailure::kRollBackIfAborted:
            // A pre hook killed by an abort may have done part of its work
            // (stopped some applications): roll back, which runs the post hook.
            if (ctx_.abort_requested()) return Rollback("aborted by the operator: " + s.message());
            [[fallthrough]];
          case StepFailure::kNothingChanged:
            return s.WithContext(name + " failed; nothing was changed");
          case StepFailure::kRollBack:
            return Rollback(name + " failed: " + s.message());
          case StepFailure::kIncomplete:
            return Incomplete(s.message());
        }
      }
      ctx_.Step(name, "done", StepDoneDetail(name, ms));
    }
    Figures();
    if (online_) report_["complete"] = true;
    return Status::OK();
  }

 private:
  // The run's figures (issue 15): window_s (offline: clients stopped ..
  // started), client_downtime_s (the same interval, both modes), and online
  // pause_s (first replica at the stop point .. every replica past it) and
  // shipping_s.
  void Figures() {
    if (state_.window_end_ms > state_.window_start_ms) {
      const double window = static_cast<double>(state_.window_end_ms - state_.window_start_ms) / 1000.0;
      report_["window_s"] = window;
      report_["client_downtime_s"] = window;
    }
    if (state_.pause_end_ms > 0 && state_.pause_start_ms > 0) {
      report_["pause_s"] = static_cast<double>(std::max<int64_t>(state_.pause_end_ms - state_.pause_start_ms, 0)) / 1000.0;
    }
    if (state_.ship_start_ms > 0) {
      const int64_t end = state_.ship_end_ms > 0 ? state_.ship_end_ms : ctx_.clock().NowMs();
      report_["shipping_s"] = static_cast<double>(end - state_.ship_start_ms) / 1000.0;
    }
  }

  // The "done" event's detail: the step's time, and the figure it fixed.
  std::string StepDoneDetail(const std::string& name, int64_t ms) {
    std::string d = std::to_string(ms) + " ms";
    Figures();
    char buf[96];
    if (name == "verify_blocks" && online_ && report_.contains("pause_s")) {
      std::snprintf(buf, sizeof buf, "; ledger paused %.2f s", report_["pause_s"].get<double>());
      d += buf;
    } else if (name == "start_clients" && report_.contains("client_downtime_s")) {
      std::snprintf(buf, sizeof buf, "; clients were down %.2f s", report_["client_downtime_s"].get<double>());
      d += buf;
    } else if (name == "ship" && report_.contains("shipping_s")) {
      std::snprintf(buf, sizeof buf, "; shipping took %.2f s", report_["shipping_s"].get<double>());
      d += buf;
    }
    return d;
  }

  // Ends an online run whose cluster serves again but whose shipping did not
  // finish: nothing is rolled back, the checkpoints stay.
  Status Incomplete(const std::string& why) {
    Figures();
    report_["complete"] = false;
    std::string waiting;
    for (const auto& n : NodesWithRole(wire::Role::Replica).value_or(std::vector<std::string>{})) {
      if (state_.shipped.count(n) == 0) waiting += (waiting.empty() ? "" : ", ") + n;
    }
    report_["not_shipped"] = waiting;
    ctx_.Step("ship", "incomplete", why);
    return Status::Aborted("the cluster serves again, but the snapshot set of run " + std::to_string(ctx_.run_id()) +
                           " is incomplete (" + why + "); not confirmed shipped: " + waiting +
                           " (a shipment still in flight may yet complete: `ledgerkeep backup list --sets`); each "
                           "checkpoint stays beside its DB until its snapshot is complete or the next maintenance "
                           "run replaces it");
  }

  Status SaveState() {
    state_.WriteTo(ctx_.state());
    return ctx_.SaveState();
  }

  // -------------------------------------------------------------- steps
  Status PreHook() { return Hook("pre_hook"); }
  Status PostHook() { return Hook("post_hook"); }

  Status StopClients() {
    if (state_.window_start_ms == 0) {
      state_.window_start_ms = ctx_.clock().NowMs();
      LK_RETURN_IF_ERROR(SaveState());
    }
    return Components(wire::Role::Client, wire::NodeAction::Stop);
  }

  Status Wedge() {
    auto stop =
        WedgeReplicas(ctx_, report_["wedge"], params_.value("wedge_timeout_s", int64_t{120}) * 1000, 10'000);
    if (!stop.ok()) return stop.status();
    report_["stop_point"] = *stop;
    return Status::OK();
  }

  Status StopReplicas() { return Components(wire::Role::Replica, wire::NodeAction::Stop); }

  // The client archives and the replicas' final sync are independent: the
  // client backups are issued first (client_backup) and waited for after
  // the final sync, so they overlap (the window is the slower of the two,
  // not the sum).
  Status FinalSyncAndClientBackups() {
    Status replicas = FinalSync();
    Status clients = WaitClientBackups();
    if (!replicas.ok()) return replicas;
    return clients;
  }

  Status StartReplicas() { return Components(wire::Role::Replica, wire::NodeAction::Start); }

  Status Unwedge() { return UnwedgeReplicas(ctx_, report_["unwedge"], /*check_first=*/true); }

  Status StartClients() {
    Status s = Components(wire::Role::Client, wire::NodeAction::Start);
    if (s.ok()) {
      state_.window_end_ms = ctx_.clock().NowMs();
      LK_RETURN_IF_ERROR(SaveState());
    }
    return s;
  }

  // -------------------------------------------------------------- nodes
  Result<std::vector<std::string>> NodesWithRole(wire::Role role) {
    LK_ASSIGN_OR_RETURN(auto members, ctx_.Members(role));  // clones are not in the window
    std::vector<std::string> out;
    for (const auto& n : members) out.push_back(n.node_id);
    return out;
  }

  // Runs a command on every node of `role`; an error names each failure.
  Result<wire::CommandStatusT> OnAll(wire::Role role, wire::CommandBodyUnion body, uint32_t timeout_ms) {
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
  Status Components(wire::Role role, wire::NodeAction action, const std::set<std::string>& skip = {}) {
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
  std::set<std::string> LostNodes() {
    std::set<std::string> out;
    auto members = ctx_.Members(wire::Role::Unknown);
    if (!members.ok()) return out;
    for (const auto& n : *members)
      if (n.state == wire::NodeState::Lost) out.insert(n.node_id);
    return out;
  }

  // -------------------------------------------------------------- preflight
  Status Preflight() {
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
  Result<const HookSpec*> NamedHook(const std::string& which) const {
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
  Status Hook(const std::string& which) {
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
  Status CheckBlocks() {
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

  Status VerifyBlocksAdvance() {
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
  Result<std::string> ArchiveName() {
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
  Status CheckClientArchiveName() {
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

  Status IssueClientBackups() {
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

  Status WaitClientBackups() {
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

  Status FinalSync() {
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

  // -------------------------------------------------------------- online
  wire::CommandBodyUnion CheckpointBody(wire::CheckpointAction action, uint64_t stop_point = 0) const {
    wire::MaintenanceCheckpointT c;
    c.run_id = ctx_.run_id();
    c.stop_point = stop_point;
    c.action = action;
    c.min_free_bytes = params_.value("min_free_bytes", uint64_t{0});
    wire::CommandBodyUnion body;
    body.Set(std::move(c));
    return body;
  }

  // Preflight: every replica has room for a checkpoint (it pins SSTs that
  // compaction would delete: up to its DB's size while it ships).
  Status CheckCheckpointSpace() {
    auto st = OnAll(wire::Role::Replica, CheckpointBody(wire::CheckpointAction::Check), 30'000);
    if (!st.ok()) return Status::FailedPrecondition("not enough disk for a checkpoint: " + st.status().message());
    for (const auto& t : st->targets) {
      if (const auto* r = t->result->detail.AsMaintenanceCheckpointResult()) {
        report_["disk"][t->node_id] = {{"db_bytes", r->db_bytes}, {"free_bytes", r->free_bytes},
                                       {"held_bytes", r->held_bytes}};
      }
    }
    return Status::OK();
  }

  // Every replica, wedged, checkpoints at the stop point; the checkpoints
  // must agree (CrossCheckCheckpoints) before anything is unwedged.
  Status TakeCheckpoints() {
    const uint64_t stop = report_.value("stop_point", uint64_t{0});
    if (stop == 0) return Status::Internal("no stop point");
    state_.checkpoints_taken = true;
    LK_RETURN_IF_ERROR(SaveState());
    LK_ASSIGN_OR_RETURN(auto st, OnAll(wire::Role::Replica, CheckpointBody(wire::CheckpointAction::Take, stop),
                                       static_cast<uint32_t>(params_.value("stop_timeout_s", int64_t{120}) * 1000)));
    std::vector<ReplicaCheckpoint> cps;
    int64_t first_wedged = 0;
    for (const auto& t : st.targets) {
      const auto* r = t->result->detail.AsMaintenanceCheckpointResult();
      if (r == nullptr) return Status::Internal(t->node_id + " answered without a checkpoint");
      cps.push_back({t->node_id, r->last_reachable, r->last, r->stop_digest});
      if (r->wedged_since_ms > 0 && (first_wedged == 0 || r->wedged_since_ms < first_wedged)) {
        first_wedged = r->wedged_since_ms;
      }
      report_["checkpoints"][t->node_id] = {{"last_block_id", r->last},   {"stop_digest", r->stop_digest},
                                            {"took_ms", r->took_ms},      {"db_bytes", r->db_bytes},
                                            {"free_bytes", r->free_bytes}, {"path", r->path}};
    }
    LK_RETURN_IF_ERROR(CrossCheckCheckpoints(stop, cps));
    state_.common_block = stop;
    state_.pause_start_ms = first_wedged;
    report_["common_block"] = stop;
    return SaveState();
  }

  Status ClientBackups() {
    LK_RETURN_IF_ERROR(IssueClientBackups());
    return WaitClientBackups();
  }

  // Ships every replica's checkpoint as its snapshot of this run's set, in
  // parallel (one command per replica). A failed shipment is issued again
  // for that replica alone after a pause (1 s, doubling to 30 s) until
  // ship_timeout_s; the others go on meanwhile. Each success is saved, so a
  // broker restart resumes with the shipments in flight and the ones missing.
  Status Ship() {
    if (state_.ship_start_ms == 0) {
      state_.ship_start_ms = ctx_.clock().NowMs();
      LK_RETURN_IF_ERROR(SaveState());
    }
    LK_ASSIGN_OR_RETURN(auto replicas, NodesWithRole(wire::Role::Replica));
    const int64_t deadline =
        ctx_.clock().MonotonicNowMs() + params_.value("ship_timeout_s", int64_t{86'400}) * 1000;
    const uint32_t attempt_ms = static_cast<uint32_t>(params_.value("backup_timeout_s", int64_t{3600}) * 1000);
    struct Retry {
      int attempts = 0;
      int64_t pause_ms = 1000;
      int64_t next_ms = 0;  // monotonic; 0 = now
    };
    std::map<std::string, Retry> retry;
    while (state_.shipped.size() < replicas.size()) {
      if (ctx_.cancelled()) return Status::Aborted("broker stopping");  // resumes on restart
      if (ctx_.abort_requested()) return Status::Aborted("aborted by the operator while shipping");
      const int64_t now = ctx_.clock().MonotonicNowMs();
      if (now >= deadline) return Status::Timeout("shipping did not finish within ship_timeout_s");
      bool changed = false;
      // Issue what is missing and due.
      for (const auto& n : replicas) {
        if (state_.shipped.count(n) != 0 || state_.ship_cmds.count(n) != 0 || now < retry[n].next_ms) continue;
        wire::RunBackupNowT r;
        r.reason = "maintenance";
        r.maintenance_run = ctx_.run_id();
        wire::CommandBodyUnion body;
        body.Set(std::move(r));
        LK_ASSIGN_OR_RETURN(uint64_t id, ctx_.IssueCommand(TargetNode(n), std::move(body), attempt_ms));
        state_.ship_cmds[n] = id;
        ++retry[n].attempts;
        report_["shipping"][n] = {{"state", "shipping"}, {"attempt", retry[n].attempts}, {"cmd_id", id}};
        LK_RETURN_IF_ERROR(SaveState());
        changed = true;
      }
      // Collect what finished.
      for (auto it = state_.ship_cmds.begin(); it != state_.ship_cmds.end();) {
        const std::string node = it->first;
        auto st = ctx_.WaitCommand(it->second, 100);
        if (!st.ok() && st.status().code() == StatusCode::kTimeout) {
          ++it;  // still shipping
          continue;
        }
        if (ctx_.cancelled()) return Status::Aborted("broker stopping");
        std::string error;
        const wire::BackupResultT* b = nullptr;
        if (!st.ok()) {
          error = st.status().ToString();
        } else {
          for (const auto& t : st->targets) {
            b = t->result ? t->result->detail.AsBackupResult() : nullptr;
            if (!ResultOk(*t) || b == nullptr) error = ResultText(*t);
          }
        }
        Retry& rt = retry[node];
        if (error.empty() && b != nullptr) {
          state_.shipped[node] = b->snapshot_id;
          report_["replicas"][node] = {{"snapshot_id", b->snapshot_id}, {"bytes_transferred", b->bytes_transferred},
                                       {"bytes_total", b->bytes_total}, {"duration_ms", b->duration_ms},
                                       {"consistent", b->consistent}, {"last_block_id", b->last_block_id},
                                       {"destination", b->destination}, {"set_run", b->set_run}};
          report_["shipping"][node] = {{"state", "done"}, {"snapshot_id", b->snapshot_id}};
          ctx_.Step("ship", "progress", node + ": snapshot " + b->snapshot_id + " complete");
        } else {
          rt.next_ms = ctx_.clock().MonotonicNowMs() + rt.pause_ms;
          report_["shipping"][node] = {{"state", "retrying"}, {"attempt", rt.attempts}, {"error", error},
                                       {"next_attempt_in_s", rt.pause_ms / 1000}};
          ctx_.Note("maintenance", node, "warn",
                    "run " + std::to_string(ctx_.run_id()) + ": shipping the checkpoint failed (" + error +
                        "); the checkpoint is kept and the shipment is issued again in " +
                        std::to_string(rt.pause_ms / 1000) + " s");
          rt.pause_ms = std::min<int64_t>(rt.pause_ms * 2, 30'000);
        }
        it = state_.ship_cmds.erase(it);
        LK_RETURN_IF_ERROR(SaveState());
        changed = true;
      }
      if (changed) ctx_.SaveReport(report_).IgnoreError();
      if (state_.ship_cmds.empty()) ctx_.clock().SleepMs(200);  // only retries are pending
    }
    state_.ship_end_ms = ctx_.clock().NowMs();
    return SaveState();
  }

  // -------------------------------------------------------------- rollback
  // Brings the cluster back to serving whatever state it is in. Each action
  // is idempotent; failures are collected, not fatal, so every step runs.
  Status Rollback(const std::string& why) {
    if (!state_.rolling_back) {
      state_.rolling_back = true;
      state_.failure = why;
      SaveState().IgnoreError();
    }
    ctx_.Step("rollback", "started", why);
    std::string problems;
    auto note = [&](const std::string& what, const Status& s) {
      if (!s.ok()) problems += (problems.empty() ? "" : "; ") + what + ": " + s.message();
    };
    // A lost node must not hold up the others: a command to it would wait
    // its whole deadline (minutes for a start) while the clients stay
    // stopped (fault suite: a replica partitioned during the wedge kept the
    // clients down for 2+ minutes, and left that replica wedged for good
    // after the heal). The reachable nodes are rolled back now; a lost
    // replica gets its start and unwedge queued with a long deadline, so it
    // receives them when it says hello again (README "When things fail").
    const std::set<std::string> lost = LostNodes();
    note("start replicas", Components(wire::Role::Replica, wire::NodeAction::Start, lost));
    nlohmann::json unwedge_report;
    note("unwedge", UnwedgeReplicas(ctx_, unwedge_report, /*check_first=*/false, lost));
    if (unwedge_report.contains("needs_unwedge")) report_["needs_unwedge"] = unwedge_report["needs_unwedge"];
    note("start clients", Components(wire::Role::Client, wire::NodeAction::Start, lost));
    note("post hook", Hook("post_hook"));
    if (state_.checkpoints_taken) {
      // Nothing of a rolled-back run is shipped: its checkpoints only hold disk.
      auto released = ctx_.RunCommand(TargetRole(wire::Role::Replica),
                                      CheckpointBody(wire::CheckpointAction::Release), 30'000);
      if (!released.ok()) {
        note("release checkpoints", released.status());
      } else {
        for (const auto& t : released->targets) {
          if (!ResultOk(*t)) note("release the checkpoint on " + t->node_id, Status::Aborted(ResultText(*t)));
        }
      }
    }
    auto replicas = NodesWithRole(wire::Role::Replica);
    const uint32_t redeliver_ms =
        static_cast<uint32_t>(params_.value("rollback_redeliver_s", int64_t{600}) * 1000);
    for (const auto& n : replicas.ok() ? *replicas : std::vector<std::string>{}) {
      if (lost.count(n) == 0) continue;
      wire::NodeManagementT m;
      m.action = wire::NodeAction::Start;
      wire::CommandBodyUnion start;
      start.Set(std::move(m));
      wire::CommandBodyUnion unwedge;
      unwedge.Set(wire::UnwedgeT{});
      Status s = ctx_.IssueCommand(TargetNode(n), std::move(start), redeliver_ms, "rollback-start-" + n).status();
      if (s.ok()) {
        s = ctx_.IssueCommand(TargetNode(n), std::move(unwedge), redeliver_ms, "rollback-unwedge-" + n).status();
      }
      if (s.ok()) {
        report_["queued_for_lost"].push_back(n);
        problems += (problems.empty() ? "" : "; ") + n + " is lost: its start and unwedge are queued for " +
                    std::to_string(redeliver_ms / 1000) +
                    " s and run when it reconnects (the broker retries its unwedge until it succeeds)";
      } else {
        note(n + " (lost): queueing its start and unwedge", s);
      }
    }
    for (const auto& n : lost) {
      if (replicas.ok() && std::find(replicas->begin(), replicas->end(), n) != replicas->end()) continue;
      problems += (problems.empty() ? "" : "; ") + n + " is lost: start its services when it is back (ledgerkeep node start --node " + n + ")";
    }
    report_["rolled_back"] = true;
    report_["rollback_problems"] = problems;
    ctx_.Step("rollback", problems.empty() ? "done" : "failed",
              problems.empty() ? "the cluster serves again" : problems);
    return Status::Aborted(why + (problems.empty() ? "; rolled back, the cluster serves again"
                                                   : "; rollback incomplete: " + problems));
  }

  // -------------------------------------------------------------- dry run
  Status DryRun() {
    report_["plan"] = nlohmann::json::array();
    for (const auto& row : Table(online_ ? MaintenanceMode::kOnline : MaintenanceMode::kOffline)) {
      report_["plan"].push_back(row.step.name);
    }
    for (const char* which : {"pre_hook", "post_hook"}) {
      LK_ASSIGN_OR_RETURN(const HookSpec* hook, NamedHook(which));
      if (hook != nullptr) report_["hooks"][which] = {{"name", hook->name}, {"command", hook->exec}};
    }
    wire::CommandBodyUnion body;
    body.Set(wire::GetBackupStatusT{});
    LK_ASSIGN_OR_RETURN(auto st, ctx_.RunCommand(TargetRole(wire::Role::Replica), std::move(body), 15'000));
    double slowest = 0;
    for (const auto& t : st.targets) {
      const auto* b = t->result ? t->result->detail.AsBackupStatus() : nullptr;
      if (b == nullptr || !b->last_ok || b->last_ok->duration_ms <= 0) {
        report_["estimate"][t->node_id] = online_ ? "no earlier snapshot: shipping is a full copy"
                                                  : "no earlier snapshot: the final sync is a full copy";
        continue;
      }
      // The final sync sends about one incremental delta at the measured rate.
      const double rate = static_cast<double>(std::max<uint64_t>(b->last_ok->bytes_transferred, 1)) /
                          (static_cast<double>(b->last_ok->duration_ms) / 1000.0);
      const double secs = static_cast<double>(b->last_ok->bytes_transferred) / rate + 2.0;
      slowest = std::max(slowest, secs);
      report_["estimate"][t->node_id] = {{"delta_bytes", b->last_ok->bytes_transferred},
                                         {"rate_bytes_per_s", rate},
                                         {online_ ? "shipping_s" : "final_sync_s", secs}};
    }
    if (online_) {
      // The ledger pauses for the checkpoints (hard links) and the unwedge,
      // whatever the data; the clients are down for the wedge (the chain
      // reaching the stop point, at most two checkpoint windows of blocks)
      // and their archives; shipping follows while the ledger runs.
      Status space = CheckCheckpointSpace();
      if (!space.ok()) report_["refused"] = space.message();
      report_["estimated_pause_s"] = 1.0;
      report_["estimated_client_downtime_s"] = 5.0;
      report_["estimated_shipping_s"] = slowest;
    } else {
      // Fixed parts: wedge (up to two checkpoints of blocks), stops and starts.
      const double fixed_s = 15.0;
      report_["estimated_window_s"] = slowest + fixed_s;
    }
    report_["dry_run"] = true;
    return Status::OK();
  }

  WorkflowContext& ctx_;
  nlohmann::json& report_;
  nlohmann::json params_;
  MaintenanceState state_;
  bool online_;
};

// The maintenance run: the steps in order, what each does and what its
// failure does (see MaintenanceStep). From stop_clients on the cluster is
// changed, so a failure rolls it back; the pre hook only when an abort
// killed it.
const std::vector<MaintenanceRun::StepDef>& MaintenanceRun::Table(MaintenanceMode mode) {
  using F = StepFailure;
  using R = MaintenanceRun;
  static const std::vector<StepDef> offline = {
      {{"preflight", F::kNothingChanged, false,
        "every node alive, one destination per node, replicas healthy, hooks and archive name valid"},
       &R::Preflight},
      {{"pre_hook", F::kRollBackIfAborted, true, "run the --pre-hook named in the broker's config, if any"},
       &R::PreHook},
      {{"stop_clients", F::kRollBack, false, "stop the client components (the window starts)"}, &R::StopClients},
      {{"wedge", F::kRollBack, false, "wedge every replica at one stop point"}, &R::Wedge},
      {{"stop_replicas", F::kRollBack, false, "stop ledgerd on every replica"}, &R::StopReplicas},
      {{"check_blocks", F::kRollBack, false, "offline block ids: every replica at the same block, no gap"},
       &R::CheckBlocks},
      {{"client_backup", F::kRollBack, false, "issue the client archives (waited for with the final sync)"},
       &R::IssueClientBackups},
      {{"final_sync", F::kRollBack, false,
        "final backup run on every stopped replica, consistent at the common block; the client archives"},
       &R::FinalSyncAndClientBackups},
      {{"start_replicas", F::kRollBack, false, "start ledgerd on every replica"}, &R::StartReplicas},
      {{"unwedge", F::kRollBack, false, "unwedge every replica"}, &R::Unwedge},
      {{"verify_blocks", F::kRollBack, false, "blocks advance past the common block on every replica"},
       &R::VerifyBlocksAdvance},
      {{"start_clients", F::kRollBack, false, "start the client components (the window ends)"}, &R::StartClients},
      {{"post_hook", F::kRollBack, true, "run the --post-hook named in the broker's config, if any"}, &R::PostHook},
  };
  static const std::vector<StepDef> online = {
      {{"preflight", F::kNothingChanged, false,
        "every node alive, one destination per node, replicas healthy, hooks and archive name valid, "
        "free disk for a checkpoint on every replica"},
       &R::Preflight},
      {{"pre_hook", F::kRollBackIfAborted, true, "run the --pre-hook named in the broker's config, if any"},
       &R::PreHook},
      {{"stop_clients", F::kRollBack, false, "stop the client components (client downtime starts)"},
       &R::StopClients},
      {{"wedge", F::kRollBack, false, "wedge every replica at one stop point (the pause starts)"}, &R::Wedge},
      {{"checkpoint", F::kRollBack, false,
        "every replica checkpoints at the stop point; last block id and the stop block's digest equal on all"},
       &R::TakeCheckpoints},
      {{"unwedge", F::kRollBack, false, "unwedge every replica"}, &R::Unwedge},
      {{"verify_blocks", F::kRollBack, false, "blocks advance past the stop point on every replica (the pause ends)"},
       &R::VerifyBlocksAdvance},
      {{"client_backup", F::kRollBack, false, "the client archives"}, &R::ClientBackups},
      {{"start_clients", F::kRollBack, false, "start the client components (client downtime ends)"},
       &R::StartClients},
      {{"post_hook", F::kRollBack, true, "run the --post-hook named in the broker's config, if any"}, &R::PostHook},
      {{"ship", F::kIncomplete, false,
        "ship every checkpoint as its snapshot of the run's set, in parallel, retrying until complete; "
        "the ledger runs meanwhile"},
       &R::Ship},
  };
  return mode == MaintenanceMode::kOnline ? online : offline;
}

}  // namespace

const std::vector<MaintenanceStep>& MaintenanceSteps(MaintenanceMode mode) {
  static const auto steps_of = [](MaintenanceMode m) {
    std::vector<MaintenanceStep> out;
    for (const auto& row : MaintenanceRun::Table(m)) out.push_back(row.step);
    return out;
  };
  static const std::vector<MaintenanceStep> online = steps_of(MaintenanceMode::kOnline);
  static const std::vector<MaintenanceStep> offline = steps_of(MaintenanceMode::kOffline);
  return mode == MaintenanceMode::kOnline ? online : offline;
}

Status MaintenanceWorkflow::Run(WorkflowContext& ctx, nlohmann::json& report) {
  return MaintenanceRun(ctx, report).Execute();
}

void RegisterMaintenanceWorkflow(WorkflowManager& manager) {
  manager.Register("maintenance", [](const nlohmann::json&) { return std::make_unique<MaintenanceWorkflow>(); });
}

}  // namespace ledgerkeep
