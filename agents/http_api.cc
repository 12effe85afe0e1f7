#include "agents/http_api.h"

#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>

#include "agents/runbook_request.h"
#include "backup/ledger_probe.h"
#include "client/event_format.h"
#include "http/backup_metrics.h"
#include "http/http_server.h"
#include "http/metrics_text.h"
#include "ledger/control_client.h"

namespace ledgerkeep {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;

// An IssueCommand's deadline for the agent to take the command (the CLI's).
constexpr uint32_t kIssueTimeoutMs = 60'000;
// How often a waiting request checks that the server is not stopping.
constexpr int64_t kWaitSliceMs = 1000;
constexpr const char* kRequester = "agent HTTP API";

nlohmann::json BackupResultJson(const wire::BackupResultT& r) {
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(wire::BackupResult::Pack(fbb, &r));
  nlohmann::json j = BackupResultToJson(*flatbuffers::GetRoot<wire::BackupResult>(fbb.GetBufferPointer()));
  j["snapshot_count"] = r.snapshot_count;
  return j;
}

nlohmann::json BackupStatusJson(const wire::BackupStatusT& b) {
  return {{"mode", b.mode},
          {"schedule", b.schedule},
          {"destination", b.destination},
          {"next_run_ms", b.next_run_ms},
          {"running", b.running},
          {"last", b.last ? BackupResultJson(*b.last) : nlohmann::json(nullptr)},
          {"last_ok", b.last_ok ? BackupResultJson(*b.last_ok) : nlohmann::json(nullptr)}};
}

nlohmann::json ComponentJson(const std::string& name, bool running, int64_t pid, const std::string& detail) {
  return {{"name", name}, {"running", running}, {"pid", pid}, {"detail", detail}};
}

// A command's result detail as JSON (null for kinds the API does not issue).
nlohmann::json DetailJson(const wire::ResultDetailUnion& d) {
  switch (d.type) {
    case wire::ResultDetail::BackupResult: return BackupResultJson(*d.AsBackupResult());
    case wire::ResultDetail::BackupStatus: return BackupStatusJson(*d.AsBackupStatus());
    case wire::ResultDetail::NodeStatus: {
      nlohmann::json cs = nlohmann::json::array();
      for (const auto& c : d.AsNodeStatus()->components) {
        if (c) cs.push_back(ComponentJson(c->name, c->running, c->pid, c->detail));
      }
      return {{"components", cs}};
    }
    default: return nullptr;
  }
}

// The HTTP status of a command that finished without success.
int StatusForFailedCommand(wire::ResultStatus status, StatusCode code) {
  switch (status) {
    case wire::ResultStatus::Rejected: return 409;  // the agent refused it
    case wire::ResultStatus::Expired: return 503;   // never taken in time
    case wire::ResultStatus::Interrupted: return 500;
    default: break;
  }
  switch (code) {
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAlreadyExists: return 409;
    case StatusCode::kBusy: return 503;
    default: return 500;
  }
}

StatusCode CodeOf(uint16_t wire_code) {
  return wire_code <= kMaxStatusCode ? static_cast<StatusCode>(wire_code) : StatusCode::kInternal;
}

}  // namespace

struct AgentHttp::Impl {
  AgentHttpOptions opt;
  prometheus::Registry registry;
  BackupMetrics backups{registry};
  prometheus::Family<prometheus::Counter>& requests = BuildCounter()
                                                          .Name("ledgerkeep_http_requests_total")
                                                          .Help("Agent HTTP API requests by status code")
                                                          .Register(registry);
  std::unique_ptr<HttpServer> server;
  std::atomic<bool> stopping{false};

  explicit Impl(AgentHttpOptions o) : opt(std::move(o)) {
    BuildGauge()
        .Name("ledgerkeep_agent_info")
        .Help("The agent: its node, role and version (always 1)")
        .Register(registry)
        .Add({{"node", opt.node_id}, {"role", RoleName(opt.role)}, {"version", opt.version}})
        .Set(1);
  }

  bool replica() const { return opt.role == wire::Role::Replica; }

  // ------------------------------------------------------------ ledgerd

  Result<ledger::LedgerStatus> ReadLedger() const {
    const std::string& control = opt.services->config.ledger_control;
    if (control.empty()) return Status::FailedPrecondition("no [ledger] control socket in the node config");
    // Nothing listening (stopped, crashed): say so at once, no timeout.
    if (!LedgerdListening(control)) return Status::Unavailable("ledgerd is not running");
    ledger::ControlClientOptions o;
    o.timeout = std::chrono::milliseconds(opt.ledger_timeout_ms);
    ledger::LedgerControlClient client(control, o);
    return client.GetStatus();
  }

  // ------------------------------------------------------------ metrics

  void SeedFromHistory() {
    const BackupHistory h = opt.backups->History();
    if (!h.last) return;  // never ran: no series (no alert on a node that never backed up)
    backups.SeedLastRun(opt.node_id, h.last->result.ok, h.last_ok ? h.last_ok->finished_at_ms : 0);
    if (h.last_ok && h.last_ok->result.snapshot_count > 0) {
      backups.SetSnapshots(opt.node_id, h.last_ok->result.snapshot_count, h.last_ok->finished_at_ms);
    }
  }

  void Observe(const FinishedBackupRun& run) {
    const BackupResult& r = run.result;
    BackupRunFigures f;
    f.ok = r.ok;
    f.finished_at_ms = run.finished_at_ms;
    f.duration_s = static_cast<double>(r.duration_ms) / 1000.0;
    f.bytes_sent = r.bytes_transferred;
    // The broker names reasons the same way (its ObservedState).
    f.failure_reason = r.ok ? "" : SnakeCase(std::string(StatusCodeName(r.error_code)));
    backups.ObserveRun(opt.node_id, f);
    if (r.ok && r.snapshot_count > 0) backups.SetSnapshots(opt.node_id, r.snapshot_count, run.finished_at_ms);
  }

  // The ledger's series of this scrape, in a registry of their own: they
  // exist only while ledgerd answers (and never for a client node).
  void CollectLedger(prometheus::Registry& r) const {
    if (!replica()) return;
    const prometheus::Labels node{{"node", opt.node_id}};
    auto st = ReadLedger();
    BuildGauge()
        .Name("ledgerkeep_ledger_up")
        .Help("1 if ledgerd answered this scrape")
        .Register(r)
        .Add(node)
        .Set(st.ok() ? 1 : 0);
    if (!st.ok()) return;
    BuildGauge().Name("ledgerkeep_ledger_last_block_id").Help("Last block id").Register(r).Add(node).Set(
        static_cast<double>(st->last));
    // A read-only clone produces no blocks: rates and wedge state would only
    // make alerts fire for it.
    if (opt.clone) return;
    BuildGauge()
        .Name("ledgerkeep_ledger_blocks_per_second")
        .Help("Blocks produced per second, last few seconds")
        .Register(r)
        .Add(node)
        .Set(st->blocks_per_sec);
    BuildCounter()
        .Name("ledgerkeep_ledger_fast_paths_total")
        .Help("Consensus fast-path commits")
        .Register(r)
        .Add(node)
        .Increment(static_cast<double>(st->fast_paths));
    BuildCounter()
        .Name("ledgerkeep_ledger_slow_paths_total")
        .Help("Consensus slow-path commits")
        .Register(r)
        .Add(node)
        .Increment(static_cast<double>(st->slow_paths));
    BuildGauge()
        .Name("ledgerkeep_ledger_wedged")
        .Help("1 while wedged at a stop point")
        .Register(r)
        .Add(node)
        .Set(st->wedged ? 1 : 0);
    BuildGauge()
        .Name("ledgerkeep_ledger_wedged_since_timestamp_seconds")
        .Help("When it reached the stop point (Unix seconds; 0 = not wedged)")
        .Register(r)
        .Add(node)
        .Set(st->wedged ? static_cast<double>(st->wedged_since_ms) / 1000.0 : 0);
    BuildGauge()
        .Name("ledgerkeep_ledger_catching_up")
        .Help("1 while behind the cluster and catching up")
        .Register(r)
        .Add(node)
        .Set(st->catching_up ? 1 : 0);
  }

  std::string Metrics() {
    backups.RefreshAges(opt.clock->NowMs());
    prometheus::Registry ledger;
    CollectLedger(ledger);
    auto families = registry.Collect();
    auto more = ledger.Collect();
    families.insert(families.end(), more.begin(), more.end());
    return prometheus::TextSerializer().Serialize(families);
  }

  // ------------------------------------------------------------ status

  nlohmann::json NodeStatusJson() {
    nlohmann::json j = {{"ok", true},
                        {"node", opt.node_id},
                        {"role", RoleName(opt.role)},
                        {"clone", opt.clone},
                        {"version", opt.version},
                        {"now_ms", opt.clock->NowMs()}};
    if (replica()) {
      auto st = ReadLedger();
      if (st.ok()) {
        j["ledger"] = {{"up", true},
                       {"genesis", st->genesis},
                       {"last_reachable", st->last_reachable},
                       {"last_block_id", st->last},
                       {"wedged", st->wedged},
                       {"stop_point", st->stop_point},
                       {"wedged_since_ms", st->wedged_since_ms},
                       {"blocks_per_second", st->blocks_per_sec},
                       {"fast_paths", st->fast_paths},
                       {"slow_paths", st->slow_paths},
                       {"state_transfer_active", st->state_transfer_active},
                       {"catching_up", st->catching_up},
                       {"lag_blocks", st->lag_blocks},
                       {"read_only", st->read_only}};
      } else {
        j["ledger"] = {{"up", false},
                       {"error", st.status().message()},
                       {"hint", "`ledgerkeep blocks --node " + opt.node_id +
                                    "` reads the block ids of a stopped ledger from its DB"}};
      }
    } else {
      j["ledger"] = nullptr;
    }
    nlohmann::json cs = nlohmann::json::array();
    if (opt.services->supervisor) {
      for (const auto& c : opt.services->supervisor->InspectWithoutCommands()) {
        cs.push_back(ComponentJson(c.name, c.running, c.pid, c.detail));
      }
    }
    j["components"] = std::move(cs);
    CommandOutcome b = opt.backups->GetStatus();
    j["backup"] = b.status.ok() && b.detail.type == wire::ResultDetail::BackupStatus
                      ? BackupStatusJson(*b.detail.AsBackupStatus())
                      : nlohmann::json(nullptr);
    return j;
  }

  // ------------------------------------------------------------ actions

  // Issues `body` to this node through the broker and follows it for up to
  // `wait_s`; answers with its result.
  void IssueAndWait(const httplib::Request& req, httplib::Response& res, const std::string& action,
                    wire::CommandBodyUnion body, int64_t wait_s, const std::vector<std::string>& warnings) {
    const std::string peer = PeerOf(req);
    const std::string requester = std::string(kRequester) + ", " + peer;
    nlohmann::json reply = {{"node", opt.node_id}, {"action", action}, {"warnings", warnings}};
    auto fail = [&](int http, const Status& s) {
      reply["ok"] = false;
      reply["error"] = s.message();
      reply["code"] = std::string(StatusCodeName(s.code()));
      ReplyJson(res, http, reply);
    };
    auto client = BrokerClient::Connect(opt.broker);
    if (!client.ok()) return fail(503, client.status().WithContext("cannot reach the broker; the command was not run"));
    wire::TargetT target;
    target.node_id = opt.node_id;
    auto issued = (*client)->Issue(target, std::move(body), kIssueTimeoutMs, "", requester);
    if (!issued.ok()) {
      const Status& s = issued.status();
      if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kTimeout) {
        return fail(503, s.WithContext("the broker did not answer; the command was not run"));
      }
      // Refused by the broker: its destination rules (another node's
      // directory) or its rules for agent keys. Nothing was issued.
      spdlog::warn("agent HTTP API: {} from {} refused by the broker: {}", action, peer, s.ToString());
      return fail(409, s.WithContext("the broker refused the command"));
    }
    const uint64_t cmd_id = issued->cmd_id;
    reply["cmd_id"] = cmd_id;
    spdlog::info("agent HTTP API: {} from {} issued as command {}", action, peer, cmd_id);
    wire::CommandStatusT st = std::move(*issued);
    const int64_t deadline = MonotonicMs() + wait_s * 1000;
    while (!st.finished && !stopping) {
      const int64_t left = deadline - MonotonicMs();
      if (left <= 0) break;
      auto w = (*client)->Wait(cmd_id, std::min(left, kWaitSliceMs), nullptr);
      if (!w.ok()) {
        return fail(500, w.status().WithContext("command " + std::to_string(cmd_id) +
                                                " was issued but cannot be followed"));
      }
      st = std::move(*w);
    }
    if (!st.finished) {
      // Still running: say how to follow it instead of holding the request.
      reply["ok"] = true;
      reply["finished"] = false;
      reply["message"] = "command " + std::to_string(cmd_id) + " is still running" +
                         (stopping ? " (the agent's HTTP API is stopping)" : " after " + std::to_string(wait_s) + " s");
      reply["follow"] = "ledgerkeep events --follow --filter command." + opt.node_id;
      reply["check"] = action.rfind("backup", 0) == 0 ? "ledgerkeep backup status --node " + opt.node_id
                                                        : "ledgerkeep node status --node " + opt.node_id;
      return ReplyJson(res, 202, reply);
    }
    const wire::TargetStatusT* mine = nullptr;
    for (const auto& t : st.targets) {
      if (t && t->node_id == opt.node_id) mine = t.get();
    }
    if (mine == nullptr || !mine->result) {
      return fail(500, Status::Internal("command " + std::to_string(cmd_id) + " finished without a result"));
    }
    const wire::CommandResultT& r = *mine->result;
    reply["finished"] = true;
    reply["result"] = DetailJson(r.detail);
    if (r.status == wire::ResultStatus::Ok) {
      reply["ok"] = true;
      return ReplyJson(res, 200, reply);
    }
    const StatusCode code = CodeOf(r.error_code);
    const int http = StatusForFailedCommand(r.status, code);
    spdlog::warn("agent HTTP API: command {} ({}) from {}: {} {}", cmd_id, action, peer,
                 wire::EnumNameResultStatus(r.status), r.message);
    fail(http, Status(code == StatusCode::kOk ? StatusCode::kInternal : code,
                      std::string(wire::EnumNameResultStatus(r.status)) + ": " + r.message));
  }

  // A POST from a web page (browsers send Origin; curl does not).
  static bool FromBrowser(const httplib::Request& req, httplib::Response& res) {
    if (!req.has_header("Origin")) return false;
    ReplyError(res, 403,
               "requests from web pages (with an Origin header) are refused: this API has no token and "
               "listens for the node's own operators (curl)");
    return true;
  }

  void LogWarnings(const httplib::Request& req, const std::vector<std::string>& warnings) const {
    for (const auto& w : warnings) spdlog::warn("agent HTTP API: {} {} from {}: {}", req.method, req.path, PeerOf(req), w);
  }

  void Backup(const httplib::Request& req, httplib::Response& res) {
    if (FromBrowser(req, res)) return;
    auto r = ParseBackupRequest(req.params, req.body, opt.node_id);
    if (!r.ok()) return ReplyStatus(res, r.status());
    if (!replica() || opt.clone) {
      return ReplyStatus(res, Status::FailedPrecondition(
                                  opt.clone ? "a restore clone takes no backups"
                                            : "client nodes take no intermittent backups (the runbook's backup "
                                              "applies to replica nodes; `ledgerkeep backup client` archives a "
                                              "client)"));
    }
    LogWarnings(req, r->warnings);
    wire::BackupTargetT target;
    target.destination = r->destination.value_or("");
    target.rsync_user = r->rsync_user;
    // SSH key, known_hosts and port: the node config's [backup] ssh_options,
    // as for every backup of this node (nothing from the request).
    wire::CommandBodyUnion body;
    switch (r->action) {
      case BackupRequest::Action::kSchedule: {
        wire::ScheduleBackupT s;
        s.target = std::make_unique<wire::BackupTargetT>(target);
        s.frequency = r->frequency;
        s.time_zone = r->time_zone;
        s.mode = wire::BackupMode::Rsync;
        s.retention = std::make_unique<wire::RetentionT>();
        body.Set(std::move(s));
        break;
      }
      case BackupRequest::Action::kRunNow: {
        wire::RunBackupNowT n;
        if (r->destination) n.target = std::make_unique<wire::BackupTargetT>(target);
        n.reason = kRequester;
        body.Set(std::move(n));
        break;
      }
      case BackupRequest::Action::kUnschedule: body.Set(wire::UnscheduleBackupT{}); break;
    }
    IssueAndWait(req, res, "backup " + std::string(ActionName(r->action)), std::move(body), r->wait_s, r->warnings);
  }

  void NodeManagement(const httplib::Request& req, httplib::Response& res) {
    if (FromBrowser(req, res)) return;
    auto r = ParseNodeManagementRequest(req.params, req.body);
    if (!r.ok()) return ReplyStatus(res, r.status());
    LogWarnings(req, r->warnings);
    wire::NodeManagementT m;
    m.action = r->start ? wire::NodeAction::Start : wire::NodeAction::Stop;
    wire::CommandBodyUnion body;
    body.Set(std::move(m));
    IssueAndWait(req, res, r->start ? "node start" : "node stop", std::move(body), r->wait_s, r->warnings);
  }

  void Routes(httplib::Server& srv) {
    srv.Post("/api/backup", [this](const httplib::Request& req, httplib::Response& res) { Backup(req, res); });
    srv.Post("/api/node/management",
             [this](const httplib::Request& req, httplib::Response& res) { NodeManagement(req, res); });
    for (const char* path : {"/api/node/status", "/api/node"}) {
      srv.Get(path, [this](const httplib::Request&, httplib::Response& res) { ReplyJson(res, 200, NodeStatusJson()); });
    }
    srv.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(Metrics(), kMetricsContentType);
    });
    // Every other method on a known path: 405 naming the one that works.
    struct Known {
      const char* path;
      const char* allow;
    };
    for (const Known k : {Known{"/api/backup", "POST"}, Known{"/api/node/management", "POST"},
                          Known{"/api/node/status", "GET"}, Known{"/api/node", "GET"}, Known{"/metrics", "GET"}}) {
      const std::string allow = k.allow;
      const std::string path = k.path;
      auto not_allowed = [allow, path](const httplib::Request& req, httplib::Response& res) {
        res.set_header("Allow", allow);
        ReplyError(res, 405, req.method + " is not allowed on " + path + " (use " + allow + ")");
      };
      if (allow != "GET") srv.Get(k.path, not_allowed);
      if (allow != "POST") srv.Post(k.path, not_allowed);
      srv.Put(k.path, not_allowed);
      srv.Delete(k.path, not_allowed);
      srv.Patch(k.path, not_allowed);
      srv.Options(k.path, not_allowed);
    }
  }
};

AgentHttp::AgentHttp(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AgentHttp::~AgentHttp() { Stop(); }

Result<std::unique_ptr<AgentHttp>> AgentHttp::Start(AgentHttpOptions options) {
  if (options.backups == nullptr || !options.services) {
    return Status::InvalidArgument("agent HTTP API: no backup service or node services");
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  impl->SeedFromHistory();
  HttpServerOptions so;
  so.name = "agent HTTP API";
  so.listen = impl->opt.listen;
  Impl* self = impl.get();
  so.on_response = [self](int status) { self->requests.Add({{"code", std::to_string(status)}}).Increment(); };
  LK_ASSIGN_OR_RETURN(impl->server, HttpServer::Start(std::move(so), [self](httplib::Server& s) { self->Routes(s); }));
  return std::unique_ptr<AgentHttp>(new AgentHttp(std::move(impl)));
}

void AgentHttp::Stop() {
  impl_->stopping = true;
  if (impl_->server) impl_->server->Stop();
}

int AgentHttp::port() const { return impl_->server ? impl_->server->port() : 0; }

void AgentHttp::ObserveBackupRun(const FinishedBackupRun& run) { impl_->Observe(run); }

}  // namespace ledgerkeep
