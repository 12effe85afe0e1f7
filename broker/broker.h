// Broker: the central process of a ledgerkeep cluster (DESIGN.md §1–§4).
//
// One thread owns every socket: PUB `cmd`, ROUTER `ctl`, XPUB `events`, the
// ZAP handler and the control pipe (czmq actor style). Each loop turn
// drains what arrived, stages all state changes and events in one RocksDB
// batch, writes it with sync=true (group commit), and only then sends what
// depends on it: report acks, command publications, events, replies.
// Crash behaviour: everything acknowledged or published was durable first, so
// a restarted broker (SIGKILL included) resumes from its data dir with no
// lost node, pending command or event. If the state store fails to write,
// the broker stops with that error rather than run on unsaved state.
#pragma once

#include <memory>
#include <string>

#include "broker/command_tracker.h"
#include "client/broker_client.h"
#include "broker/event_log.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/curve_keys.h"

namespace ledgerkeep {

struct BrokerOptions {
  ClusterConfig config;
  CurveKeyPair key;            // the broker's CURVE server key pair
  std::string data_dir;        // RocksDB state (nodes, commands, event log)
  EventLogOptions events;
  TrackerOptions tracker;
  // Deadline for commands issued without a timeout. Default: 60 s.
  int64_t default_timeout_ms = 60'000;
  // Largest EventPage answer to FetchEvents, in bytes of events; a page holds
  // at least one event whatever its size. Default: 768 KiB (under the 1 MiB
  // message cap).
  size_t max_event_page_bytes = 768 * 1024;
  // Send high-water marks. Default: 100000 each.
  int pub_hwm = 100'000;
  int xpub_hwm = 100'000;
  const Clock* clock = Clock::System();
  // CURVE + ZAP on every endpoint. Only the bus benchmark turns it off, to
  // measure its cost; then senders are trusted by name. No binary exposes it.
  bool curve = true;
};

class Broker {
 public:
  // Opens the state, binds every endpoint and starts serving. Returns once
  // the broker serves, or the reason it cannot (port in use, locked data
  // dir, bad key).
  static Result<std::unique_ptr<Broker>> Start(BrokerOptions options);
  ~Broker();  // Stop()

  // Asks the broker thread to finish its turn and exit; joins it.
  void Stop();
  // Blocks until the broker thread exits; returns why it exited.
  Status Wait();
  // True once the broker thread has exited (on Stop or on a fatal error).
  bool Exited() const;
  // How another part of this process (the HTTP side) talks to the broker:
  // ctl and the event stream over inproc in the broker's context, as the
  // broker's own operator ("broker"). Sockets made with it must be closed
  // before Stop().
  ClientOptions InternalClientOptions() const;

  struct Impl;

 private:
  explicit Broker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledgerkeep
