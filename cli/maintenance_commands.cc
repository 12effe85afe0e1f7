#include "cli/maintenance_commands.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "backup/client_archive.h"
#include "cli/cli_app.h"
#include "client/event_format.h"
#include "cli/output.h"
#include "common/byte_size.h"
#include "common/clock.h"
#include "common/config.h"

namespace ledgerkeep {
namespace {

// The run's figures on one line: pause, client downtime, shipping, bytes.
void PrintFigures(const nlohmann::json& r) {
  std::string line;
  char buf[96];
  auto add = [&](const char* key, const char* label) {
    if (!r.contains(key) || !r[key].is_number()) return;
    std::snprintf(buf, sizeof buf, "%s %.2f s", label, r[key].get<double>());
    line += (line.empty() ? "" : "; ") + std::string(buf);
  };
  add("pause_s", "ledger paused");
  add("client_downtime_s", "clients down");
  if (!r.contains("pause_s")) add("window_s", "window");
  add("shipping_s", "shipping");
  uint64_t bytes = 0;
  if (const auto it = r.find("replicas"); it != r.end() && it->is_object()) {
    for (const auto& v : *it) bytes += v.value("bytes_transferred", uint64_t{0});
  }
  if (bytes > 0) line += "; sent " + HumanBytes(static_cast<double>(bytes));
  if (r.contains("complete")) line += r.value("complete", false) ? "; snapshot set complete" : "; snapshot set INCOMPLETE";
  if (!line.empty()) std::printf("%s\n", line.c_str());
}

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
    PrintJson({{"run_id", id}, {"ok", ok}, {"error", st->error}, {"report", report}});
  } else {
    std::printf("\nmaintenance run %llu %s%s\n", static_cast<unsigned long long>(id),
                ok ? "succeeded" : "FAILED: ", ok ? "" : st->error.c_str());
    if (!report.is_discarded()) {
      std::printf("%s\n", report.dump(2).c_str());
      PrintFigures(report);
    }
  }
  return ok ? kExitOk : kExitFailed;
}

// `maintenance status`: a run's state, its figures and what is still shipping.
int RunMaintenanceStatus(const GlobalFlags& g, uint64_t run_id) {
  auto client = ConnectBroker(g);
  if (!client.ok()) return Fail(client.status());
  auto st = (*client)->GetWorkflowStatus(run_id);
  if (!st.ok()) return Fail(st.status());
  if (st->kind != "maintenance") {
    return Fail(Status::NotFound("the latest workflow is run " + std::to_string(st->run_id) + " (" + st->kind +
                                 "), not a maintenance run; pass --run ID"));
  }
  auto report = nlohmann::json::parse(st->report_json, nullptr, false);
  if (report.is_discarded()) report = nlohmann::json::object();
  nlohmann::json shipping = nlohmann::json::object();
  if (const auto it = report.find("shipping"); it != report.end() && it->is_object()) shipping = *it;
  if (g.json) {
    PrintJson({{"run_id", st->run_id}, {"state", st->state}, {"step", st->step}, {"error", st->error},
               {"complete", report.value("complete", false)}, {"shipping", shipping}, {"report", report}});
    return kExitOk;
  }
  std::printf("maintenance run %llu (%s): %s, step %s\n", static_cast<unsigned long long>(st->run_id),
              report.value("mode", "offline").c_str(), st->state.c_str(), st->step.c_str());
  if (!st->error.empty()) std::printf("  %s\n", st->error.c_str());
  for (const auto& [node, s] : shipping.items()) {
    std::printf("  %-8s %-9s %s\n", node.c_str(), s.value("state", "").c_str(),
                s.contains("snapshot_id") ? s.value("snapshot_id", "").c_str() : s.value("error", "").c_str());
  }
  PrintFigures(report);
  return kExitOk;
}

int RunMaintenanceAbort(const GlobalFlags& g) {
  auto client = ConnectBroker(g);
  if (!client.ok()) return Fail(client.status());
  auto st = (*client)->AbortWorkflow(0);
  if (!st.ok()) return Fail(st.status());
  if (g.json) {
    PrintJson({{"run_id", st->run_id}, {"abort_requested", true}});
  } else {
    std::printf("abort requested for %s run %llu; it rolls the cluster back to serving\n", st->kind.c_str(),
                static_cast<unsigned long long>(st->run_id));
  }
  return kExitOk;
}

struct MaintenanceFlags {
  bool dry_run = false;
  bool offline = false;
  std::string pre_hook, post_hook, archive, min_free;
  int64_t wedge_timeout_s = 120, backup_timeout_s = 3600, ship_timeout_s = 86400;
  uint64_t status_run = 0;
};

// The hook and archive names are checked here (a usage error starts nothing);
// the broker checks them again.
int RunMaintenanceChecked(const GlobalFlags& g, const MaintenanceFlags& f) {
  for (const std::string* hook : {&f.pre_hook, &f.post_hook}) {
    if (hook->empty()) continue;
    if (Status s = ValidateHookName(*hook); !s.ok()) {
      return Fail(s.WithContext(hook == &f.pre_hook ? "--pre-hook" : "--post-hook"));
    }
  }
  if (!f.archive.empty()) {
    if (auto file = NewClientArchiveFileName(f.archive); !file.ok()) return Fail(file.status());
  }
  uint64_t min_free = 0;
  if (!f.min_free.empty()) {
    if (f.offline) return Fail(Status::InvalidArgument("--min-free is for the online window (no --offline)"));
    auto m = ParseByteSize("--min-free", f.min_free);
    if (!m.ok()) return Fail(m.status());
    min_free = *m;
  }
  return RunMaintenance(g, {{"mode", f.offline ? "offline" : "online"},
                            {"dry_run", f.dry_run},
                            {"pre_hook", f.pre_hook},
                            {"post_hook", f.post_hook},
                            {"archive", f.archive},
                            {"wedge_timeout_s", f.wedge_timeout_s},
                            {"backup_timeout_s", f.backup_timeout_s},
                            {"ship_timeout_s", f.ship_timeout_s},
                            {"min_free_bytes", min_free}});
}

}  // namespace

void RegisterMaintenanceCommands(CLI::App& app, const GlobalFlags& g, CommandTable& commands) {
  auto f = std::make_shared<MaintenanceFlags>();
  auto* maintenance = app.add_subcommand("maintenance", "the runbook's maintenance backup as one command");
  maintenance->require_subcommand(1);
  auto* m_run = maintenance->add_subcommand(
      "run",
      "the maintenance backup. Online (default): stop clients, wedge, checkpoint every replica at the stop "
      "point, unwedge (the ledger pauses about a second), client archives, start clients, then ship the "
      "checkpoints as one snapshot set while the ledger runs. --offline: the runbook as written (replicas "
      "stopped for the whole final sync)");
  m_run->add_flag("--dry-run", f->dry_run,
                  "print the plan and the estimate (pause, client downtime, shipping) for the chosen mode; "
                  "change nothing");
  m_run->add_flag("--offline", f->offline,
                  "stop the replicas and run the final sync while they are stopped (the runbook's procedure; "
                  "the window grows with the data)");
  m_run->add_option("--min-free", f->min_free,
                    "online: free disk each replica needs for its checkpoint, e.g. 20G (default: the size of its "
                    "DB, which a checkpoint can pin while it ships); checked before anything is touched");
  m_run->add_option("--ship-timeout-s", f->ship_timeout_s,
                    "online: how long failed shipments are retried before the run ends incomplete "
                    "(checkpoints kept)")
      ->capture_default_str();
  m_run->add_option("--pre-hook", f->pre_hook,
                    "name of a hook the broker runs first (e.g. stop the applications): a [[hook]] of the "
                    "broker's cluster config (name + exec list); never a command line");
  m_run->add_option("--post-hook", f->post_hook,
                    "name of a hook the broker runs last and on rollback (e.g. start the applications)");
  m_run->add_option("--archive", f->archive,
                    "name of the client archives, as for `backup client --name` (default "
                    "maintenance-<run>-<time>); a name taken at a client's destination fails the preflight");
  m_run->add_option("--wedge-timeout-s", f->wedge_timeout_s, "how long the wedge may take")
      ->capture_default_str();
  m_run->add_option("--backup-timeout-s", f->backup_timeout_s, "how long the backups may take")
      ->capture_default_str();
  commands.Add(m_run, [&g, f] { return RunMaintenanceChecked(g, *f); });
  auto* m_status = maintenance->add_subcommand(
      "status", "a maintenance run's state, figures and what is still shipping (default: the latest run)");
  m_status->add_option("--run", f->status_run, "the run id (default: the latest workflow)");
  commands.Add(m_status, [&g, f] { return RunMaintenanceStatus(g, f->status_run); });
  auto* m_abort = maintenance->add_subcommand(
      "abort",
      "stop the running maintenance and roll the cluster back to serving (while shipping: end the run "
      "incomplete, checkpoints kept)");
  commands.Add(m_abort, [&g] { return RunMaintenanceAbort(g); });
}

}  // namespace ledgerkeep
