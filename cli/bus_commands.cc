#include "cli/bus_commands.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/cli_app.h"
#include "client/event_format.h"
#include "cli/output.h"

namespace ledgerkeep {
namespace {

// ---------------------------------------------------------------- nodes
int RunNodes(const GlobalFlags& g) {
  auto client = ConnectBroker(g);
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
    PrintJson(arr);
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
struct PingFlags {
  TargetFlags target;
  uint32_t delay_ms = 0;
  int64_t wait_s = 10;
};

int RunPing(const GlobalFlags& g, const PingFlags& f) {
  auto client = ConnectBroker(g);
  if (!client.ok()) return Fail(client.status());
  wire::PingT ping;
  ping.delay_ms = f.delay_ms;
  ping.note = "cli";
  wire::CommandBodyUnion body;
  body.Set(std::move(ping));
  const uint32_t timeout_ms = static_cast<uint32_t>(f.wait_s * 1000);
  auto issued = (*client)->Issue(ToTarget(f.target), std::move(body), timeout_ms);
  if (!issued.ok()) return Fail(issued.status());
  if (!g.json) {
    std::fprintf(stderr, "ping: command %llu to %zu node(s); waiting up to %llds\n",
                 static_cast<unsigned long long>(issued->cmd_id), issued->targets.size(),
                 static_cast<long long>(f.wait_s));
  }
  auto st = (*client)->Wait(issued->cmd_id, f.wait_s * 1000 + 5000, nullptr);
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
  PrintTableOrJson(g, t, j);
  return all_ok ? kExitOk : kExitFailed;
}

// ---------------------------------------------------------------- events
struct EventsFlags {
  std::optional<uint64_t> since;
  bool from_start = false;
  bool follow = false;
  std::string filter;
  uint64_t last_n = 50;
};

int RunEvents(const GlobalFlags& g, const EventsFlags& f) {
  auto opts = LoadClientOptions(g);
  if (!opts.ok()) return Fail(opts.status());
  uint64_t from = 1;
  if (f.since) {
    from = *f.since;
  } else if (!f.from_start) {
    // Default: the last N events (that match the filter).
    auto client = BrokerClient::Connect(*opts);
    if (!client.ok()) return Fail(client.status());
    auto start = (*client)->StartOfNewestEvents(f.last_n, f.filter);
    if (!start.ok()) return Fail(start.status());
    from = *start;
  }
  auto follower = EventFollower::Start(*opts, from, f.filter);
  if (!follower.ok()) return Fail(follower.status());
  auto print = [&](const DecodedEnvelope& env) {
    const wire::Event& ev = *env->body_as_Event();
    if (g.json) {
      PrintJson(EventToJson(ev));
    } else {
      std::printf("%8llu  %s  %-8s %-8s %s\n", static_cast<unsigned long long>(ev.seq()),
                  FormatTimeMs(ev.at_ms()).c_str(), ev.kind() ? ev.kind()->c_str() : "",
                  ev.node() ? ev.node()->c_str() : "", DescribeEvent(ev).c_str());
    }
    std::fflush(stdout);
  };
  while (true) {
    auto ev = (*follower)->Next(f.follow ? 1000 : 0);
    if (!ev.ok()) return Fail(ev.status());
    if (*ev) {
      print(**ev);
      continue;
    }
    if (!f.follow) break;
  }
  return kExitOk;
}

}  // namespace

void RegisterBusCommands(CLI::App& app, const GlobalFlags& g, CommandTable& commands) {
  auto* nodes = app.add_subcommand("nodes", "list the agent nodes: role, liveness, last heartbeat, version");
  commands.Add(nodes, [&g] { return RunNodes(g); });

  auto pf = std::make_shared<PingFlags>();
  auto* ping =
      app.add_subcommand("ping", "send a Ping through every target's dispatch path and show the round trips");
  AddTargetFlags(ping, pf->target);
  ping->add_option("--delay-ms", pf->delay_ms, "make each agent's handler take this long")
      ->capture_default_str();
  ping->add_option("--wait-s", pf->wait_s, "deadline: targets that have not answered by then fail")
      ->capture_default_str();
  commands.Add(ping, [&g, pf] { return RunPing(g, *pf); });

  auto ef = std::make_shared<EventsFlags>();
  auto* events = app.add_subcommand("events", "show the durable event log (default: the last 50 events)");
  auto* since_opt = events->add_option("--since", ef->since, "start at this sequence number");
  auto* start_opt = events->add_flag("--from-start", ef->from_start, "start at the oldest retained event");
  since_opt->excludes(start_opt);
  events->add_flag("--follow,-f", ef->follow, "keep printing new events as they happen");
  events->add_option("--filter", ef->filter,
                     "only events whose '<kind>.<node>' starts with this (e.g. status, command.r1)");
  events->add_option("--last", ef->last_n, "how many recent events (that match --filter) to show by default")
      ->capture_default_str();
  commands.Add(events, [&g, ef] { return RunEvents(g, *ef); });
}

}  // namespace ledgerkeep
