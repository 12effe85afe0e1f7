// BrokerHttp: the broker's HTTP side (issue 16, docs/http-and-metrics.md):
// /healthz and /metrics for anyone who can reach the port; the JSON API
// (/api/nodes, /api/backups, /api/maintenance/<id>), the event stream
// (/api/events, Server-Sent Events) and the status page's data behind a
// bearer token; the status page itself at /.
//
// It never touches the broker's state directly: it talks to the broker over
// inproc like any operator (ListNodes, FetchEvents, GetWorkflowStatus), and a
// watcher thread follows the durable event log from its start into an
// ObservedState (backup history, wedge state, maintenance outcomes,
// metrics). So the broker's socket thread stays the only owner of its
// sockets, and what the HTTP side shows survives a broker restart.
// Stop() before the Broker it talks to.
#pragma once

#include <memory>
#include <string>

#include "client/broker_client.h"
#include "common/clock.h"
#include "common/listen_address.h"

namespace ledgerkeep {

struct BrokerHttpOptions {
  ListenAddress listen;
  std::string token;          // required: the bearer token for /api/*
  ClientOptions client;       // Broker::InternalClientOptions()
  const Clock* clock = Clock::System();
  // Concurrent /api/events streams; more get 503. Default: 16.
  int max_event_streams = 16;
  // Idle event streams get a comment line this often. Default: 15 s.
  int64_t keepalive_ms = 15'000;
};

class BrokerHttp {
 public:
  static Result<std::unique_ptr<BrokerHttp>> Start(BrokerHttpOptions options);
  ~BrokerHttp();  // Stop()
  void Stop();
  int port() const;

  struct Impl;

 private:
  explicit BrokerHttp(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The bearer token in `path` (its first line). A missing file is created
// with a new random token, mode 0600. A file readable or writable by group
// or others is refused (FailedPrecondition naming `chmod 600`), as is a
// token shorter than 16 characters.
Result<std::string> LoadOrCreateHttpToken(const std::string& path);

}  // namespace ledgerkeep
