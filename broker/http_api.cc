#include "broker/http_api.h"

#include <fcntl.h>
#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <thread>

#include "broker/observed_state.h"
#include "broker/status_page.h"
#include "client/event_format.h"
#include "http/http_server.h"
#include "http/metrics_text.h"

namespace ledgerkeep {
namespace {

constexpr int64_t kWatcherRetryMs = 1000;

// Unsigned decimal, nothing else; nullopt for anything that is not one.
std::optional<uint64_t> ParseU64(const std::string& s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

bool ValidPrefix(const std::string& p) {
  if (p.size() > 64) return false;
  for (char c : p) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  }
  return true;
}

// Compares without stopping at the first difference.
bool SameToken(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

nlohmann::json WorkflowJson(const wire::WorkflowStatusT& w) {
  nlohmann::json report = nlohmann::json::object();
  if (!w.report_json.empty()) {
    report = nlohmann::json::parse(w.report_json, nullptr, /*allow_exceptions=*/false);
    if (report.is_discarded()) report = nlohmann::json::object();
  }
  return {{"run_id", w.run_id},       {"kind", w.kind},
          {"state", w.state},         {"step", w.step},
          {"finished", w.finished},   {"error", w.error},
          {"report", report},         {"started_at_ms", w.started_at_ms},
          {"finished_at_ms", w.finished_at_ms}};
}

}  // namespace

struct BrokerHttp::Impl {
  BrokerHttpOptions opt;
  prometheus::Registry registry;
  std::unique_ptr<ObservedState> state;
  prometheus::Family<prometheus::Counter>* requests = nullptr;
  std::unique_ptr<HttpServer> server;
  std::thread watcher;
  std::atomic<bool> stopping{false};
  std::atomic<int> streams{0};

  Result<std::unique_ptr<BrokerClient>> Connect() const { return BrokerClient::Connect(opt.client); }

  bool Authorized(const httplib::Request& req, httplib::Response& res) const {
    const std::string h = req.get_header_value("Authorization");
    static const std::string kBearer = "Bearer ";
    if (h.size() > kBearer.size() && h.compare(0, kBearer.size(), kBearer) == 0 &&
        SameToken(h.substr(kBearer.size()), opt.token)) {
      return true;
    }
    res.set_header("WWW-Authenticate", "Bearer realm=\"ledgerkeep\"");
    ReplyError(res, 401,
               h.empty() ? "this endpoint needs 'Authorization: Bearer <token>' (the token is in the file named "
                           "by the cluster config's [http] token_file)"
                         : "token refused");
    return false;
  }

  // The watcher thread: replays the log from its start, then follows it.
  // Its sockets live and die on this thread.
  void Watch() {
    uint64_t next = 1;
    while (!stopping) {
      auto follower = EventFollower::Start(opt.client, next, "");
      auto client = Connect();
      if (!follower.ok() || !client.ok()) {
        spdlog::warn("broker HTTP: cannot follow the event log yet: {}",
                     (!follower.ok() ? follower.status() : client.status()).ToString());
        std::this_thread::sleep_for(std::chrono::milliseconds(kWatcherRetryMs));
        continue;
      }
      while (!stopping) {
        auto ev = (*follower)->Next(200);
        if (!ev.ok()) {
          spdlog::warn("broker HTTP: following the event log: {}; starting again", ev.status().ToString());
          break;
        }
        if (!ev->has_value()) continue;
        const wire::Event* e = (**ev)->body_as_Event();
        if (e == nullptr) continue;
        next = e->seq() + 1;
        auto finished = state->Apply(*e);
        if (!finished) continue;
        auto w = (*client)->GetWorkflowStatus(*finished);
        if (!w.ok()) {
          spdlog::warn("broker HTTP: maintenance run {} finished but its record cannot be read: {}", *finished,
                       w.status().ToString());
          continue;
        }
        const nlohmann::json j = WorkflowJson(*w);
        state->MaintenanceFinished(*finished, ObservedState::OutcomeOf(w->state, j["report"]), j["report"]);
      }
    }
  }

  void Routes(httplib::Server& srv) {
    srv.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      auto c = Connect();
      auto nodes = c.ok() ? (*c)->ListNodes() : Result<wire::NodeListT>(c.status());
      if (!nodes.ok()) {
        return ReplyJson(res, 503, {{"status", "unavailable"}, {"error", nodes.status().message()}});
      }
      int alive = 0;
      for (const auto& n : nodes->nodes) alive += n && n->state == wire::NodeState::Alive ? 1 : 0;
      ReplyJson(res, 200,
                {{"status", "ok"},
                 {"event_log_head", state->head_seq()},
                 {"nodes", nodes->nodes.size()},
                 {"nodes_alive", alive}});
    });
    srv.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      auto c = Connect();
      if (c.ok()) {
        if (auto nodes = (*c)->ListNodes(); nodes.ok()) state->SetNodes(*nodes);
      }
      state->RefreshAges(opt.clock->NowMs());
      res.set_content(RenderMetrics(registry), kMetricsContentType);
    });
    srv.Get("/api/nodes", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      auto c = Connect();
      auto nodes = c.ok() ? (*c)->ListNodes() : Result<wire::NodeListT>(c.status());
      if (!nodes.ok()) return ReplyStatus(res, nodes.status());
      ReplyJson(res, 200, state->NodesJson(*nodes));
    });
    srv.Get("/api/backups", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      auto c = Connect();
      auto nodes = c.ok() ? (*c)->ListNodes() : Result<wire::NodeListT>(c.status());
      if (!nodes.ok()) return ReplyStatus(res, nodes.status());
      ReplyJson(res, 200, state->BackupsJson(opt.clock->NowMs(), *nodes));
    });
    srv.Get(R"(/api/maintenance/([^/]*))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      const std::string id = req.matches[1];
      uint64_t run = 0;
      if (id == "latest") {
        run = state->latest_maintenance_run();
        if (run == 0) return ReplyError(res, 404, "no maintenance run yet");
      } else if (auto n = ParseU64(id); n && *n > 0) {
        run = *n;
      } else {
        return ReplyError(res, 400, "'" + id.substr(0, 40) + "' is not a run id (a number, or 'latest')");
      }
      auto c = Connect();
      auto w = c.ok() ? (*c)->GetWorkflowStatus(run) : Result<wire::WorkflowStatusT>(c.status());
      if (!w.ok()) return ReplyStatus(res, w.status());
      if (w->kind != "maintenance") {
        return ReplyError(res, 404, "run " + std::to_string(run) + " is a " + w->kind + " run, not a maintenance run");
      }
      ReplyJson(res, 200, WorkflowJson(*w));
    });
    srv.Get("/api/events", [this](const httplib::Request& req, httplib::Response& res) { Events(req, res); });
    srv.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Referrer-Policy", "no-referrer");
      res.set_header("Content-Security-Policy",
                     "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                     "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
                     "form-action 'none'");
      const std::string_view page = StatusPageHtml();
      res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
    });
    // Every other method on a known path: 405, not 404.
    for (const char* path : {"/healthz", "/metrics", "/api/nodes", "/api/backups", "/api/events", "/"}) {
      auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
        res.set_header("Allow", "GET");
        ReplyError(res, 405, "only GET is served here");
      };
      srv.Post(path, not_allowed);
      srv.Put(path, not_allowed);
      srv.Delete(path, not_allowed);
      srv.Patch(path, not_allowed);
    }
  }

  // Server-Sent Events: every event after `since` (or Last-Event-ID), then
  // live ones; `id:` is the sequence number, `data:` one JSON object.
  void Events(const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req, res)) return;
    uint64_t from = 0;  // 0: from the head + 1 (live only)
    const std::string last_id = req.get_header_value("Last-Event-ID");
    if (!last_id.empty()) {
      auto n = ParseU64(last_id);
      if (!n) return ReplyError(res, 400, "Last-Event-ID must be an event sequence number");
      from = *n + 1;
    } else if (req.has_param("since")) {
      auto n = ParseU64(req.get_param_value("since"));
      if (!n) return ReplyError(res, 400, "since must be an event sequence number (0 = the whole log)");
      from = *n + 1;
    }
    const std::string prefix = req.get_param_value("prefix");
    if (!ValidPrefix(prefix)) {
      return ReplyError(res, 400, "prefix is '<kind>' or '<kind>.<node>' (letters, digits, '.', '_', '-')");
    }
    if (streams.fetch_add(1) >= opt.max_event_streams) {
      streams.fetch_sub(1);
      return ReplyError(res, 503, "too many event streams open (" + std::to_string(opt.max_event_streams) +
                                      "); close one and retry");
    }
    if (from == 0) from = state->head_seq() + 1;
    // The follower is made and used on this request's thread only (httplib
    // calls the provider on the thread that serves the request).
    struct Stream {
      std::unique_ptr<EventFollower> follower;
      int64_t last_write_ms = 0;
      std::atomic<int>* streams;
      ~Stream() { streams->fetch_sub(1); }
    };
    auto stream = std::make_shared<Stream>();
    stream->streams = &streams;
    res.set_header("Cache-Control", "no-store");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, stream, from, prefix](size_t, httplib::DataSink& sink) {
          if (!stream->follower) {
            auto f = EventFollower::Start(opt.client, from, prefix);
            if (!f.ok()) {
              const std::string msg = ": cannot follow the event log: " + f.status().message() + "\n\n";
              sink.write(msg.data(), msg.size());
              return false;
            }
            stream->follower = std::move(*f);
            stream->last_write_ms = opt.clock->NowMs();
            static const std::string kHello = ": ledgerkeep event stream\nretry: 2000\n\n";
            if (!sink.write(kHello.data(), kHello.size())) return false;
          }
          for (int i = 0; i < 50 && !stopping; ++i) {
            if (!sink.is_writable()) return false;
            auto ev = stream->follower->Next(200);
            if (!ev.ok()) return false;  // the client reconnects with Last-Event-ID
            const int64_t now = opt.clock->NowMs();
            if (!ev->has_value()) {
              if (now - stream->last_write_ms >= opt.keepalive_ms) {
                static const std::string kKeepAlive = ": keep-alive\n\n";
                if (!sink.write(kKeepAlive.data(), kKeepAlive.size())) return false;
                stream->last_write_ms = now;
              }
              continue;
            }
            const wire::Event* e = (**ev)->body_as_Event();
            if (e == nullptr) continue;
            const std::string msg =
                "id: " + std::to_string(e->seq()) + "\ndata: " + EventToJson(*e).dump() + "\n\n";
            if (!sink.write(msg.data(), msg.size())) return false;
            stream->last_write_ms = now;
          }
          return !stopping;
        });
  }
};

Result<std::unique_ptr<BrokerHttp>> BrokerHttp::Start(BrokerHttpOptions options) {
  if (options.token.empty()) return Status::InvalidArgument("broker HTTP needs a token");
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  impl->state = std::make_unique<ObservedState>(impl->registry);
  impl->requests = &prometheus::BuildCounter()
                        .Name("ledgerkeep_http_requests_total")
                        .Help("HTTP requests answered, by status code")
                        .Register(impl->registry);
  HttpServerOptions so;
  so.name = "broker HTTP";
  so.listen = impl->opt.listen;
  so.threads = impl->opt.max_event_streams + 8;  // streams hold a thread each; the API keeps 8
  Impl* raw = impl.get();
  so.on_response = [raw](int code) { raw->requests->Add({{"code", std::to_string(code)}}).Increment(); };
  LK_ASSIGN_OR_RETURN(impl->server, HttpServer::Start(so, [raw](httplib::Server& srv) { raw->Routes(srv); }));
  impl->watcher = std::thread([raw] { raw->Watch(); });
  return std::unique_ptr<BrokerHttp>(new BrokerHttp(std::move(impl)));
}

BrokerHttp::BrokerHttp(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BrokerHttp::~BrokerHttp() { Stop(); }

void BrokerHttp::Stop() {
  impl_->stopping = true;
  if (impl_->server) impl_->server->Stop();
  if (impl_->watcher.joinable()) impl_->watcher.join();
}

int BrokerHttp::port() const { return impl_->server->port(); }

Result<std::string> LoadOrCreateHttpToken(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status::IOError("cannot read the HTTP token file " + path + ": " + strerror(errno));
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    unsigned char raw[24];
    std::ifstream urandom("/dev/urandom", std::ios::binary);
    if (!urandom.read(reinterpret_cast<char*>(raw), sizeof raw)) {
      return Status::IOError("cannot read /dev/urandom for a new HTTP token");
    }
    static const char* kHex = "0123456789abcdef";
    std::string token;
    for (unsigned char b : raw) {
      token.push_back(kHex[b >> 4]);
      token.push_back(kHex[b & 15]);
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return Status::IOError("cannot create the HTTP token file " + path + ": " + strerror(errno));
    const std::string line = token + "\n";
    const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) return Status::IOError("cannot write the HTTP token file " + path);
    spdlog::info("created the broker's HTTP bearer token in {} (mode 0600)", path);
    return token;
  }
  if ((st.st_mode & 077) != 0) {
    return Status::FailedPrecondition("the HTTP token file " + path +
                                      " is readable or writable by group or others; run `chmod 600 " + path + "`");
  }
  std::ifstream in(path);
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) token.pop_back();
  if (token.size() < 16) {
    return Status::InvalidArgument("the HTTP token in " + path +
                                   " is shorter than 16 characters; delete the file and the broker makes a new one");
  }
  return token;
}

}  // namespace ledgerkeep
