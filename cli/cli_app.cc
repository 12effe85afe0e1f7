#include "cli/cli_app.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "agents/backup_schedule.h"
#include "agents/backup_service.h"
#include "agents/client_backup.h"
#include "agents/retention.h"
#include "agents/snapshot_restore.h"
#include "cli/event_format.h"
#include "cli/keys_command.h"
#include "cli/number_flags.h"
#include "cli/table.h"
#include "common/backup_destination.h"
#include "common/broker_client.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "common/snapshot_places.h"

namespace ledgerkeep {
namespace {

struct GlobalFlags {
  std::string config;
  std::string key;
  bool json = false;
  int64_t timeout_ms = 5000;
};

struct TargetFlags {
  std::string node;
  std::string role;
  bool all = false;
};

void AddTargetFlags(CLI::App* sub, TargetFlags& t) {
  auto* node = sub->add_option("--node", t.node, "only this node");
  auto* role = sub->add_option("--role", t.role, "every node of this role (replica|client); no clones")
                   ->check(CLI::IsMember({"replica", "client"}));
  auto* all = sub->add_flag("--all", t.all, "every node (the default); clones only by --node");
  node->excludes(role)->excludes(all);
  role->excludes(all);
}

// The range of every numeric option, by name (the same range wherever the
// name appears). A value outside it, or not a whole number, is a usage error
// before anything is sent. Agents check the backup schedule's numbers again.
struct NumberLimit {
  const char* name;
  uint64_t min;
  uint64_t max;
};
constexpr NumberLimit kNumberLimits[] = {
    {"--timeout-ms", 1, 3'600'000},
    {"--delay-ms", 0, 3'600'000},
    {"--wait-s", 1, 604'800},  // 7 days
    {"--timeout-s", 1, 86'400},
    {"--wedge-timeout-s", 1, 86'400},
    {"--backup-timeout-s", 1, 604'800},
    {"--ssh-port", 1, 65'535},
    {"--keep", 0, kMaxKeepLast},
    {"--max-age-days", 0, kMaxRetentionDays},
    {"--min-free-mb", 0, kMaxMinFreeBytes >> 20},
    {"--since", 1, static_cast<uint64_t>(INT64_MAX)},
    {"--last", 1, 1'000'000},
};

// Puts its range on every numeric option of `app` and its subcommands
// (validator and help text). An Internal error names a numeric option
// without one, so a new option cannot skip the check.
Status ApplyNumberLimits(CLI::App* app) {
  for (CLI::Option* opt : app->get_options()) {
    const std::string type = opt->get_type_name();
    if (type != "INT" && type != "UINT" && type != "FLOAT") continue;
    const NumberLimit* limit = nullptr;
    for (const auto& l : kNumberLimits) {
      if (opt->check_name(l.name)) limit = &l;
    }
    if (limit == nullptr) {
      return Status::Internal("option " + opt->get_name() + " of `" + app->get_name() + "` has no range");
    }
    const uint64_t min = limit->min, max = limit->max;
    opt->description(opt->get_description() + " (" + std::to_string(min) + ".." + std::to_string(max) + ")");
    opt->check(CLI::Validator(
        [min, max](std::string& text) {
          auto v = ParseWholeNumber(text, min, max);
          return v.ok() ? std::string() : v.status().message();
        },
        "", "whole number"));
  }
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) {
    LK_RETURN_IF_ERROR(ApplyNumberLimits(sub));
  }
  return Status::OK();
}

wire::TargetT ToTarget(const TargetFlags& f) {
  wire::TargetT t;
  t.node_id = f.node;
  if (!f.role.empty()) t.role = *ParseRole(f.role);
  t.all = f.node.empty() && f.role.empty();
  return t;
}

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kUnavailable:
    case StatusCode::kPermissionDenied:
      return kExitUnreachable;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
      return kExitUsage;
    default:
      return kExitFailed;
  }
}

int Fail(const Status& s) {
  std::fprintf(stderr, "ledgerkeep: %s\n", s.message().c_str());
  return ExitCodeFor(s);
}

Result<ClientOptions> LoadClientOptions(const GlobalFlags& g) {
  ClientOptions o;
  auto config = LoadClusterConfig(g.config);
  if (!config.ok()) return config.status();
  o.config = *config;
  std::string key_file = g.key.empty() ? o.config.operator_key_file : g.key;
  if (key_file.empty()) {
    return Status::InvalidArgument("no operator key: pass --key FILE or set [operator] key_file in " +
                                   o.config.path);
  }
  auto key = LoadKeyFile(key_file, /*need_secret=*/true);
  if (!key.ok()) return key.status();
  o.key = *key;
  o.timeout_ms = g.timeout_ms;
  return o;
}

std::string Ago(int64_t now, int64_t then) {
  if (then <= 0) return "never";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs ago", static_cast<double>(now - then) / 1000.0);
  return buf;
}

// Where a node's snapshots are, home first (common/snapshot_places.h).
nlohmann::json PlacesJson(const std::vector<std::unique_ptr<wire::SnapshotPlaceT>>& places) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& p : places) {
    if (!p || !p->target) continue;
    arr.push_back({{"destination", p->target->destination},
                   {"home", p->home},
                   {"newest_snapshot_id", p->newest_snapshot_id}});
  }
  return arr;
}

// ---------------------------------------------------------------- keygen
int RunKeygen(const GlobalFlags& g, const std::string& out_dir, const std::vector<std::string>& names,
              bool force, bool bare) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& name : names) {
    auto pair = GenerateCurveKeyPair(name);
    if (!pair.ok()) return Fail(pair.status());
    Status s = WriteKeyFiles(out_dir, *pair, force);
    if (!s.ok()) return Fail(s);
    j[name] = pair->public_z85;
    if (bare && !g.json) {
      std::printf("%s\n", pair->public_z85.c_str());
    } else if (!g.json) {
      std::printf("%s: public %s\n  secret in %s/%s.key (mode 0600), public in %s/%s.pub\n", name.c_str(),
                  pair->public_z85.c_str(), out_dir.c_str(), name.c_str(), out_dir.c_str(), name.c_str());
    }
  }
  if (g.json) std::printf("%s\n", j.dump().c_str());
  return kExitOk;
}

// ---------------------------------------------------------------- nodes
int RunNodes(const GlobalFlags& g) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  auto client = BrokerClient::Connect(*opts);
  if (!client.ok()) return Fail(client.status());
  auto list = (*client)->ListNodes();
  if (!list.ok()) return Fail(list.status());
  if (g.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& n : list->nodes) {
      arr.push_back({{"node", n->node_id},
                     {"role", RoleName(n->role)},
                     {"state", NodeStateName(n->state)},
                     {"last_heartbeat_ms", n->last_heartbeat_ms},
                     {"last_heartbeat", FormatTimeMs(n->last_heartbeat_ms)},
                     {"version", n->version},
                     {"pending_commands", n->pending_commands},
                     {"clone", n->clone},
                     {"backup_destination", n->backup_target ? n->backup_target->destination : ""},
                     {"backup_places", PlacesJson(n->backup_places)}});
    }
    std::printf("%s\n", arr.dump().c_str());
    return kExitOk;
  }
  Table t({"NODE", "ROLE", "STATE", "LAST HEARTBEAT", "VERSION", "PENDING"});
  for (const auto& n : list->nodes) {
    t.Add({n->node_id, RoleName(n->role) + (n->clone ? " (clone)" : ""), NodeStateName(n->state),
           Ago(list->now_ms, n->last_heartbeat_ms), n->version.empty() ? "-" : n->version,
           std::to_string(n->pending_commands)});
  }
  t.Print(stdout);
  return kExitOk;
}

// ---------------------------------------------------------------- ping
int RunPing(const GlobalFlags& g, const TargetFlags& tf, uint32_t delay_ms, int64_t wait_s) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  auto client = BrokerClient::Connect(*opts);
  if (!client.ok()) return Fail(client.status());
  wire::PingT ping;
  ping.delay_ms = delay_ms;
  ping.note = "cli";
  wire::CommandBodyUnion body;
  body.Set(std::move(ping));
  const uint32_t timeout_ms = static_cast<uint32_t>(wait_s * 1000);
  auto issued = (*client)->Issue(ToTarget(tf), std::move(body), timeout_ms);
  if (!issued.ok()) return Fail(issued.status());
  if (!g.json) {
    std::fprintf(stderr, "ping: command %llu to %zu node(s); waiting up to %llds\n",
                 static_cast<unsigned long long>(issued->cmd_id), issued->targets.size(),
                 static_cast<long long>(wait_s));
  }
  auto st = (*client)->Wait(issued->cmd_id, wait_s * 1000 + 5000, nullptr);
  if (!st.ok()) return Fail(st.status());
  bool all_ok = st->finished;
  nlohmann::json j = {{"cmd_id", st->cmd_id}, {"finished", st->finished}};
  Table t({"NODE", "RESULT", "RTT MS", "MESSAGE"});
  for (const auto& target : st->targets) {
    std::string result = "pending";
    std::string message;
    int64_t rtt = -1;
    if (target->result) {
      result = wire::EnumNameResultStatus(target->result->status);
      message = target->result->message;
      rtt = target->done_at_ms - st->issued_at_ms;
      if (target->result->status != wire::ResultStatus::Ok) all_ok = false;
    } else {
      all_ok = false;
    }
    j["targets"][target->node_id] = {{"result", result}, {"rtt_ms", rtt}, {"message", message}};
    t.Add({target->node_id, result, rtt >= 0 ? std::to_string(rtt) : "-", message});
  }
  j["ok"] = all_ok;
  if (g.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    t.Print(stdout);
  }
  return all_ok ? kExitOk : kExitFailed;
}

// ---------------------------------------------------------------- commands

// Issues `body` to the targets, waits for all of them, and returns the
// final status (or the error to exit with).
Result<wire::CommandStatusT> RunCommand(const GlobalFlags& g, const wire::TargetT& target,
                                        wire::CommandBodyUnion body, int64_t wait_s) {
  LK_ASSIGN_OR_RETURN(auto opts, LoadClientOptions(g));
  LK_ASSIGN_OR_RETURN(auto client, BrokerClient::Connect(opts));
  LK_ASSIGN_OR_RETURN(auto issued,
                      client->Issue(target, std::move(body), static_cast<uint32_t>(wait_s * 1000)));
  return client->Wait(issued.cmd_id, wait_s * 1000 + 5000, nullptr);
}

bool TargetOk(const wire::TargetStatusT& t) { return t.result && t.result->status == wire::ResultStatus::Ok; }

std::string TargetResult(const wire::TargetStatusT& t) {
  if (!t.result) return "pending";
  return wire::EnumNameResultStatus(t.result->status);
}

std::string TargetMessage(const wire::TargetStatusT& t) { return t.result ? t.result->message : ""; }

// "<node>: <result>: <message>" of a target that did not succeed.
Status TargetFailure(const std::string& node, const wire::TargetStatusT& t) {
  return Status(StatusCode::kAborted, node + ": " + TargetResult(t) + ": " + TargetMessage(t));
}

// RunCommand to the one node `node`; its status, which has exactly one target.
Result<wire::CommandStatusT> RunOnNode(const GlobalFlags& g, const std::string& node,
                                       wire::CommandBodyUnion body, int64_t wait_s) {
  TargetFlags tf;
  tf.node = node;
  LK_ASSIGN_OR_RETURN(auto st, RunCommand(g, ToTarget(tf), std::move(body), wait_s));
  if (st.targets.size() != 1) {
    return Status::Internal("the broker reported " + std::to_string(st.targets.size()) +
                            " targets for node " + node);
  }
  return st;
}

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
  if (g.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    t.Print(stdout);
  }
  return all_ok ? kExitOk : kExitFailed;
}

int RunBlocks(const GlobalFlags& g, const TargetFlags& tf, int64_t wait_s) {
  wire::CommandBodyUnion body;
  body.Set(wire::GetBlockIdsT{});
  wire::TargetT target = ToTarget(tf);
  if (target.all) {  // block ids are a replica thing
    target.all = false;
    target.role = wire::Role::Replica;
  }
  auto st = RunCommand(g, target, std::move(body), wait_s);
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
  if (g.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    t.Print(stdout);
    std::printf("%s\n", agree ? "all replicas agree (same last block, no state-transfer gap)"
                              : "replicas DO NOT agree (or some did not answer)");
  }
  return all_ok ? kExitOk : kExitFailed;
}

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
  if (g.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    t.Print(stdout);
  }
  return all ? kExitOk : kExitFailed;
}

int RunHealth(const GlobalFlags& g, const TargetFlags& tf, int64_t wait_s) {
  wire::CommandBodyUnion body;
  body.Set(wire::GetHealthT{});
  wire::TargetT target = ToTarget(tf);
  if (target.all) {
    target.all = false;
    target.role = wire::Role::Replica;
  }
  auto st = RunCommand(g, target, std::move(body), wait_s);
  if (!st.ok()) return Fail(st.status());
  bool healthy = st->finished;
  nlohmann::json j = nlohmann::json::object();
  Table t({"NODE", "BLOCKS/S", "FAST PATHS", "SLOW PATHS", "STATE"});
  char rate[32];
  for (const auto& target_st : st->targets) {
    if (TargetOk(*target_st) && target_st->result->detail.type == wire::ResultDetail::NodeHealth) {
      const auto* h = target_st->result->detail.AsNodeHealth();
      std::snprintf(rate, sizeof rate, "%.1f", h->blocks_per_sec);
      const bool ok = h->running && h->blocks_per_sec > 0 && !h->slow_path_fault;
      std::string state = !h->running                ? "ledgerd not running"
                          : h->slow_path_fault       ? "slow path forced (fault flag)"
                          : h->blocks_per_sec <= 0   ? "not producing blocks"
                          : h->state_transfer_active ? "state transfer"
                                                     : "healthy";
      healthy = healthy && ok;
      j[target_st->node_id] = {{"blocks_per_sec", h->blocks_per_sec},   {"fast_paths", h->fast_paths},
                               {"slow_paths", h->slow_paths},           {"running", h->running},
                               {"slow_path_fault", h->slow_path_fault}, {"healthy", ok}};
      t.Add({target_st->node_id, rate, std::to_string(h->fast_paths), std::to_string(h->slow_paths), state});
    } else {
      healthy = false;
      j[target_st->node_id] = {{"error", TargetResult(*target_st) + ": " + TargetMessage(*target_st)}};
      t.Add({target_st->node_id, "-", "-", "-", TargetResult(*target_st) + ": " + TargetMessage(*target_st)});
    }
  }
  if (g.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    t.Print(stdout);
  }
  return healthy ? kExitOk : kExitFailed;
}

// Starts a broker workflow, shows its steps as they happen, prints its report.
int RunWorkflow(const GlobalFlags& g, const std::string& kind, const nlohmann::json& params) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  auto client = BrokerClient::Connect(*opts);
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
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s %s%s\n", kind.c_str(), ok ? "succeeded" : "FAILED: ", ok ? "" : st->error.c_str());
    if (!report.is_discarded() && !report.empty()) std::printf("%s\n", report.dump(2).c_str());
  }
  return ok ? kExitOk : kExitFailed;
}

// `unwedge --node`: an unknown node is a usage error (exit 2) before any
// workflow starts; the workflow checks the rest (broker/wedge_workflows.h).
int RunUnwedgeNode(const GlobalFlags& g, const std::string& node) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  auto client = BrokerClient::Connect(*opts);
  if (!client.ok()) return Fail(client.status());
  auto list = (*client)->ListNodes();
  if (!list.ok()) return Fail(list.status());
  bool known = false;
  for (const auto& n : list->nodes) known = known || n->node_id == node;
  if (!known) return Fail(Status::NotFound("no node '" + node + "' in the cluster (see `ledgerkeep nodes`)"));
  return RunWorkflow(g, "unwedge", {{"node", node}});
}

// ---------------------------------------------------------------- maintenance

std::string HumanBytes(double b);

// Runs the maintenance workflow, printing each step and per-node transfer
// progress as they happen (from the event log), then the report.
int RunMaintenance(const GlobalFlags& g, const nlohmann::json& params) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  auto client = BrokerClient::Connect(*opts);
  if (!client.ok()) return Fail(client.status());
  auto head = (*client)->FetchEvents(UINT64_MAX, 1, "");
  if (!head.ok()) return Fail(head.status());
  auto follower = EventFollower::Start(*opts, head->head_seq + 1, "");
  if (!follower.ok()) return Fail(follower.status());
  auto st = (*client)->StartWorkflow("maintenance", params.dump());
  if (!st.ok()) return Fail(st.status());
  const uint64_t id = st->run_id;
  std::map<std::string, int64_t> last_progress_ms;
  while (!st->finished) {
    auto ev = (*follower)->Next(200);
    if (ev.ok() && *ev) {
      const wire::Event& e = *(**ev)->body_as_Event();
      if (!g.json) {
        if (const auto* r = e.body_as_RunbookStep(); r != nullptr && r->run_id() == id) {
          std::printf("%s  %-15s %-8s %s\n", FormatTimeMs(e.at_ms()).substr(11, 12).c_str(),
                      r->step() ? r->step()->c_str() : "", r->state() ? r->state()->c_str() : "",
                      r->detail() ? r->detail()->c_str() : "");
        } else if (const auto* p = e.body_as_Progress();
                   p != nullptr && p->phase() && p->phase()->str() == "transfer") {
          const std::string node = e.node() ? e.node()->str() : "?";
          const int64_t now = MonotonicMs();
          if (now - last_progress_ms[node] >= 1000 || p->percent() >= 100) {
            last_progress_ms[node] = now;
            std::printf("              %-6s transfer %5.1f%%  %s  %s/s\n", node.c_str(), p->percent(),
                        HumanBytes(static_cast<double>(p->bytes_done())).c_str(),
                        HumanBytes(p->rate_bps()).c_str());
          }
        }
        std::fflush(stdout);
      }
      continue;
    }
    auto next = (*client)->GetWorkflowStatus(id);
    if (!next.ok()) {
      if (next.status().code() == StatusCode::kUnavailable) continue;  // broker restarting: it resumes
      return Fail(next.status());
    }
    st = std::move(next);
  }
  auto report = nlohmann::json::parse(st->report_json, nullptr, false);
  const bool ok = st->state == "succeeded";
  if (g.json) {
    std::printf("%s\n", nlohmann::json({{"run_id", id}, {"ok", ok}, {"error", st->error}, {"report", report}})
                            .dump()
                            .c_str());
  } else {
    std::printf("\nmaintenance run %llu %s%s\n", static_cast<unsigned long long>(id),
                ok ? "succeeded" : "FAILED: ", ok ? "" : st->error.c_str());
    if (!report.is_discarded()) std::printf("%s\n", report.dump(2).c_str());
  }
  return ok ? kExitOk : kExitFailed;
}

int RunMaintenanceAbort(const GlobalFlags& g) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  auto client = BrokerClient::Connect(*opts);
  if (!client.ok()) return Fail(client.status());
  auto st = (*client)->AbortWorkflow(0);
  if (!st.ok()) return Fail(st.status());
  if (g.json) {
    std::printf("%s\n", nlohmann::json({{"run_id", st->run_id}, {"abort_requested", true}}).dump().c_str());
  } else {
    std::printf("abort requested for %s run %llu; it rolls the cluster back to serving\n", st->kind.c_str(),
                static_cast<unsigned long long>(st->run_id));
  }
  return kExitOk;
}

// ---------------------------------------------------------------- backups

struct BackupFlags {
  std::string destination;
  std::string rsync_user;
  std::string ssh_key;
  uint16_t ssh_port = 0;
  std::string known_hosts;
  bool accept_new_host_key = false;
  std::string frequency;
  std::string time_zone = "UTC";
  std::string mode = "rsync";
  uint32_t keep = 0;
  uint64_t max_age_days = 0;
  uint64_t min_free_mb = 1024;
  int64_t wait_s = 3600;
};

std::unique_ptr<wire::BackupTargetT> MakeTarget(const BackupFlags& f) {
  auto t = std::make_unique<wire::BackupTargetT>();
  t->destination = f.destination;
  t->rsync_user = f.rsync_user;
  t->ssh_key = f.ssh_key;
  t->ssh_port = f.ssh_port;
  t->known_hosts = f.known_hosts;
  t->accept_new_host_key = f.accept_new_host_key;
  return t;
}

// The destination flags, checked here before anything is sent: the agent
// checks them again (and that the files exist on its node).
Status CheckDestinationFlags(const BackupFlags& f) {
  if (!f.ssh_key.empty()) LK_RETURN_IF_ERROR(ValidateSshFilePath(f.ssh_key, "--ssh-key"));
  if (!f.known_hosts.empty()) LK_RETURN_IF_ERROR(ValidateSshFilePath(f.known_hosts, "--known-hosts"));
  if (f.destination.empty()) {
    // They would be ignored: say so instead.
    if (!f.rsync_user.empty() || !f.ssh_key.empty() || f.ssh_port != 0 || !f.known_hosts.empty() ||
        f.accept_new_host_key) {
      return Status::InvalidArgument(
          "--rsync-user, --ssh-key, --ssh-port, --known-hosts and --accept-new-host-key describe a "
          "--destination; give the destination too");
    }
    return Status::OK();
  }
  // {node} stands for a node id: check the rest with a placeholder one.
  return ParseDestination(ExpandNodePlaceholder(f.destination, "node"), f.rsync_user, f.ssh_key, f.ssh_port)
      .status();
}

std::string HumanBytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

std::string HumanAge(int64_t ms) {
  if (ms < 0) return "-";
  char buf[32];
  if (ms < 120'000)
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(ms / 1000));
  else if (ms < 7'200'000)
    std::snprintf(buf, sizeof buf, "%lldm", static_cast<long long>(ms / 60'000));
  else
    std::snprintf(buf, sizeof buf, "%.1fh", static_cast<double>(ms) / 3'600'000);
  return buf;
}

nlohmann::json BackupResultJson(const wire::BackupResultT& r) {
  return {{"snapshot_id", r.snapshot_id},
          {"destination", r.destination},
          {"ok", r.ok},
          {"error", r.error},
          {"consistent", r.consistent},
          {"bytes_total", r.bytes_total},
          {"bytes_transferred", r.bytes_transferred},
          {"files_total", r.files_total},
          {"duration_ms", r.duration_ms},
          {"genesis", r.genesis},
          {"last_reachable", r.last_reachable},
          {"last_block_id", r.last_block_id},
          {"manifest_digest", r.manifest_digest},
          {"attempts", r.attempts},
          {"scheduled", r.scheduled}};
}

wire::TargetT ReplicasByDefault(const TargetFlags& tf) {
  wire::TargetT t = ToTarget(tf);
  if (t.all) {
    t.all = false;
    t.role = wire::Role::Replica;
  }
  return t;
}

// A table of per-node results of a backup configuration command.
int PrintConfigResults(const GlobalFlags& g, const wire::CommandStatusT& st) {
  bool all_ok = st.finished;
  nlohmann::json j = nlohmann::json::object();
  Table t({"NODE", "RESULT", "MODE", "SCHEDULE", "DESTINATION", "MESSAGE"});
  for (const auto& target : st.targets) {
    all_ok = all_ok && TargetOk(*target);
    std::string mode = "-", sched = "-", dest = "-";
    if (target->result && target->result->detail.type == wire::ResultDetail::BackupStatus) {
      const auto* b = target->result->detail.AsBackupStatus();
      mode = b->mode;
      sched = b->schedule.empty() ? "-" : b->schedule;
      dest = b->destination.empty() ? "-" : b->destination;
    }
    j[target->node_id] = {{"result", TargetResult(*target)},
                          {"mode", mode},
                          {"schedule", sched},
                          {"destination", dest},
                          {"message", TargetMessage(*target)}};
    t.Add({target->node_id, TargetResult(*target), mode, sched, dest, TargetMessage(*target)});
  }
  if (g.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    t.Print(stdout);
  }
  return all_ok ? kExitOk : kExitFailed;
}

int RunBackupSchedule(const GlobalFlags& g, const TargetFlags& tf, const BackupFlags& f) {
  // Checked here too (usage error, nothing sent); the agent checks again.
  if (auto sched = ParseSchedule(f.frequency, f.time_zone); !sched.ok()) return Fail(sched.status());
  wire::ScheduleBackupT s;
  s.target = MakeTarget(f);
  s.frequency = f.frequency;
  s.time_zone = f.time_zone;
  s.mode = f.mode == "checkpoint" ? wire::BackupMode::Checkpoint : wire::BackupMode::Rsync;
  s.retention = std::make_unique<wire::RetentionT>();
  s.retention->keep_last = f.keep;
  s.retention->max_age_s = f.max_age_days * 86400;
  s.min_free_bytes = f.min_free_mb << 20;
  if (s.mode == wire::BackupMode::Rsync && f.destination.empty()) {
    return Fail(Status::InvalidArgument(
        "backup schedule needs --destination (use {node} for one directory per node)"));
  }
  wire::CommandBodyUnion body;
  body.Set(std::move(s));
  auto st = RunCommand(g, ReplicasByDefault(tf), std::move(body), 60);
  if (!st.ok()) return Fail(st.status());
  return PrintConfigResults(g, *st);
}

int RunBackupSimple(const GlobalFlags& g, wire::TargetT target, wire::CommandBodyUnion body) {
  auto st = RunCommand(g, target, std::move(body), 60);
  if (!st.ok()) return Fail(st.status());
  return PrintConfigResults(g, *st);
}

// backup run-now: a live progress line per node until every target is done.
int RunBackupNowCli(const GlobalFlags& g, const TargetFlags& tf, const BackupFlags& f) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  auto client = BrokerClient::Connect(*opts);
  if (!client.ok()) return Fail(client.status());
  wire::RunBackupNowT r;
  if (!f.destination.empty()) r.target = MakeTarget(f);
  r.reason = "operator";
  wire::CommandBodyUnion body;
  body.Set(std::move(r));
  auto issued = (*client)->Issue(ReplicasByDefault(tf), std::move(body), static_cast<uint32_t>(60'000));
  if (!issued.ok()) return Fail(issued.status());
  const bool tty = ::isatty(1);
  size_t printed = 0;
  auto show = [&](const wire::CommandStatusT& st) {
    if (g.json) return;
    std::vector<std::string> lines;
    for (const auto& t : st.targets) {
      char line[256];
      if (t->result) {
        std::string text = TargetResult(*t);
        if (t->result->detail.type == wire::ResultDetail::BackupResult) {
          const auto* b = t->result->detail.AsBackupResult();
          text = b->ok ? "done " + b->snapshot_id + ", " +
                             HumanBytes(static_cast<double>(b->bytes_transferred)) + " sent of " +
                             HumanBytes(static_cast<double>(b->bytes_total))
                       : "FAILED: " + b->error;
        } else if (!t->result->message.empty()) {
          text += ": " + t->result->message;
        }
        std::snprintf(line, sizeof line, "%-6s %s", t->node_id.c_str(), text.c_str());
      } else if (t->last_progress) {
        const auto& p = *t->last_progress;
        std::snprintf(line, sizeof line, "%-6s %-9s %5.1f%%  %10s  %10s/s  ETA %4.0fs", t->node_id.c_str(),
                      p.phase.c_str(), p.percent, HumanBytes(static_cast<double>(p.bytes_done)).c_str(),
                      HumanBytes(p.rate_bps).c_str(), p.eta_s < 0 ? 0.0 : p.eta_s);
      } else {
        std::snprintf(line, sizeof line, "%-6s %s", t->node_id.c_str(),
                      t->state == wire::TargetState::Acked ? "starting" : "waiting for the agent");
      }
      lines.push_back(line);
    }
    if (tty && printed > 0) std::printf("\x1b[%zuA", printed);  // redraw in place
    for (const auto& l : lines) std::printf(tty ? "\x1b[2K%s\n" : "%s\n", l.c_str());
    printed = lines.size();
    std::fflush(stdout);
  };
  auto st = (*client)->Wait(issued->cmd_id, f.wait_s * 1000, show);
  if (!st.ok()) return Fail(st.status());
  bool all_ok = st->finished;
  nlohmann::json j = nlohmann::json::object();
  for (const auto& t : st->targets) {
    all_ok = all_ok && TargetOk(*t);
    if (t->result && t->result->detail.type == wire::ResultDetail::BackupResult) {
      j[t->node_id] = BackupResultJson(*t->result->detail.AsBackupResult());
    } else {
      j[t->node_id] = {{"ok", false}, {"error", TargetResult(*t) + ": " + TargetMessage(*t)}};
    }
  }
  if (g.json) std::printf("%s\n", j.dump().c_str());
  return all_ok ? kExitOk : kExitFailed;
}

int RunBackupClient(const GlobalFlags& g, const TargetFlags& tf, const BackupFlags& f,
                    const std::string& name, const std::vector<std::string>& paths) {
  if (auto file = NewClientArchiveFileName(name); !file.ok()) return Fail(file.status());
  wire::ClientBackupT cb;
  cb.archive_name = name;
  cb.paths = paths;
  if (!f.destination.empty()) cb.target = MakeTarget(f);
  wire::CommandBodyUnion body;
  body.Set(std::move(cb));
  wire::TargetT target = ToTarget(tf);
  if (target.all) {
    target.all = false;
    target.role = wire::Role::Client;
  }
  auto st = RunCommand(g, target, std::move(body), f.wait_s);
  if (!st.ok()) return Fail(st.status());
  bool all_ok = st->finished;
  nlohmann::json j = nlohmann::json::object();
  Table t({"NODE", "RESULT", "ARCHIVE", "BYTES", "SHA256", "MESSAGE"});
  for (const auto& target_st : st->targets) {
    all_ok = all_ok && TargetOk(*target_st);
    const auto* r = target_st->result ? target_st->result->detail.AsClientBackupResult() : nullptr;
    if (r != nullptr) {
      j[target_st->node_id] = {{"archive", r->archive},
                               {"sha256", r->sha256},
                               {"bytes", r->bytes},
                               {"entries", r->entries},
                               {"source_bytes", r->source_bytes},
                               {"ok", true}};
      t.Add({target_st->node_id, "Ok", r->archive, HumanBytes(static_cast<double>(r->bytes)),
             r->sha256.substr(0, 16), ""});
    } else {
      j[target_st->node_id] = {{"ok", false},
                               {"error", TargetResult(*target_st) + ": " + TargetMessage(*target_st)}};
      t.Add({target_st->node_id, TargetResult(*target_st), "-", "-", "-", TargetMessage(*target_st)});
    }
  }
  if (g.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    t.Print(stdout);
  }
  return all_ok ? kExitOk : kExitFailed;
}

int RunBackupStatus(const GlobalFlags& g, const TargetFlags& tf) {
  wire::CommandBodyUnion body;
  body.Set(wire::GetBackupStatusT{});
  auto st = RunCommand(g, ToTarget(tf), std::move(body), 15);
  if (!st.ok()) return Fail(st.status());
  bool all_ok = st->finished;
  const int64_t now = Clock::System()->NowMs();
  nlohmann::json j = nlohmann::json::object();
  Table t(
      {"NODE", "MODE", "SCHEDULE", "NEXT RUN", "LAST SNAPSHOT", "AGE", "BYTES", "CONSISTENT", "LAST RUN"});
  for (const auto& target : st->targets) {
    if (!(TargetOk(*target) && target->result->detail.type == wire::ResultDetail::BackupStatus)) {
      all_ok = false;
      j[target->node_id] = {{"error", TargetResult(*target) + ": " + TargetMessage(*target)}};
      t.Add({target->node_id, "?", "-", "-", "-", "-", "-", "-",
             TargetResult(*target) + ": " + TargetMessage(*target)});
      continue;
    }
    const auto* b = target->result->detail.AsBackupStatus();
    std::string last_id = "-", age = "-", bytes = "-", consistent = "-", last_run = "never";
    nlohmann::json jn = {{"mode", b->mode},
                         {"schedule", b->schedule},
                         {"destination", b->destination},
                         {"next_run_ms", b->next_run_ms},
                         {"next_run", FormatTimeMs(b->next_run_ms)},
                         {"running", b->running},
                         {"places", PlacesJson(b->places)}};
    if (b->last_ok) {
      last_id = b->last_ok->snapshot_id;
      // Snapshot ids are UTC times: the age is now minus that time.
      std::tm tm{};
      strptime(last_id.substr(0, 15).c_str(), "%Y%m%dT%H%M%S", &tm);
      const int64_t taken_ms = static_cast<int64_t>(timegm(&tm)) * 1000;
      age = HumanAge(now - taken_ms);
      bytes = HumanBytes(static_cast<double>(b->last_ok->bytes_total));
      consistent = b->last_ok->consistent ? "yes" : "NO";
      jn["last_snapshot"] = BackupResultJson(*b->last_ok);
      jn["last_snapshot_age_s"] = (now - taken_ms) / 1000;
    }
    if (b->last) {
      last_run = b->last->ok ? "ok" : "FAILED: " + b->last->error;
      jn["last_run"] = BackupResultJson(*b->last);
    }
    if (b->running) last_run = "running";
    j[target->node_id] = jn;
    t.Add({target->node_id, b->mode, b->schedule.empty() ? "-" : b->schedule,
           b->next_run_ms ? FormatTimeMs(b->next_run_ms) : "-", last_id, age, bytes, consistent, last_run});
  }
  if (g.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    t.Print(stdout);
  }
  return all_ok ? kExitOk : kExitFailed;
}

int RunBackupList(const GlobalFlags& g, const std::string& node, bool incomplete) {
  wire::CommandBodyUnion body;
  body.Set(wire::ListSnapshotsT{});
  auto st = RunOnNode(g, node, std::move(body), 120);
  if (!st.ok()) return Fail(st.status());
  const auto& target = *st->targets[0];
  const auto* l = TargetOk(target) ? target.result->detail.AsSnapshotList() : nullptr;
  if (l == nullptr) return Fail(TargetFailure(node, target));
  nlohmann::json arr = nlohmann::json::array();
  Table t({"SNAPSHOT", "COMPLETE", "CONSISTENT", "GENESIS", "LAST REACHABLE", "LAST BLOCK", "FILES", "BYTES",
           "DESTINATION"});
  std::string latest;  // what restore --snapshot latest takes: the newest complete one anywhere
  for (const auto& s : l->snapshots) {
    if (s->complete && s->snapshot_id > latest) latest = s->snapshot_id;
  }
  for (const auto& s : l->snapshots) {
    if (!s->complete && !incomplete) continue;  // never offered (DESIGN §6): --incomplete shows them
    arr.push_back({{"snapshot_id", s->snapshot_id},
                   {"complete", s->complete},
                   {"consistent", s->consistent},
                   {"genesis", s->genesis},
                   {"last_reachable", s->last_reachable},
                   {"last_block_id", s->last_block_id},
                   {"files", s->files_total},
                   {"bytes", s->bytes_total},
                   {"destination", s->destination},
                   {"latest", s->snapshot_id == latest}});
    t.Add({s->snapshot_id + (s->snapshot_id == latest ? " (latest)" : ""), s->complete ? "yes" : "NO (no DONE)",
           s->complete ? (s->consistent ? "yes" : "NO") : "-", std::to_string(s->genesis),
           std::to_string(s->last_reachable), std::to_string(s->last_block_id),
           std::to_string(s->files_total), HumanBytes(static_cast<double>(s->bytes_total)),
           s->destination == l->destination ? "home" : s->destination});
  }
  if (g.json) {
    std::printf("%s\n", nlohmann::json({{"node", node},
                                        {"destination", l->destination},
                                        {"snapshots", arr},
                                        {"unreachable", l->unreachable}})
                            .dump()
                            .c_str());
  } else {
    std::printf("%s: home %s\n", node.c_str(), l->destination.c_str());
    t.Print(stdout);
    for (const auto& u : l->unreachable) std::printf("NOT LISTED: %s\n", u.c_str());
  }
  return l->unreachable.empty() ? kExitOk : kExitFailed;
}

// ---------------------------------------------------------------- verify / restore

nlohmann::json VerificationJson(const wire::SnapshotVerificationT& v) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& p : v.problems)
    problems.push_back({{"file", p->file}, {"block", p->block}, {"what", p->what}});
  return {{"snapshot_id", v.snapshot_id},         {"ok", v.ok},
          {"files_checked", v.files_checked},     {"bytes_checked", v.bytes_checked},
          {"blocks_verified", v.blocks_verified}, {"genesis", v.genesis},
          {"last_reachable", v.last_reachable},   {"last_block_id", v.last_block_id},
          {"duration_ms", v.duration_ms},         {"problems", problems}};
}

void PrintProblems(const wire::SnapshotVerificationT& v) {
  for (const auto& p : v.problems) {
    std::printf("  %s: %s%s\n", p->file.empty() ? "snapshot" : p->file.c_str(), p->what.c_str(),
                p->block != 0 && p->what.find("block " + std::to_string(p->block)) == std::string::npos
                    ? (" (block " + std::to_string(p->block) + ")").c_str()
                    : "");
  }
}

// backup verify: runs on the agent that owns the destination.
int RunBackupVerify(const GlobalFlags& g, const std::string& node, const std::string& snapshot, bool all,
                    int64_t wait_s) {
  wire::VerifyBackupT v;
  v.snapshot_id = snapshot;
  v.all = all;
  wire::CommandBodyUnion body;
  body.Set(std::move(v));
  auto st = RunOnNode(g, node, std::move(body), wait_s);
  if (!st.ok()) return Fail(st.status());
  const auto& t = st->targets[0];
  const auto* r = t->result ? t->result->detail.AsBackupVerifyResult() : nullptr;
  if (r == nullptr) {
    return Fail(TargetFailure(node, *t));
  }
  bool all_ok = true;
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& s : r->snapshots) {
    all_ok = all_ok && s->ok;
    arr.push_back(VerificationJson(*s));
  }
  if (g.json) {
    std::printf("%s\n", nlohmann::json({{"node", node},
                                        {"destination", r->destination},
                                        {"method", r->method},
                                        {"ok", all_ok},
                                        {"snapshots", arr}})
                            .dump()
                            .c_str());
    return all_ok ? kExitOk : kExitFailed;
  }
  std::printf("%s: %s (verified %s)\n", node.c_str(), r->destination.c_str(), r->method.c_str());
  Table tab({"SNAPSHOT", "RESULT", "FILES", "BYTES", "BLOCKS VERIFIED", "LAST BLOCK", "TIME"});
  for (const auto& s : r->snapshots) {
    tab.Add({s->snapshot_id, s->ok ? "ok" : "CORRUPT", std::to_string(s->files_checked),
             HumanBytes(static_cast<double>(s->bytes_checked)), std::to_string(s->blocks_verified),
             std::to_string(s->last_block_id), std::to_string(s->duration_ms) + " ms"});
  }
  tab.Print(stdout);
  for (const auto& s : r->snapshots) {
    if (s->ok) continue;
    std::printf("snapshot %s:\n", s->snapshot_id.c_str());
    PrintProblems(*s);
  }
  return all_ok ? kExitOk : kExitFailed;
}

nlohmann::json RestoreJson(const wire::RestoreResultT& r) {
  nlohmann::json j = {{"source_node", r.source_node},
                      {"source", r.source},
                      {"snapshot_id", r.snapshot_id},
                      {"db", r.db},
                      {"bytes", r.bytes},
                      {"files", r.files},
                      {"fetch_ms", r.fetch_ms},
                      {"verify_ms", r.verify_ms},
                      {"duration_ms", r.duration_ms},
                      {"ledgerd_started", r.ledgerd_started}};
  if (r.verification) j["verification"] = VerificationJson(*r.verification);
  return j;
}

int PrintRestore(const GlobalFlags& g, const std::string& where, const wire::RestoreResultT& r,
                 const Status& s) {
  if (g.json) {
    auto j = RestoreJson(r);
    j["target"] = where;
    j["ok"] = s.ok();
    if (!s.ok()) j["error"] = s.message();
    std::printf("%s\n", j.dump().c_str());
    return s.ok() ? kExitOk : kExitFailed;
  }
  if (!s.ok()) {
    std::fprintf(stderr, "ledgerkeep: restore onto %s failed: %s\n", where.c_str(), s.message().c_str());
    return kExitFailed;
  }
  const auto* v = r.verification.get();
  std::printf("restored %s snapshot %s from %s onto %s (%s)\n", r.source_node.c_str(), r.snapshot_id.c_str(),
              r.source.c_str(), where.c_str(), r.db.c_str());
  std::printf("  fetched %s in %lld ms; verified %llu files, %llu blocks in %lld ms: %s\n",
              HumanBytes(static_cast<double>(r.bytes)).c_str(), static_cast<long long>(r.fetch_ms),
              static_cast<unsigned long long>(v ? v->files_checked : 0),
              static_cast<unsigned long long>(v ? v->blocks_verified : 0),
              static_cast<long long>(r.verify_ms), v && v->ok ? "ok" : "FAILED");
  if (v) {
    std::printf("  block ids: genesis %llu, last reachable %llu, last %llu (equal to the manifest)\n",
                static_cast<unsigned long long>(v->genesis),
                static_cast<unsigned long long>(v->last_reachable),
                static_cast<unsigned long long>(v->last_block_id));
  }
  if (r.ledgerd_started) std::printf("  ledgerd --read-only serves the restored DB\n");
  return kExitOk;
}

// restore --to-node: the clone agent fetches, verifies and serves it.
int RunRestoreToNode(const GlobalFlags& g, const std::string& source, const std::string& snapshot,
                     const std::string& clone, int64_t wait_s) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  auto client = BrokerClient::Connect(*opts);
  if (!client.ok()) return Fail(client.status());
  wire::RestoreSnapshotT r;
  r.source_node = source;
  r.snapshot_id = snapshot;  // the broker fills in where source's backups are
  wire::CommandBodyUnion body;
  body.Set(std::move(r));
  TargetFlags tf;
  tf.node = clone;
  auto issued = (*client)->Issue(ToTarget(tf), std::move(body), static_cast<uint32_t>(wait_s * 1000));
  if (!issued.ok()) return Fail(issued.status());
  std::string last_line;
  auto show = [&](const wire::CommandStatusT& st) {
    if (g.json || st.targets.empty() || !st.targets[0]->last_progress || st.targets[0]->result) return;
    const auto& p = *st.targets[0]->last_progress;
    char line[200];
    std::snprintf(line, sizeof line, "%-6s %-8s %5.1f%%  %10s  %10s/s", clone.c_str(), p.phase.c_str(),
                  p.percent, HumanBytes(static_cast<double>(p.bytes_done)).c_str(),
                  HumanBytes(p.rate_bps).c_str());
    if (line != last_line) std::printf("%s\n", line);
    last_line = line;
    std::fflush(stdout);
  };
  auto st = (*client)->Wait(issued->cmd_id, wait_s * 1000 + 5000, show);
  if (!st.ok()) return Fail(st.status());
  const auto& t = st->targets.at(0);
  const auto* res = t->result ? t->result->detail.AsRestoreResult() : nullptr;
  Status s =
      TargetOk(*t) ? Status::OK() : Status(StatusCode::kAborted, TargetResult(*t) + ": " + TargetMessage(*t));
  if (res == nullptr) {
    wire::RestoreResultT empty;
    empty.source_node = source;
    return PrintRestore(g, clone, empty, s.ok() ? Status::Internal("no restore result") : s);
  }
  return PrintRestore(g, clone, *res, s);
}

// restore --to-dir: on this machine, straight from the source node's
// destination as the broker recorded it (the source node may be down).
int RunRestoreToDir(const GlobalFlags& g, const std::string& source, const std::string& snapshot,
                    const std::string& dir) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  auto client = BrokerClient::Connect(*opts);
  if (!client.ok()) return Fail(client.status());
  auto list = (*client)->ListNodes();
  if (!list.ok()) return Fail(list.status());
  const wire::NodeInfoT* n = nullptr;
  for (const auto& x : list->nodes)
    if (x->node_id == source) n = x.get();
  if (n == nullptr) return Fail(Status::NotFound("no agent node '" + source + "' (see `ledgerkeep nodes`)"));
  // Every place of its snapshots: "latest" is the newest over all of them.
  SnapshotPlaces places = PlacesFromWire(n->backup_places);
  if (places.empty() && n->backup_target && !n->backup_target->destination.empty()) {
    SetHomePlace(places, *n->backup_target);
  }
  if (places.empty()) return Fail(Status::FailedPrecondition("no backup destination is recorded for " + source));
  if (dir.empty() || dir[0] != '/') return Fail(Status::InvalidArgument("--to-dir must be an absolute path"));
  // Scratch space of our own next to it (deleted afterwards: never a
  // directory that was there before).
  const std::string parent = std::filesystem::path(dir).lexically_normal().parent_path().string();
  if (Status s = CreateDirectories(parent.empty() ? "/" : parent, 0700); !s.ok()) return Fail(s);
  std::string tmpl = (parent == "/" ? "" : parent) + "/.ledgerkeep-restore-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return Fail(Status::FromErrno(errno, "create a work directory in " + parent));
  const std::string work_dir = tmpl;
  std::vector<SnapshotAccess> access;
  for (const auto& place : places) {
    auto dest = ParseDestination(place.target, source);
    if (!dest.ok()) return Fail(dest.status());
    SnapshotAccess a;
    a.destination = *dest;
    a.work_dir = work_dir;
    a.newest_recorded = place.newest_snapshot_id;
    a.on_progress = [&](const wire::ProgressT& p) {
      if (!g.json && p.phase != "fetch") std::printf("%s\n", p.phase.c_str());
    };
    access.push_back(std::move(a));
  }
  RestoreRequest req;
  req.source_node = source;
  req.snapshot_id = snapshot;
  req.db_dir = dir;
  wire::RestoreResultT res;
  Status s = RestoreSnapshot(ProcessRunner::Real(), access, req, &res);
  std::error_code ec;
  std::filesystem::remove_all(work_dir, ec);
  return PrintRestore(g, dir, res, s);
}

// restore --client: the client agent fetches, checks and extracts it.
int RunRestoreClient(const GlobalFlags& g, const std::string& node, const std::string& archive_name,
                     const std::string& dir, int64_t wait_s) {
  wire::RestoreClientArchiveT r;
  r.archive_name = archive_name;
  r.to_dir = dir;
  wire::CommandBodyUnion body;
  body.Set(std::move(r));
  auto st = RunOnNode(g, node, std::move(body), wait_s);
  if (!st.ok()) return Fail(st.status());
  const auto& t = st->targets[0];
  const auto* res = t->result ? t->result->detail.AsClientRestoreResult() : nullptr;
  if (!TargetOk(*t) || res == nullptr) {
    if (g.json) {
      std::printf("%s\n",
                  nlohmann::json(
                      {{"node", node}, {"ok", false}, {"error", TargetResult(*t) + ": " + TargetMessage(*t)}})
                      .dump()
                      .c_str());
    } else {
      std::fprintf(stderr, "ledgerkeep: %s: client restore failed: %s\n", node.c_str(),
                   TargetMessage(*t).c_str());
    }
    return kExitFailed;
  }
  if (g.json) {
    std::printf("%s\n", nlohmann::json({{"node", node},
                                        {"ok", true},
                                        {"archive", res->archive},
                                        {"sha256", res->sha256},
                                        {"to_dir", res->to_dir},
                                        {"entries", res->entries},
                                        {"bytes", res->bytes},
                                        {"duration_ms", res->duration_ms}})
                            .dump()
                            .c_str());
  } else {
    std::printf("%s: restored %s (sha256 ok) into %s: %llu entries, %s\n", node.c_str(), res->archive.c_str(),
                res->to_dir.c_str(), static_cast<unsigned long long>(res->entries),
                HumanBytes(static_cast<double>(res->bytes)).c_str());
  }
  return kExitOk;
}

// ---------------------------------------------------------------- events

// The seq of the oldest of the newest `n` events matching `filter` (the
// head + 1 when none does): with a filter the broker pages backwards from the
// head, so they are found however many newer events do not match.
Result<uint64_t> StartOfNewest(BrokerClient& client, uint64_t n, const std::string& filter) {
  if (filter.empty()) {  // the log is dense: no need to read it
    LK_ASSIGN_OR_RETURN(auto head, client.FetchEvents(UINT64_MAX, 1, ""));
    return head.head_seq > n ? head.head_seq - n + 1 : 1;
  }
  uint64_t upto = UINT64_MAX, found = 0, start = 0, head = 0;
  while (true) {
    const auto want = static_cast<uint32_t>(std::min<uint64_t>(n - found, 10'000));
    LK_ASSIGN_OR_RETURN(auto page, client.FetchNewestEvents(upto, want, filter));
    if (head == 0) head = page.head_seq;
    found += page.events.size();
    if (!page.events.empty()) start = page.events.front()->body_as_Event()->seq();
    if (found >= n || page.next_seq == 0) break;
    upto = page.next_seq;
  }
  return start != 0 ? start : head + 1;
}

int RunEvents(const GlobalFlags& g, std::optional<uint64_t> since, bool from_start, bool follow,
              const std::string& filter, uint64_t last_n) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  uint64_t from = 1;
  if (since) {
    from = *since;
  } else if (!from_start) {
    // Default: the last N events (that match the filter).
    auto client = BrokerClient::Connect(*opts);
    if (!client.ok()) return Fail(client.status());
    auto start = StartOfNewest(**client, last_n, filter);
    if (!start.ok()) return Fail(start.status());
    from = *start;
  }
  auto follower = EventFollower::Start(*opts, from, filter);
  if (!follower.ok()) return Fail(follower.status());
  auto print = [&](const DecodedEnvelope& env) {
    const wire::Event& ev = *env->body_as_Event();
    if (g.json) {
      std::printf("%s\n", EventToJson(ev).dump().c_str());
    } else {
      std::printf("%8llu  %s  %-8s %-8s %s\n", static_cast<unsigned long long>(ev.seq()),
                  FormatTimeMs(ev.at_ms()).c_str(), ev.kind() ? ev.kind()->c_str() : "",
                  ev.node() ? ev.node()->c_str() : "", DescribeEvent(ev).c_str());
    }
    std::fflush(stdout);
  };
  while (true) {
    auto ev = (*follower)->Next(follow ? 1000 : 0);
    if (!ev.ok()) return Fail(ev.status());
    if (*ev) {
      print(**ev);
      continue;
    }
    if (!follow) break;
  }
  return kExitOk;
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{
      "ledgerkeep: operate a ledgerkeep cluster (coordinated, verifiable backups of a "
      "replicated RocksDB ledger).\n"
      "The broker and keys come from --config FILE or $LEDGERKEEP_CONFIG "
      "(`./run cluster up` prints the export line).\n"
      "Exit codes: 0 ok, 1 a target failed, 2 usage error, 3 broker unreachable."};
  app.require_subcommand(1);
  GlobalFlags g;
  app.add_option("--config", g.config, "cluster config (TOML)")->envname("LEDGERKEEP_CONFIG");
  app.add_option("--key", g.key, "operator key file (default: [operator] key_file of the config)")
      ->envname("LEDGERKEEP_KEY");
  app.add_flag("--json", g.json, "machine-readable output");
  app.add_option("--timeout-ms", g.timeout_ms, "how long to wait for the broker to answer")
      ->capture_default_str();

  std::string out_dir = ".";
  std::vector<std::string> names;
  bool force = false;
  auto* keygen = app.add_subcommand("keygen", "write CURVE key pairs: NAME.key (secret, 0600) and NAME.pub");
  keygen->add_option("--out", out_dir, "directory for the key files")->capture_default_str();
  keygen->add_option("names", names, "key names (node ids, 'broker', 'operator', ...)")->required();
  keygen->add_flag("--force", force, "replace existing key files");
  bool bare = false;
  keygen->add_flag("--bare", bare, "print only each public key (Z85), one a line: what `keys add --pub` takes");

  auto* nodes = app.add_subcommand("nodes", "list the agent nodes: role, liveness, last heartbeat, version");

  TargetFlags ping_target;
  uint32_t delay_ms = 0;
  int64_t wait_s = 10;
  auto* ping =
      app.add_subcommand("ping", "send a Ping through every target's dispatch path and show the round trips");
  AddTargetFlags(ping, ping_target);
  ping->add_option("--delay-ms", delay_ms, "make each agent's handler take this long")->capture_default_str();
  ping->add_option("--wait-s", wait_s, "deadline: targets that have not answered by then fail")
      ->capture_default_str();

  std::optional<uint64_t> since;
  bool from_start = false;
  bool follow = false;
  std::string filter;
  uint64_t last_n = 50;
  auto* events = app.add_subcommand("events", "show the durable event log (default: the last 50 events)");
  auto* since_opt = events->add_option("--since", since, "start at this sequence number");
  auto* start_opt = events->add_flag("--from-start", from_start, "start at the oldest retained event");
  since_opt->excludes(start_opt);
  events->add_flag("--follow,-f", follow, "keep printing new events as they happen");
  events->add_option("--filter", filter,
                     "only events whose '<kind>.<node>' starts with this (e.g. status, command.r1)");
  events->add_option("--last", last_n, "how many recent events (that match --filter) to show by default")
      ->capture_default_str();

  // Node management.
  auto* node =
      app.add_subcommand("node", "start, stop or inspect the node components (ledgerd, client services)");
  node->require_subcommand(1);
  TargetFlags node_target;
  std::vector<std::string> components;
  int64_t node_wait_s = 120;
  std::vector<CLI::App*> node_subs;
  for (const char* action : {"start", "stop", "status"}) {
    auto* sub = node->add_subcommand(action, std::string(action) + " the components of the targets");
    AddTargetFlags(sub, node_target);
    sub->add_option("--component", components, "only this component (repeatable)");
    sub->add_option("--wait-s", node_wait_s, "how long to wait for every target")->capture_default_str();
    node_subs.push_back(sub);
  }

  TargetFlags blocks_target;
  int64_t short_wait_s = 15;
  auto* blocks = app.add_subcommand("blocks",
                                    "per replica: genesis, last reachable and last block id, ledgerd running "
                                    "or not, and whether all agree");
  AddTargetFlags(blocks, blocks_target);
  blocks->add_option("--wait-s", short_wait_s, "how long to wait for every replica")->capture_default_str();

  auto* wedge = app.add_subcommand("wedge", "pause every replica at the same checkpoint");
  wedge->require_subcommand(1);
  int64_t wedge_timeout_s = 120;
  auto* wedge_stop =
      wedge->add_subcommand("stop",
                            "the broker picks one stop point (next-but-one checkpoint above the highest "
                            "replica), sends it to every replica and waits until all are wedged");
  wedge_stop
      ->add_option("--timeout-s", wedge_timeout_s,
                   "give up (and name the replicas not wedged) after this long")
      ->capture_default_str();
  auto* wedge_status = wedge->add_subcommand(
      "status", "true per replica when it sits at its stop point (with --json: {\"r1\": true, ...})");
  wedge_status->add_option("--wait-s", short_wait_s, "how long to wait for every replica")
      ->capture_default_str();
  auto* unwedge = app.add_subcommand(
      "unwedge", "resume block production; refused unless every replica is wedged at the same point");
  std::string unwedge_node;
  unwedge->add_option("--node", unwedge_node,
                      "release only this stranded replica (wedged, or on its way to a stop point, while the "
                      "others are not all wedged there)");

  TargetFlags health_target;
  auto* health = app.add_subcommand("health", "blocks per second and fast/slow path counters per replica");
  AddTargetFlags(health, health_target);
  health->add_option("--wait-s", short_wait_s, "how long to wait for every replica")->capture_default_str();

  // Backups.
  auto* backup =
      app.add_subcommand("backup", "intermittent backups of the replicas (and client destinations)");
  backup->require_subcommand(1);
  BackupFlags bf;
  TargetFlags backup_target;
  auto add_dest = [&](CLI::App* sub, bool required) {
    auto* d = sub->add_option("--destination", bf.destination,
                              "/path, user@host:/dir or rsync://host/module/dir; {node} becomes the node id");
    if (required) d->required();
    sub->add_option("--rsync-user", bf.rsync_user, "login on the backup server");
    sub->add_option("--ssh-key", bf.ssh_key,
                    "private key file for SSH destinations: an absolute path on the node (spaces are fine)");
    sub->add_option("--ssh-port", bf.ssh_port, "SSH port (default 22)");
    sub->add_option("--known-hosts", bf.known_hosts,
                    "known_hosts file on the node that holds the backup host's key (host keys are always "
                    "checked; default: the node's [backup] ssh_options, else ssh's own files)");
    sub->add_flag("--accept-new-host-key", bf.accept_new_host_key,
                  "trust the backup host's key on first use and record it (in --known-hosts, else the "
                  "agent's <data-dir>/backup/work/known_hosts); a changed key still fails");
  };
  auto* b_schedule =
      backup->add_subcommand("schedule", "schedule backups on replicas (runs even while the broker is down)");
  add_dest(b_schedule, false);
  b_schedule->add_option("--frequency", bf.frequency, "hourly | daily | daily@HH:MM | <N>m")->required();
  b_schedule->add_option("--time-zone", bf.time_zone, "IANA time zone of the schedule")
      ->capture_default_str();
  b_schedule
      ->add_option("--mode", bf.mode,
                   "rsync (snapshots to the destination) or checkpoint (local RocksDB checkpoints)")
      ->check(CLI::IsMember({"rsync", "checkpoint"}))
      ->capture_default_str();
  b_schedule->add_option("--keep", bf.keep, "keep the last N snapshots (0 = all; checkpoint mode default 2)");
  b_schedule->add_option("--max-age-days", bf.max_age_days,
                         "delete snapshots older than this (never the newest)");
  b_schedule
      ->add_option("--min-free-mb", bf.min_free_mb, "checkpoint mode: skip when free disk is below this")
      ->capture_default_str();
  AddTargetFlags(b_schedule, backup_target);
  auto* b_unschedule = backup->add_subcommand("unschedule", "stop scheduled backups");
  AddTargetFlags(b_unschedule, backup_target);
  auto* b_run =
      backup->add_subcommand("run-now", "back up now and show live progress per node; waits for all");
  add_dest(b_run, false);
  b_run->add_option("--wait-s", bf.wait_s, "give up waiting after this long")->capture_default_str();
  AddTargetFlags(b_run, backup_target);
  auto* b_configure =
      backup->add_subcommand("configure", "set a destination without a schedule (what client nodes use)");
  add_dest(b_configure, true);
  AddTargetFlags(b_configure, backup_target);
  auto* b_status = backup->add_subcommand(
      "status", "per node: schedule, next run, last snapshot, its age, bytes, consistent");
  AddTargetFlags(b_status, backup_target);
  std::string list_node;
  auto* b_list = backup->add_subcommand("list", "the complete snapshots of one node, with block ids");
  b_list->add_option("--node", list_node, "the node")->required();
  bool list_incomplete = false;
  b_list->add_flag("--incomplete", list_incomplete,
                   "also show snapshots without DONE (crashed runs; never restored)");
  std::string verify_node, verify_snapshot;
  bool verify_all = false;
  int64_t verify_wait_s = 3600;
  auto* b_verify = backup->add_subcommand(
      "verify",
      "verify the backup server's copy: DONE, every checksum, the digest chain, block ids; names each bad "
      "file and block");
  b_verify->add_option("--node", verify_node, "the replica whose snapshots to verify")->required();
  auto* vs = b_verify->add_option("--snapshot", verify_snapshot, "a snapshot id or latest (default: latest)");
  b_verify->add_flag("--all", verify_all, "every complete snapshot")->excludes(vs);
  b_verify->add_option("--wait-s", verify_wait_s, "give up waiting after this long")->capture_default_str();
  std::string client_name;
  std::vector<std::string> client_paths;
  auto* b_client = backup->add_subcommand(
      "client",
      "client nodes: <NAME>.tar.gz of the configured config files and db directory, plus a .sha256, "
      "shipped to the destination (default: the one set with `backup configure`)");
  b_client
      ->add_option("--name", client_name,
                   "archive name (NAME.tar.gz): up to 200 of A-Z a-z 0-9 . _ -, starting with a letter or "
                   "digit; an existing archive is never overwritten")
      ->required();
  b_client->add_option("--path", client_paths,
                       "archive these paths instead of the node config's [client] paths");
  add_dest(b_client, false);
  b_client->add_option("--wait-s", bf.wait_s, "give up waiting after this long")->capture_default_str();
  AddTargetFlags(b_client, backup_target);
  std::vector<CLI::App*> backup_subs = {backup,   b_schedule, b_unschedule, b_run,   b_configure,
                                        b_status, b_list,     b_client,     b_verify};

  // Restore (DESIGN §8).
  std::string r_node, r_snapshot = "latest", r_to_node, r_to_dir, r_client, r_archive;
  int64_t r_wait_s = 3600;
  auto* restore = app.add_subcommand(
      "restore",
      "restore a replica snapshot onto a clone node (--to-node) or a directory here (--to-dir), or a "
      "client archive (--client) on its client node");
  auto* r_node_opt = restore->add_option("--node", r_node, "the replica whose snapshot to restore");
  restore->add_option("--snapshot", r_snapshot, "snapshot id or latest")->capture_default_str();
  auto* r_to_node_opt = restore->add_option("--to-node", r_to_node,
                                            "a clone agent: restores, verifies, runs ledgerd --read-only");
  auto* r_to_dir_opt = restore->add_option(
      "--to-dir", r_to_dir, "with --node: a directory on this machine; with --client: on the client node");
  auto* r_client_opt = restore->add_option("--client", r_client, "the client node whose archive to restore");
  auto* r_archive_opt =
      restore->add_option("--archive", r_archive, "client archive name (NAME or NAME.tar.gz)");
  restore->add_option("--wait-s", r_wait_s, "give up waiting after this long")->capture_default_str();
  r_node_opt->excludes(r_client_opt);
  r_to_node_opt->excludes(r_to_dir_opt);
  r_client_opt->needs(r_archive_opt)->needs(r_to_dir_opt)->excludes(r_to_node_opt);
  r_archive_opt->needs(r_client_opt);
  backup_subs.push_back(restore);

  // The maintenance window.
  auto* maintenance = app.add_subcommand("maintenance", "the runbook's maintenance backup as one command");
  maintenance->require_subcommand(1);
  bool dry_run = false;
  std::string pre_hook, post_hook, archive;
  int64_t m_wedge_timeout_s = 120, backup_timeout_s = 3600;
  auto* m_run = maintenance->add_subcommand(
      "run",
      "stop clients, wedge, stop replicas, check block ids, back up clients and replicas, restart, unwedge");
  m_run->add_flag("--dry-run", dry_run, "print the plan and an estimate of the window; change nothing");
  m_run->add_option("--pre-hook", pre_hook,
                    "name of a hook the broker runs first (e.g. stop the applications): a [[hook]] of the "
                    "broker's cluster config (name + exec list); never a command line");
  m_run->add_option("--post-hook", post_hook,
                    "name of a hook the broker runs last and on rollback (e.g. start the applications)");
  m_run->add_option("--archive", archive,
                    "name of the client archives, as for `backup client --name` (default "
                    "maintenance-<run>-<time>); a name taken at a client's destination fails the preflight");
  m_run->add_option("--wedge-timeout-s", m_wedge_timeout_s, "how long the wedge may take")
      ->capture_default_str();
  m_run->add_option("--backup-timeout-s", backup_timeout_s, "how long the backups may take")
      ->capture_default_str();
  auto* m_abort = maintenance->add_subcommand(
      "abort", "stop the running maintenance and roll the cluster back to serving");
  backup_subs.push_back(maintenance);
  backup_subs.push_back(m_run);
  backup_subs.push_back(m_abort);

  for (auto* sub : backup_subs) sub->fallthrough();
  for (auto* sub :
       {keygen, nodes, ping, events, node, blocks, wedge, wedge_stop, wedge_status, unwedge, health}) {
    sub->fallthrough();
  }
  for (auto* sub : node_subs) sub->fallthrough();

  const auto keys = RegisterKeysCommands(app);

  if (Status limits = ApplyNumberLimits(&app); !limits.ok()) return Fail(limits);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (keys->parsed()) return keys->Run({g.config, g.key, g.json});
  if (keygen->parsed()) return RunKeygen(g, out_dir, names, force, bare);
  if (nodes->parsed()) return RunNodes(g);
  if (ping->parsed()) return RunPing(g, ping_target, delay_ms, wait_s);
  if (events->parsed()) return RunEvents(g, since, from_start, follow, filter, last_n);
  for (auto* sub : node_subs) {
    if (sub->parsed()) return RunNode(g, sub->get_name(), node_target, components, node_wait_s);
  }
  if (blocks->parsed()) return RunBlocks(g, blocks_target, short_wait_s);
  if (wedge_stop->parsed()) return RunWorkflow(g, "wedge", {{"timeout_s", wedge_timeout_s}});
  if (wedge_status->parsed()) return RunWedgeStatus(g, short_wait_s);
  if (unwedge->parsed()) {
    if (!unwedge_node.empty()) return RunUnwedgeNode(g, unwedge_node);
    return RunWorkflow(g, "unwedge", nlohmann::json::object());
  }
  if (health->parsed()) return RunHealth(g, health_target, short_wait_s);
  for (auto* sub : {b_schedule, b_configure, b_run, b_client}) {
    if (!sub->parsed()) continue;
    if (Status s = CheckDestinationFlags(bf); !s.ok()) return Fail(s);
  }
  if (b_schedule->parsed()) return RunBackupSchedule(g, backup_target, bf);
  if (b_unschedule->parsed()) {
    wire::CommandBodyUnion body;
    body.Set(wire::UnscheduleBackupT{});
    return RunBackupSimple(g, ReplicasByDefault(backup_target), std::move(body));
  }
  if (b_configure->parsed()) {
    wire::ConfigureBackupT c;
    c.target = MakeTarget(bf);
    wire::CommandBodyUnion body;
    body.Set(std::move(c));
    return RunBackupSimple(g, ToTarget(backup_target), std::move(body));
  }
  if (b_run->parsed()) return RunBackupNowCli(g, backup_target, bf);
  if (b_status->parsed()) return RunBackupStatus(g, backup_target);
  if (b_list->parsed()) return RunBackupList(g, list_node, list_incomplete);
  if (b_verify->parsed()) return RunBackupVerify(g, verify_node, verify_snapshot, verify_all, verify_wait_s);
  if (restore->parsed()) {
    if (!r_client.empty()) return RunRestoreClient(g, r_client, r_archive, r_to_dir, r_wait_s);
    if (r_node.empty()) return Fail(Status::InvalidArgument("restore needs --node (a replica) or --client"));
    if (!r_to_node.empty()) return RunRestoreToNode(g, r_node, r_snapshot, r_to_node, r_wait_s);
    if (!r_to_dir.empty()) return RunRestoreToDir(g, r_node, r_snapshot, r_to_dir);
    return Fail(Status::InvalidArgument("restore --node needs --to-node CLONE or --to-dir PATH"));
  }
  if (b_client->parsed()) return RunBackupClient(g, backup_target, bf, client_name, client_paths);
  if (m_run->parsed()) {
    for (const std::string* hook : {&pre_hook, &post_hook}) {
      if (hook->empty()) continue;
      if (Status s = ValidateHookName(*hook); !s.ok()) {
        return Fail(s.WithContext(hook == &pre_hook ? "--pre-hook" : "--post-hook"));
      }
    }
    if (!archive.empty()) {
      if (auto file = NewClientArchiveFileName(archive); !file.ok()) return Fail(file.status());
    }
    return RunMaintenance(g, {{"dry_run", dry_run},
                              {"pre_hook", pre_hook},
                              {"post_hook", post_hook},
                              {"archive", archive},
                              {"wedge_timeout_s", m_wedge_timeout_s},
                              {"backup_timeout_s", backup_timeout_s}});
  }
  if (m_abort->parsed()) return RunMaintenanceAbort(g);
  return kExitUsage;
}

}  // namespace ledgerkeep
