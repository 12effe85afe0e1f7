#include "http/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <exception>

namespace ledgerkeep {

void ReplyJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  // Replies quote what clients sent (a field name, a parser's "last read"):
  // bytes that are not UTF-8 become U+FFFD instead of an exception.
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", "application/json");
}

void ReplyError(httplib::Response& res, int status, const std::string& message) {
  ReplyJson(res, status, {{"ok", false}, {"error", message}, {"code", status}});
}

int HttpStatusFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAborted: return 409;
    case StatusCode::kUnavailable:
    case StatusCode::kBusy:
    case StatusCode::kNoSpace: return 503;
    case StatusCode::kTimeout:
    case StatusCode::kExpired: return 504;
    default: return 500;
  }
}

void ReplyStatus(httplib::Response& res, const Status& s) {
  ReplyJson(res, HttpStatusFor(s),
            {{"ok", false}, {"error", s.message()}, {"code", std::string(StatusCodeName(s.code()))}});
}

std::string PeerOf(const httplib::Request& req) { return req.remote_addr + ":" + std::to_string(req.remote_port); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                      const std::function<void(httplib::Server&)>& routes) {
  if (options.listen.off) return Status::InvalidArgument(options.name + ": listen is off");
  std::unique_ptr<HttpServer> s(new HttpServer());
  s->options_ = std::move(options);
  s->server_ = std::make_unique<httplib::Server>();
  httplib::Server& srv = *s->server_;
  const int threads = s->options_.threads;
  srv.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  srv.set_payload_max_length(s->options_.max_body_bytes);
  srv.set_read_timeout(s->options_.read_timeout_s, 0);
  srv.set_write_timeout(s->options_.write_timeout_s, 0);
  srv.set_keep_alive_max_count(100);
  const std::string name = s->options_.name;
  srv.set_exception_handler([name](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("{}: internal error answering {} {}: {}; still serving", name, req.method, req.path, what);
    ReplyError(res, 500, "internal error: " + what);
  });
  // httplib calls this for every status >= 400 a handler left without a body
  // (unknown path 404, 413 too large, 400 unparseable request line, ...).
  srv.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg;
    switch (res.status) {
      case 404: msg = "no such path: " + req.path + " (see docs/http-and-metrics.md)"; break;
      case 413: msg = "request body too large"; break;
      case 405: msg = "method not allowed"; break;
      default: msg = "bad request (" + std::to_string(res.status) + ")"; break;
    }
    ReplyError(res, res.status, msg);
  });
  // RFC 9112 6.3: a request with neither Content-Length nor
  // Transfer-Encoding has an empty body. httplib 0.11 instead reads such a
  // POST until the client closes, so `curl -X POST URL` (the runbook's node
  // stop and start) waited out the read timeout and got a 400. Say so with
  // the header it looks for. The Request is httplib's own mutable local
  // (Server::process_request), handed to this hook as const.
  srv.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      const_cast<httplib::Request&>(req).headers.emplace("Content-Length", "0");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  auto on_response = s->options_.on_response;
  srv.set_logger([name, on_response](const httplib::Request& req, const httplib::Response& res) {
    if (on_response) on_response(res.status);
    if (res.status >= 400) {
      spdlog::info("{}: {} {} from {} -> {}", name, req.method, req.path, PeerOf(req), res.status);
    } else {
      spdlog::debug("{}: {} {} from {} -> {}", name, req.method, req.path, PeerOf(req), res.status);
    }
  });
  routes(srv);
  const ListenAddress& l = s->options_.listen;
  if (l.port == 0) {
    s->port_ = srv.bind_to_any_port(l.host);
    if (s->port_ <= 0) return Status::Unavailable(name + ": cannot listen on " + l.host + " (any port)");
  } else {
    if (!srv.bind_to_port(l.host, l.port)) {
      return Status::Unavailable(name + ": cannot listen on " + l.ToString() +
                                 " (in use, or not an address of this host); set [http] listen to another "
                                 "address or \"off\"");
    }
    s->port_ = l.port;
  }
  s->thread_ = std::thread([srv_ptr = s->server_.get()] { srv_ptr->listen_after_bind(); });
  spdlog::info("{} listening on http://{}:{}/", name, l.host, s->port_);
  return s;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace ledgerkeep
