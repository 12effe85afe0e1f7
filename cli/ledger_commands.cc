#include "cli/ledger_commands.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli/cli_app.h"
#include "cli/health_state.h"
#include "cli/output.h"

namespace ledgerkeep {
namespace {

// ---------------------------------------------------------------- node
int RunNode(const GlobalFlags& g, const std::string& action, const TargetFlags& tf,
            const std::vector<std::string>& components, int64_t wait_s) {
  wire::NodeManagementT m;
  m.action = action == "start"  ? wire::NodeAction::Start
             : action == "stop" ? wire::NodeAction::Stop
                                : wire::NodeAction::Status;
  m.components = components;
  wire::CommandBodyUnion body;
  body.Set(std::move(m));
  auto st = RunCommand(g, ToTarget(tf), std::move(body), wait_s);
  if (!st.ok()) return Fail(st.status());
  bool all_ok = st->finished;
  nlohmann::json j = nlohmann::json::object();
  Table t({"NODE", "RESULT", "COMPONENTS", "MESSAGE"});
  for (const auto& target : st->targets) {
    all_ok = all_ok && TargetOk(*target);
    std::string comps;
    nlohmann::json jc = nlohmann::json::object();
    if (target->result && target->result->detail.type == wire::ResultDetail::NodeStatus) {
      for (const auto& c : target->result->detail.AsNodeStatus()->components) {
        comps += (comps.empty() ? "" : ", ") + c->name + (c->running ? " running" : " stopped");
        jc[c->name] = {{"running", c->running}, {"pid", c->pid}, {"detail", c->detail}};
      }
    }
    j[target->node_id] = {
        {"result", TargetResult(*target)}, {"components", jc}, {"message", TargetMessage(*target)}};
    t.Add({target->node_id, TargetResult(*target), comps.empty() ? "-" : comps, TargetMessage(*target)});
  }
  PrintTableOrJson(g, t, j);
  return all_ok ? kExitOk : kExitFailed;
}

// ---------------------------------------------------------------- blocks
int RunBlocks(const GlobalFlags& g, const TargetFlags& tf, int64_t wait_s) {
  wire::CommandBodyUnion body;
  body.Set(wire::GetBlockIdsT{});
  // Block ids are a replica thing.
  auto st = RunCommand(g, ReplicasByDefault(tf), std::move(body), wait_s);
  if (!st.ok()) return Fail(st.status());
  bool all_ok = st->finished;
  std::set<std::pair<uint64_t, uint64_t>> distinct;
  nlohmann::json j = {{"replicas", nlohmann::json::object()}};
  Table t({"NODE", "GENESIS", "LAST REACHABLE", "LAST", "LEDGERD", "MESSAGE"});
  for (const auto& target_st : st->targets) {
    if (TargetOk(*target_st) && target_st->result->detail.type == wire::ResultDetail::BlockIds) {
      const auto* b = target_st->result->detail.AsBlockIds();
      distinct.insert({b->last_reachable, b->last});
      j["replicas"][target_st->node_id] = {{"genesis", b->genesis},
                                           {"lastReachableBlockID", b->last_reachable},
                                           {"lastBlockID", b->last},
                                           {"running", b->running}};
      t.Add({target_st->node_id, std::to_string(b->genesis), std::to_string(b->last_reachable),
             std::to_string(b->last), b->running ? "running" : "stopped", ""});
    } else {
      all_ok = false;
      j["replicas"][target_st->node_id] = {
          {"error", TargetResult(*target_st) + ": " + TargetMessage(*target_st)}};
      t.Add({target_st->node_id, "-", "-", "-", "?",
             TargetResult(*target_st) + ": " + TargetMessage(*target_st)});
    }
  }
  const bool agree = all_ok && distinct.size() == 1 && distinct.begin()->first == distinct.begin()->second;
  j["agree"] = agree;
  PrintTableOrJson(g, t, j);
  if (!g.json) {
    std::printf("%s\n", agree ? "all replicas agree (same last block, no state-transfer gap)"
                              : "replicas DO NOT agree (or some did not answer)");
  }
  return all_ok ? kExitOk : kExitFailed;
}

// ---------------------------------------------------------------- wedge
int RunWedgeStatus(const GlobalFlags& g, int64_t wait_s) {
  wire::WedgeT w;
  w.action = wire::WedgeAction::Status;
  wire::CommandBodyUnion body;
  body.Set(std::move(w));
  wire::TargetT target;
  target.role = wire::Role::Replica;
  auto st = RunCommand(g, target, std::move(body), wait_s);
  if (!st.ok()) return Fail(st.status());
  nlohmann::json j = nlohmann::json::object();
  Table t({"NODE", "WEDGED", "STOP POINT", "LAST REACHABLE", "NOTE"});
  bool all = st->finished;
  for (const auto& target_st : st->targets) {
    bool wedged = false;
    std::string point = "-", reach = "-", note;
    if (TargetOk(*target_st) && target_st->result->detail.type == wire::ResultDetail::WedgeStatus) {
      const auto* ws = target_st->result->detail.AsWedgeStatus();
      wedged = ws->wedged;
      if (ws->stop_point) point = std::to_string(ws->stop_point);
      if (ws->running) reach = std::to_string(ws->last_reachable);
      if (!ws->running) note = "ledgerd not running";
    } else {
      note = TargetResult(*target_st) + ": " + TargetMessage(*target_st);
    }
    all = all && wedged;
    j[target_st->node_id] = wedged;
    t.Add({target_st->node_id, wedged ? "true" : "false", point, reach, note});
  }
  PrintTableOrJson(g, t, j);
  return all ? kExitOk : kExitFailed;
}

// ---------------------------------------------------------------- health
int RunHealth(const GlobalFlags& g, const TargetFlags& tf, int64_t wait_s) {
  wire::CommandBodyUnion body;
  body.Set(wire::GetHealthT{});
  auto st = RunCommand(g, ReplicasByDefault(tf), std::move(body), wait_s);
  if (!st.ok()) return Fail(st.status());
  bool healthy = st->finished;
  nlohmann::json j = nlohmann::json::object();
  Table t({"NODE", "BLOCKS/S", "FAST PATHS", "SLOW PATHS", "STATE"});
  char rate[32];
  for (const auto& target_st : st->targets) {
    if (TargetOk(*target_st) && target_st->result->detail.type == wire::ResultDetail::NodeHealth) {
      const auto* h = target_st->result->detail.AsNodeHealth();
      std::snprintf(rate, sizeof rate, "%.1f", h->blocks_per_sec);
      const ReplicaHealthState state = ClassifyReplicaHealth(*h);
      healthy = healthy && state.healthy;
      j[target_st->node_id] = {{"blocks_per_sec", h->blocks_per_sec},
                               {"fast_paths", h->fast_paths},
                               {"slow_paths", h->slow_paths},
                               {"running", h->running},
                               {"slow_path_fault", h->slow_path_fault},
                               {"healthy", state.healthy},
                               {"state", state.id},
                               {"catching_up", h->catching_up},
                               {"lag_blocks", h->lag_blocks},
                               {"catch_up_blocks_per_sec", h->catch_up_blocks_per_sec}};
      t.Add({target_st->node_id, rate, std::to_string(h->fast_paths), std::to_string(h->slow_paths), state.text});
    } else {
      healthy = false;
      j[target_st->node_id] = {{"error", TargetResult(*target_st) + ": " + TargetMessage(*target_st)}};
      t.Add({target_st->node_id, "-", "-", "-", TargetResult(*target_st) + ": " + TargetMessage(*target_st)});
    }
  }
  PrintTableOrJson(g, t, j);
  return healthy ? kExitOk : kExitFailed;
}

// ---------------------------------------------------------------- workflows
// Starts a broker workflow, shows its steps as they happen, prints its report.
int RunWorkflow(const GlobalFlags& g, const std::string& kind, const nlohmann::json& params) {
  auto client = ConnectBroker(g);
  if (!client.ok()) return Fail(client.status());
  auto st = (*client)->StartWorkflow(kind, params.dump());
  if (!st.ok()) return Fail(st.status());
  const uint64_t id = st->run_id;
  std::string last_step;
  while (!st->finished) {
    if (!g.json && st->step != last_step && !st->step.empty()) {
      std::fprintf(stderr, "%s: %s\n", kind.c_str(), st->step.c_str());
      last_step = st->step;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto next = (*client)->GetWorkflowStatus(id);
    if (!next.ok()) {
      if (next.status().code() == StatusCode::kUnavailable) continue;  // broker restarting
      return Fail(next.status());
    }
    st = std::move(next);
  }
  auto report = nlohmann::json::parse(st->report_json, nullptr, false);
  const bool ok = st->state == "succeeded";
  if (g.json) {
    nlohmann::json j = {{"run_id", id},       {"kind", kind},     {"ok", ok},
                        {"error", st->error}, {"report", report}, {"succ", ok}};
    PrintJson(j);
  } else {
    std::printf("%s %s%s\n", kind.c_str(), ok ? "succeeded" : "FAILED: ", ok ? "" : st->error.c_str());
    if (!report.is_discarded() && !report.empty()) std::printf("%s\n", report.dump(2).c_str());
  }
  return ok ? kExitOk : kExitFailed;
}

// `unwedge --node`: an unknown node is a usage error (exit 2) before any
// workflow starts; the workflow checks the rest (broker/wedge_workflows.h).
int RunUnwedgeNode(const GlobalFlags& g, const std::string& node) {
  auto client = ConnectBroker(g);
  if (!client.ok()) return Fail(client.status());
  auto list = (*client)->ListNodes();
  if (!list.ok()) return Fail(list.status());
  bool known = false;
  for (const auto& n : list->nodes) known = known || n->node_id == node;
  if (!known) return Fail(Status::NotFound("no node '" + node + "' in the cluster (see `ledgerkeep nodes`)"));
  return RunWorkflow(g, "unwedge", {{"node", node}});
}

struct LedgerFlags {
  TargetFlags node_target;
  std::vector<std::string> components;
  int64_t node_wait_s = 120;
  TargetFlags blocks_target;
  TargetFlags health_target;
  int64_t short_wait_s = 15;  // blocks, wedge status, health
  int64_t wedge_timeout_s = 120;
  std::string unwedge_node;
};

}  // namespace

void RegisterLedgerCommands(CLI::App& app, const GlobalFlags& g, CommandTable& commands) {
  auto f = std::make_shared<LedgerFlags>();

  auto* node =
      app.add_subcommand("node", "start, stop or inspect the node components (ledgerd, client services)");
  node->require_subcommand(1);
  for (const char* action : {"start", "stop", "status"}) {
    auto* sub = node->add_subcommand(action, std::string(action) + " the components of the targets");
    AddTargetFlags(sub, f->node_target);
    sub->add_option("--component", f->components, "only this component (repeatable)");
    sub->add_option("--wait-s", f->node_wait_s, "how long to wait for every target")->capture_default_str();
    commands.Add(sub, [&g, f, name = std::string(action)] {
      return RunNode(g, name, f->node_target, f->components, f->node_wait_s);
    });
  }

  auto* blocks = app.add_subcommand("blocks",
                                    "per replica: genesis, last reachable and last block id, ledgerd running "
                                    "or not, and whether all agree");
  AddTargetFlags(blocks, f->blocks_target);
  blocks->add_option("--wait-s", f->short_wait_s, "how long to wait for every replica")
      ->capture_default_str();
  commands.Add(blocks, [&g, f] { return RunBlocks(g, f->blocks_target, f->short_wait_s); });

  auto* wedge = app.add_subcommand("wedge", "pause every replica at the same checkpoint");
  wedge->require_subcommand(1);
  auto* wedge_stop =
      wedge->add_subcommand("stop",
                            "the broker picks one stop point (next-but-one checkpoint above the highest "
                            "replica), sends it to every replica and waits until all are wedged");
  wedge_stop
      ->add_option("--timeout-s", f->wedge_timeout_s,
                   "give up (and name the replicas not wedged) after this long")
      ->capture_default_str();
  commands.Add(wedge_stop, [&g, f] { return RunWorkflow(g, "wedge", {{"timeout_s", f->wedge_timeout_s}}); });
  auto* wedge_status = wedge->add_subcommand(
      "status", "true per replica when it sits at its stop point (with --json: {\"r1\": true, ...})");
  wedge_status->add_option("--wait-s", f->short_wait_s, "how long to wait for every replica")
      ->capture_default_str();
  commands.Add(wedge_status, [&g, f] { return RunWedgeStatus(g, f->short_wait_s); });
  auto* unwedge = app.add_subcommand(
      "unwedge", "resume block production; refused unless every replica is wedged at the same point");
  unwedge->add_option("--node", f->unwedge_node,
                      "release only this stranded replica (wedged, or on its way to a stop point, while the "
                      "others are not all wedged there)");
  commands.Add(unwedge, [&g, f] {
    if (!f->unwedge_node.empty()) return RunUnwedgeNode(g, f->unwedge_node);
    return RunWorkflow(g, "unwedge", nlohmann::json::object());
  });

  auto* health = app.add_subcommand(
      "health",
      "blocks per second, fast/slow path counters and state per replica (healthy, catching up, not producing, "
      "...)");
  AddTargetFlags(health, f->health_target);
  health->add_option("--wait-s", f->short_wait_s, "how long to wait for every replica")
      ->capture_default_str();
  commands.Add(health, [&g, f] { return RunHealth(g, f->health_target, f->short_wait_s); });
}

}  // namespace ledgerkeep
