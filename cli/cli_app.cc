#include "cli/cli_app.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/broker_client.h"
#include "cli/event_format.h"
#include "cli/table.h"
#include "common/clock.h"

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
  auto* role = sub->add_option("--role", t.role, "every node of this role (replica|client)")
                   ->check(CLI::IsMember({"replica", "client"}));
  auto* all = sub->add_flag("--all", t.all, "every node (the default)");
  node->excludes(role)->excludes(all);
  role->excludes(all);
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
    case StatusCode::kOk: return kExitOk;
    case StatusCode::kUnavailable:
    case StatusCode::kPermissionDenied: return kExitUnreachable;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound: return kExitUsage;
    default: return kExitFailed;
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

// ---------------------------------------------------------------- keygen
int RunKeygen(const GlobalFlags& g, const std::string& out_dir, const std::vector<std::string>& names,
              bool force) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& name : names) {
    auto pair = GenerateCurveKeyPair(name);
    if (!pair.ok()) return Fail(pair.status());
    Status s = WriteKeyFiles(out_dir, *pair, force);
    if (!s.ok()) return Fail(s);
    j[name] = pair->public_z85;
    if (!g.json) {
      std::printf("%s: public %s\n  secret in %s/%s.key (mode 0600), public in %s/%s.pub\n",
                  name.c_str(), pair->public_z85.c_str(), out_dir.c_str(), name.c_str(),
                  out_dir.c_str(), name.c_str());
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
                     {"pending_commands", n->pending_commands}});
    }
    std::printf("%s\n", arr.dump().c_str());
    return kExitOk;
  }
  Table t({"NODE", "ROLE", "STATE", "LAST HEARTBEAT", "VERSION", "PENDING"});
  for (const auto& n : list->nodes) {
    t.Add({n->node_id, RoleName(n->role), NodeStateName(n->state),
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
  LK_ASSIGN_OR_RETURN(auto issued, client->Issue(target, std::move(body), static_cast<uint32_t>(wait_s * 1000)));
  return client->Wait(issued.cmd_id, wait_s * 1000 + 5000, nullptr);
}

bool TargetOk(const wire::TargetStatusT& t) {
  return t.result && t.result->status == wire::ResultStatus::Ok;
}

std::string TargetResult(const wire::TargetStatusT& t) {
  if (!t.result) return "pending";
  return wire::EnumNameResultStatus(t.result->status);
}

std::string TargetMessage(const wire::TargetStatusT& t) { return t.result ? t.result->message : ""; }

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
    j[target->node_id] = {{"result", TargetResult(*target)}, {"components", jc},
                          {"message", TargetMessage(*target)}};
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
      j["replicas"][target_st->node_id] = {{"genesis", b->genesis}, {"lastReachableBlockID", b->last_reachable},
                                           {"lastBlockID", b->last}, {"running", b->running}};
      t.Add({target_st->node_id, std::to_string(b->genesis), std::to_string(b->last_reachable),
             std::to_string(b->last), b->running ? "running" : "stopped", ""});
    } else {
      all_ok = false;
      j["replicas"][target_st->node_id] = {{"error", TargetResult(*target_st) + ": " + TargetMessage(*target_st)}};
      t.Add({target_st->node_id, "-", "-", "-", "?", TargetResult(*target_st) + ": " + TargetMessage(*target_st)});
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
      std::string state = !h->running ? "ledgerd not running"
                          : h->slow_path_fault ? "slow path forced (fault flag)"
                          : h->blocks_per_sec <= 0 ? "not producing blocks"
                          : h->state_transfer_active ? "state transfer" : "healthy";
      healthy = healthy && ok;
      j[target_st->node_id] = {{"blocks_per_sec", h->blocks_per_sec}, {"fast_paths", h->fast_paths},
                               {"slow_paths", h->slow_paths}, {"running", h->running},
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
    nlohmann::json j = {{"run_id", id}, {"kind", kind}, {"ok", ok}, {"error", st->error},
                        {"report", report}, {"succ", ok}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s %s%s\n", kind.c_str(), ok ? "succeeded" : "FAILED: ", ok ? "" : st->error.c_str());
    if (!report.is_discarded() && !report.empty()) std::printf("%s\n", report.dump(2).c_str());
  }
  return ok ? kExitOk : kExitFailed;
}

// ---------------------------------------------------------------- events
int RunEvents(const GlobalFlags& g, std::optional<uint64_t> since, bool from_start, bool follow,
              const std::string& filter, uint64_t last_n) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  uint64_t from = 1;
  if (since) {
    from = *since;
  } else if (!from_start) {
    // Default: the last N events.
    auto client = BrokerClient::Connect(*opts);
    if (!client.ok()) return Fail(client.status());
    auto head = (*client)->FetchEvents(UINT64_MAX, 1, "");
    if (!head.ok()) return Fail(head.status());
    from = head->head_seq > last_n ? head->head_seq - last_n + 1 : 1;
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

  auto* nodes = app.add_subcommand("nodes", "list the agent nodes: role, liveness, last heartbeat, version");

  TargetFlags ping_target;
  uint32_t delay_ms = 0;
  int64_t wait_s = 10;
  auto* ping = app.add_subcommand("ping", "send a Ping through every target's dispatch path and show the round trips");
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
  events->add_option("--filter", filter, "only events whose '<kind>.<node>' starts with this (e.g. status, command.r1)");
  events->add_option("--last", last_n, "how many recent events to show by default")->capture_default_str();

  // Node management.
  auto* node = app.add_subcommand("node", "start, stop or inspect the node components (ledgerd, client services)");
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
  auto* blocks = app.add_subcommand("blocks", "per replica: genesis, last reachable and last block id, ledgerd running or not, and whether all agree");
  AddTargetFlags(blocks, blocks_target);
  blocks->add_option("--wait-s", short_wait_s, "how long to wait for every replica")->capture_default_str();

  auto* wedge = app.add_subcommand("wedge", "pause every replica at the same checkpoint");
  wedge->require_subcommand(1);
  int64_t wedge_timeout_s = 120;
  auto* wedge_stop = wedge->add_subcommand("stop", "the broker picks one stop point (next-but-one checkpoint above the highest replica), sends it to every replica and waits until all are wedged");
  wedge_stop->add_option("--timeout-s", wedge_timeout_s, "give up (and name the replicas not wedged) after this long")->capture_default_str();
  auto* wedge_status = wedge->add_subcommand("status", "true per replica when it sits at its stop point (with --json: {\"r1\": true, ...})");
  wedge_status->add_option("--wait-s", short_wait_s, "how long to wait for every replica")->capture_default_str();
  auto* unwedge = app.add_subcommand("unwedge", "resume block production; refused unless every replica is wedged at the same point");

  TargetFlags health_target;
  auto* health = app.add_subcommand("health", "blocks per second and fast/slow path counters per replica");
  AddTargetFlags(health, health_target);
  health->add_option("--wait-s", short_wait_s, "how long to wait for every replica")->capture_default_str();

  for (auto* sub : {keygen, nodes, ping, events, node, blocks, wedge, wedge_stop, wedge_status, unwedge, health}) {
    sub->fallthrough();
  }
  for (auto* sub : node_subs) sub->fallthrough();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (keygen->parsed()) return RunKeygen(g, out_dir, names, force);
  if (nodes->parsed()) return RunNodes(g);
  if (ping->parsed()) return RunPing(g, ping_target, delay_ms, wait_s);
  if (events->parsed()) return RunEvents(g, since, from_start, follow, filter, last_n);
  for (auto* sub : node_subs) {
    if (sub->parsed()) return RunNode(g, sub->get_name(), node_target, components, node_wait_s);
  }
  if (blocks->parsed()) return RunBlocks(g, blocks_target, short_wait_s);
  if (wedge_stop->parsed()) return RunWorkflow(g, "wedge", {{"timeout_s", wedge_timeout_s}});
  if (wedge_status->parsed()) return RunWedgeStatus(g, short_wait_s);
  if (unwedge->parsed()) return RunWorkflow(g, "unwedge", nlohmann::json::object());
  if (health->parsed()) return RunHealth(g, health_target, short_wait_s);
  return kExitUsage;
}

}  // namespace ledgerkeep
