// AgentHttp: the runbook's HTTP API on every agent, and its /metrics
// (issue 16; the contract is docs/http-and-metrics.md, "The agent").
//
//   POST /api/backup?action=schedule|run_now|unschedule   this node's backups
//   POST /api/node/management?action=stop|start          this node's components
//   GET  /api/node/status (also /api/node)                what the node knows, locally
//   GET  /metrics                                         Prometheus text
//
// Actions never run here: each request's handler thread opens its own
// BrokerClient (its own socket, used only on that thread) with the agent's
// own key and asks the broker to issue the command to this node, with
// requested_by "agent HTTP API, <peer>", then follows it to its result. So
// an HTTP action goes through the broker's destination rules, command log
// and event log, this agent's journal and the same handler as one from the
// CLI. The broker unreachable: 503, nothing ran. Requests are checked first
// (agents/runbook_request.h): a bad one is a 400 and nothing is issued.
// A POST that carries an Origin header (a web page, not curl) is refused
// with 403: a loopback API without a token must not be drivable from a
// browser on the node.
//
// Status and /metrics answer locally, without the broker: ledgerd through
// its control socket (at request time), backups from the BackupService.
//
// Thread-safety: handlers run on the HTTP server's pool; ObserveBackupRun
// may be called from any thread. Stop() stops serving (requests waiting for
// a command answer 202 within about a second) and keeps the metrics; destroy
// this object only after nothing calls ObserveBackupRun any more (after the
// agent and the backup service stopped).
#pragma once

#include <memory>
#include <string>

#include "agents/backup_service.h"
#include "agents/node_handlers.h"
#include "client/broker_client.h"
#include "common/clock.h"
#include "common/listen_address.h"

namespace ledgerkeep {

struct AgentHttpOptions {
  ListenAddress listen;  // not off
  std::string node_id;
  wire::Role role = wire::Role::Replica;
  bool clone = false;
  std::string version;
  // How a request reaches the broker: the cluster config and this agent's
  // own key (its name must be the node id: the broker checks the sender).
  ClientOptions broker;
  BackupService* backups = nullptr;         // required; outlives this object
  std::shared_ptr<NodeServices> services;   // required
  const Clock* clock = Clock::System();
  // How long ledgerd may take to answer a status or a scrape. Default: 1 s.
  int64_t ledger_timeout_ms = 1000;
};

class AgentHttp {
 public:
  // Binds and serves. Unavailable naming the address when it cannot bind.
  // Seeds the backup metrics from the service's persisted runs.
  static Result<std::unique_ptr<AgentHttp>> Start(AgentHttpOptions options);
  ~AgentHttp();  // Stop()
  void Stop();
  int port() const;

  // A backup run the service finished (BackupService::SetRunObserver).
  void ObserveBackupRun(const FinishedBackupRun& run);

  struct Impl;

 private:
  explicit AgentHttp(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledgerkeep
