#include "broker/observed_state.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <set>

#include "client/event_format.h"
#include "common/config.h"

namespace ledgerkeep {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

constexpr size_t kMaxTrackedCommands = 10'000;

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

}  // namespace

ObservedState::ObservedState(prometheus::Registry& r)
    : backups_(r),
      node_up_(BuildGauge().Name("ledgerkeep_node_up").Help("1 if the node is alive, 0 if suspect, lost or never seen").Register(r)),
      node_heartbeat_(BuildGauge()
                          .Name("ledgerkeep_node_last_heartbeat_timestamp_seconds")
                          .Help("When the broker last heard from the node (Unix seconds; 0 = never)")
                          .Register(r)),
      wedged_(BuildGauge()
                  .Name("ledgerkeep_ledger_wedged")
                  .Help("1 if the replica was wedged at a stop point, as last reported by a wedge or unwedge command")
                  .Register(r)),
      maintenance_runs_(BuildCounter()
                            .Name("ledgerkeep_maintenance_runs_total")
                            .Help("Finished maintenance runs by outcome (succeeded, rolled_back, incomplete, failed)")
                            .Register(r)),
      maintenance_pause_(BuildGauge()
                             .Name("ledgerkeep_maintenance_last_pause_seconds")
                             .Help("The last finished maintenance run's ledger pause")
                             .Register(r)
                             .Add({})),
      maintenance_downtime_(BuildGauge()
                                .Name("ledgerkeep_maintenance_last_client_downtime_seconds")
                                .Help("The last finished maintenance run's client downtime")
                                .Register(r)
                                .Add({})),
      maintenance_running_(BuildGauge()
                               .Name("ledgerkeep_maintenance_running")
                               .Help("1 while a maintenance run is in progress")
                               .Register(r)
                               .Add({})),
      commands_(BuildCounter()
                    .Name("ledgerkeep_commands_total")
                    .Help("Finished commands by kind and result (ok: every target succeeded)")
                    .Register(r)),
      command_latency_(BuildHistogram()
                           .Name("ledgerkeep_command_latency_seconds")
                           .Help("From a command's issue to its last target's result")
                           .Register(r)),
      head_(BuildGauge()
                .Name("ledgerkeep_event_log_head_sequence")
                .Help("Sequence number of the newest event in the broker's log")
                .Register(r)
                .Add({})) {
  for (const char* outcome : {"succeeded", "rolled_back", "incomplete", "failed"}) {
    maintenance_runs_.Add({{"outcome", outcome}});  // every outcome exported from the start, at 0
  }
}

std::optional<uint64_t> ObservedState::Apply(const wire::Event& ev) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ev.seq() <= head_seq_) return std::nullopt;
  head_seq_ = ev.seq();
  head_.Set(static_cast<double>(head_seq_));
  const std::string node = Str(ev.node());
  switch (ev.body_type()) {
    case wire::EventBody::BackupResult: {  // a scheduled run
      const auto* b = ev.body_as_BackupResult();
      ApplyBackup(node, BackupResultToJson(*b), ev.at_ms(), b->snapshot_count());
      break;
    }
    case wire::EventBody::CommandIssued: {
      const auto* c = ev.body_as_CommandIssued();
      if (issued_.size() >= kMaxTrackedCommands) issued_.erase(issued_.begin());
      issued_[c->cmd_id()] = Issued{Str(c->kind()), ev.at_ms()};
      break;
    }
    case wire::EventBody::CommandResult: {
      const auto* r = ev.body_as_CommandResult();
      if (const auto* b = r->detail_as_BackupResult()) {
        ApplyBackup(node, BackupResultToJson(*b), ev.at_ms(), b->snapshot_count());
      } else if (const auto* w = r->detail_as_WedgeStatus()) {
        ApplyWedge(node, *w, ev.at_ms());
      } else if (r->status() != wire::ResultStatus::Ok) {
        auto it = issued_.find(r->cmd_id());
        if (it != issued_.end() && it->second.kind == CommandKindName(wire::CommandBody::RunBackupNow)) {
          // A run-now that failed before it produced a result of its own.
          nlohmann::json j = {{"snapshot_id", ""},
                              {"destination", ""},
                              {"ok", false},
                              {"error", Str(r->message())},
                              {"error_code", std::string(StatusCodeName(static_cast<StatusCode>(r->error_code())))},
                              {"bytes_sent", 0},
                              {"bytes_total", 0},
                              {"duration_s", 0.0},
                              {"scheduled", false}};
          ApplyBackup(node, j, ev.at_ms(), 0);
        }
      }
      break;
    }
    case wire::EventBody::CommandFinished: {
      const auto* f = ev.body_as_CommandFinished();
      auto it = issued_.find(f->cmd_id());
      const std::string kind = Str(f->kind());
      commands_.Add({{"kind", kind}, {"result", f->failed_count() > 0 ? "failed" : "ok"}}).Increment();
      if (it != issued_.end()) {
        command_latency_
            .Add({{"kind", kind}},
                 prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                                         30, 60, 300, 1800})
            .Observe(static_cast<double>(ev.at_ms() - it->second.at_ms) / 1000.0);
        issued_.erase(it);
      }
      break;
    }
    case wire::EventBody::RunbookStep: {
      const auto* s = ev.body_as_RunbookStep();
      if (Str(s->kind()) != "maintenance") break;
      latest_maintenance_ = std::max(latest_maintenance_, s->run_id());
      const bool finished = Str(s->step()) == "finished";
      maintenance_running_.Set(finished ? 0 : 1);
      if (finished) return s->run_id();
      break;
    }
    default: break;
  }
  return std::nullopt;
}

void ObservedState::ApplyBackup(const std::string& node, const nlohmann::json& result, int64_t at_ms,
                                uint32_t snapshot_count) {
  NodeView& v = nodes_[node];
  nlohmann::json r = result;
  r["node"] = node;
  r["at_ms"] = at_ms;
  v.recent.push_front(r);
  if (v.recent.size() > kRecentBackups) v.recent.pop_back();
  const bool ok = r.value("ok", false);
  if (ok) v.last_success_ms = std::max(v.last_success_ms, at_ms);
  BackupRunFigures f;
  f.ok = ok;
  f.finished_at_ms = at_ms;
  f.duration_s = r.value("duration_s", 0.0);
  f.bytes_sent = r.value("bytes_sent", uint64_t{0});
  f.failure_reason = ok ? "" : SnakeCase(r.value("error_code", std::string("Unknown")));
  backups_.ObserveRun(node, f);
  if (ok && snapshot_count > 0) backups_.SetSnapshots(node, snapshot_count, at_ms);
}

void ObservedState::ApplyWedge(const std::string& node, const wire::WedgeStatus& w, int64_t at_ms) {
  nodes_[node].wedge = nlohmann::json{{"wedged", w.wedged()},
                                      {"stop_point", w.stop_point()},
                                      {"last", w.last()},
                                      {"running", w.running()},
                                      {"at_ms", at_ms}};
  wedged_.Add({{"node", node}}).Set(w.wedged() ? 1 : 0);
}

std::string ObservedState::OutcomeOf(const std::string& state, const nlohmann::json& report) {
  if (state == "succeeded") return "succeeded";
  if (report.is_object()) {
    if (report.value("rolled_back", false)) return "rolled_back";
    if (report.contains("not_shipped")) return "incomplete";
  }
  return "failed";
}

void ObservedState::MaintenanceFinished(uint64_t /*run_id*/, const std::string& outcome,
                                        const nlohmann::json& report) {
  maintenance_runs_.Add({{"outcome", outcome}}).Increment();
  if (report.is_object()) {
    if (report.contains("pause_s") && report["pause_s"].is_number()) {
      maintenance_pause_.Set(report["pause_s"].get<double>());
    }
    if (report.contains("client_downtime_s") && report["client_downtime_s"].is_number()) {
      maintenance_downtime_.Set(report["client_downtime_s"].get<double>());
    }
  }
}

void ObservedState::SetNodes(const wire::NodeListT& list) {
  std::lock_guard<std::mutex> lock(mu_);
  std::set<std::string> seen;
  for (const auto& n : list.nodes) {
    if (!n) continue;
    seen.insert(n->node_id);
    auto it = liveness_.find(n->node_id);
    if (it == liveness_.end()) {
      const prometheus::Labels l{{"node", n->node_id}, {"role", RoleName(n->role)}};
      it = liveness_
               .emplace(n->node_id, std::make_pair(&node_up_.Add(l), &node_heartbeat_.Add({{"node", n->node_id}})))
               .first;
    }
    it->second.first->Set(n->state == wire::NodeState::Alive ? 1 : 0);
    it->second.second->Set(static_cast<double>(n->last_heartbeat_ms) / 1000.0);
  }
  for (auto it = liveness_.begin(); it != liveness_.end();) {
    if (seen.count(it->first)) {
      ++it;
      continue;
    }
    node_up_.Remove(it->second.first);  // left the allowlist
    node_heartbeat_.Remove(it->second.second);
    it = liveness_.erase(it);
  }
}

nlohmann::json ObservedState::NodesJson(const wire::NodeListT& list) const {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json nodes = nlohmann::json::array();
  for (const auto& n : list.nodes) {
    if (!n) continue;
    nlohmann::json j = {{"node", n->node_id},
                        {"role", RoleName(n->role)},
                        {"state", NodeStateName(n->state)},
                        {"clone", n->clone},
                        {"last_heartbeat_ms", n->last_heartbeat_ms},
                        {"connected_since_ms", n->connected_since_ms},
                        {"version", n->version},
                        {"pending_commands", n->pending_commands},
                        {"backup_destination", n->backup_target ? n->backup_target->destination : ""},
                        {"wedge", nullptr}};
    auto it = nodes_.find(n->node_id);
    if (it != nodes_.end() && it->second.wedge) j["wedge"] = *it->second.wedge;
    nodes.push_back(std::move(j));
  }
  return {{"now_ms", list.now_ms}, {"nodes", std::move(nodes)}};
}

nlohmann::json ObservedState::BackupsJson(int64_t now_ms, const wire::NodeListT& list) const {
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::json nodes = nlohmann::json::array();
  std::set<std::string> listed;
  auto add = [&](const std::string& node) {
    auto it = nodes_.find(node);
    nlohmann::json recent = nlohmann::json::array();
    int64_t last_success_ms = 0;
    if (it != nodes_.end()) {
      for (const auto& r : it->second.recent) recent.push_back(r);
      last_success_ms = it->second.last_success_ms;
    }
    nodes.push_back({{"node", node},
                     {"last_success_ms", last_success_ms > 0 ? nlohmann::json(last_success_ms) : nlohmann::json()},
                     {"last", recent.empty() ? nlohmann::json() : recent.front()},
                     {"recent", std::move(recent)}});
  };
  for (const auto& n : list.nodes) {
    if (!n || !listed.insert(n->node_id).second) continue;
    add(n->node_id);
  }
  for (const auto& [node, v] : nodes_) {
    if (!listed.count(node) && !v.recent.empty()) add(node);
  }
  return {{"now_ms", now_ms}, {"nodes", std::move(nodes)}};
}

uint64_t ObservedState::head_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return head_seq_;
}

uint64_t ObservedState::latest_maintenance_run() const {
  std::lock_guard<std::mutex> lock(mu_);
  return latest_maintenance_;
}

}  // namespace ledgerkeep
