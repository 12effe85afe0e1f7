// Agent: the process on every replica and client node (DESIGN.md §1–§2).
//
// One thread owns the agent's sockets (SUB on `cmd`, DEALER on `ctl`) and a
// wake-up eventfd for its workers. It says Hello, heartbeats, subscribes to
// cmd.all / cmd.role.<role> / cmd.node.<id>, journals and acks each command
// addressed to it (deduplicated by cmd_id), runs it through its handler on a
// lane worker, and sends progress and the result as numbered Reports that
// stay in its journal until the broker acknowledges them.
// When the broker goes silent (lost_after heartbeats) the agent drops its
// sockets and reconnects after an exponential backoff with jitter.
// Crash behaviour: after SIGKILL and restart, commands that were running are
// reported as interrupted (not re-run) and unacknowledged reports are resent.
// Commands count only once the broker welcomed this connection. If the
// broker keeps refusing it because another process serves this node, the
// agent stops and Wait() returns AlreadyExists with the broker's reason.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agents/agent_journal.h"
#include "agents/command_handler.h"
#include "common/config.h"
#include "common/curve_keys.h"

namespace zmq {
class context_t;
}

namespace ledgerkeep {

struct AgentOptions {
  ClusterConfig config;
  CurveKeyPair key;
  std::string node_id;
  wire::Role role = wire::Role::Replica;
  // A restore clone (says so in Hello): the broker leaves it out of role/all
  // targeting. Default: false.
  bool clone = false;
  std::string version = "0.1.0";
  // The journal; the agent takes ownership. Required.
  std::unique_ptr<AgentJournal> journal;
  // The agent's data directory (the journal lives under it). Checked every
  // heartbeat interval: if it (or its journal/ directory) is deleted or
  // replaced by another directory, the agent logs which and why, tells the
  // broker (a Note, not journaled), journals nothing more and stops; Wait()
  // returns FailedPrecondition. Default: "" (not checked: in-memory journals).
  std::string data_dir;
  const Clock* clock = Clock::System();
  // Reconnect backoff after the broker went silent. Defaults: 200 ms .. 10 s.
  int64_t reconnect_base_ms = 200;
  int64_t reconnect_max_ms = 10'000;
  // Optional shared ZeroMQ context (benchmarks run many agents in one
  // process); by default the agent has its own.
  zmq::context_t* context = nullptr;
  // CURVE on the broker connection. Only the bus benchmark turns it off, to
  // measure its cost; no binary exposes this.
  bool curve = true;
};

class Agent {
 public:
  // Starts the agent thread. Fails on a bad option or if the first
  // connection attempt cannot even be set up.
  static Result<std::unique_ptr<Agent>> Start(AgentOptions options, HandlerMap handlers);
  ~Agent();  // Stop()

  void Stop();
  bool Exited() const;
  Status Wait();

  // Sends a report that is not about a command (a scheduled backup's
  // progress or result). Thread-safe; journaled like every report, so it
  // reaches the broker even if the broker is down right now.
  std::function<void(wire::ReportBodyUnion)> Reporter();

  struct Impl;

 private:
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledgerkeep
