#include "cli/maintenance_commands.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "backup/client_archive.h"
#include "cli/cli_app.h"
#include "cli/event_format.h"
#include "cli/output.h"
#include "common/clock.h"
#include "common/config.h"

namespace ledgerkeep {
namespace {

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
    if (!report.is_discarded()) std::printf("%s\n", report.dump(2).c_str());
  }
  return ok ? kExitOk : kExitFailed;
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
  std::string pre_hook, post_hook, archive;
  int64_t wedge_timeout_s = 120, backup_timeout_s = 3600;
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
  return RunMaintenance(g, {{"dry_run", f.dry_run},
                            {"pre_hook", f.pre_hook},
                            {"post_hook", f.post_hook},
                            {"archive", f.archive},
                            {"wedge_timeout_s", f.wedge_timeout_s},
                            {"backup_timeout_s", f.backup_timeout_s}});
}

}  // namespace

void RegisterMaintenanceCommands(CLI::App& app, const GlobalFlags& g, CommandTable& commands) {
  auto f = std::make_shared<MaintenanceFlags>();
  auto* maintenance = app.add_subcommand("maintenance", "the runbook's maintenance backup as one command");
  maintenance->require_subcommand(1);
  auto* m_run = maintenance->add_subcommand(
      "run",
      "stop clients, wedge, stop replicas, check block ids, back up clients and replicas, restart, unwedge");
  m_run->add_flag("--dry-run", f->dry_run, "print the plan and an estimate of the window; change nothing");
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
  auto* m_abort = maintenance->add_subcommand(
      "abort", "stop the running maintenance and roll the cluster back to serving");
  commands.Add(m_abort, [&g] { return RunMaintenanceAbort(g); });
}

}  // namespace ledgerkeep
