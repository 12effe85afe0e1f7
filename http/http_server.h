// HttpServer: one small HTTP server (cpp-httplib) with the limits every
// ledgerkeep endpoint needs, so bad input never costs more than a 4xx:
//   - bodies over `max_body_bytes` get 413 before they are read;
//   - a client that sends nothing (or too slowly) is dropped after
//     `read_timeout_s`; a fixed pool of `threads` serves requests, so a few
//     slow clients cannot starve the others for long;
//   - unknown paths get a JSON 404, a handler's exception a JSON 500; the
//     server keeps serving.
// Routes are registered on the httplib::Server before Start() listens.
// Thread-safety: handlers run on the pool's threads; Stop() is idempotent and
// joins the listener.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/listen_address.h"
#include "common/status.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace ledgerkeep {

struct HttpServerOptions {
  std::string name = "http";      // in log lines: "agent HTTP API", "broker HTTP"
  ListenAddress listen;            // not off
  size_t max_body_bytes = 64 * 1024;
  int read_timeout_s = 5;
  int write_timeout_s = 10;
  int threads = 16;
  // Called after every answered request with its status code (metrics).
  std::function<void(int status)> on_response;
};

class HttpServer {
 public:
  // `routes` registers handlers on the server (called once, before listening).
  // Fails (Unavailable) if the address cannot be bound, naming it.
  static Result<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                   const std::function<void(httplib::Server&)>& routes);
  ~HttpServer();  // Stop()
  void Stop();
  int port() const { return port_; }

 private:
  HttpServer() = default;
  HttpServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// JSON replies. Errors are {"ok": false, "error": message, "code": name}.
void ReplyJson(httplib::Response& res, int status, const nlohmann::json& body);
void ReplyError(httplib::Response& res, int status, const std::string& message);
// The HTTP status for a failed Status: InvalidArgument 400, NotFound 404,
// PermissionDenied 403, AlreadyExists/FailedPrecondition/Aborted 409,
// Unavailable/Busy/NoSpace 503, Timeout/Expired 504, else 500.
int HttpStatusFor(const Status& s);
void ReplyStatus(httplib::Response& res, const Status& s);
// "127.0.0.1:50412": who sent the request (for logs and the event log).
std::string PeerOf(const httplib::Request& req);

}  // namespace ledgerkeep
