// BrokerClient: the operator side of the ctl protocol (used by the CLI, the
// broker's own workflows over inproc, the tests and the benchmarks).
// EventFollower: replay-then-follow of the event log with no gap and no
// duplicate.
//
// Each object owns its sockets and must be used from one thread. Calls wait
// at most `timeout_ms` for the broker; no answer is Status::Unavailable
// (exit code 3 in the CLI), a refused key is PermissionDenied.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/codec.h"
#include "common/config.h"
#include "common/curve_keys.h"

namespace zmq {
class context_t;
}

namespace ledgerkeep {

struct ClientOptions {
  ClusterConfig config;
  CurveKeyPair key;       // an operator (or subscriber) key pair
  int64_t timeout_ms = 5000;
  bool curve = true;  // off only in the bus benchmark (see BrokerOptions::curve)
  // The broker's own workflows talk to it over inproc: its context and
  // endpoint (no CURVE on inproc). Default: own context, the config's ctl.
  zmq::context_t* context = nullptr;
  std::string endpoint;
  // EventFollower's live stream: default the config's events port; the
  // broker's own HTTP side uses its inproc events endpoint (no CURVE).
  std::string events_endpoint;
};

struct FetchedPage {
  std::vector<DecodedEnvelope> events;  // Envelope{Event}, ascending seq
  uint64_t next_seq = 0;
  uint64_t head_seq = 0;
  uint64_t first_seq = 0;
};

class BrokerClient {
 public:
  static Result<std::unique_ptr<BrokerClient>> Connect(ClientOptions options);
  ~BrokerClient();

  // One request, one reply (ErrorReply becomes its Status).
  Result<DecodedEnvelope> Request(wire::BodyUnion body);

  Result<wire::NodeListT> ListNodes();
  // `idempotency_key` (optional): the broker issues one command per key and
  // answers a repeat with that command. `requested_by` (agent keys only):
  // the local requester the broker records with the agent as issuer.
  Result<wire::CommandStatusT> Issue(const wire::TargetT& target, wire::CommandBodyUnion body,
                                     uint32_t timeout_ms, const std::string& idempotency_key = "",
                                     const std::string& requested_by = "");
  // Follows a command until every target is done or `max_wait_ms` passes
  // (then returns the last status seen with finished=false). on_update sees
  // every status pushed meanwhile.
  Result<wire::CommandStatusT> Wait(uint64_t cmd_id, int64_t max_wait_ms,
                                    const std::function<void(const wire::CommandStatusT&)>& on_update);
  Result<FetchedPage> FetchEvents(uint64_t from_seq, uint32_t max_events, const std::string& prefix);
  // The newest events at or below `upto_seq` (UINT64_MAX: the head) that
  // match `prefix`, up to max_events, in ascending order. The broker
  // examines a bounded number of events per request: next_seq is where to
  // continue backwards (the next upto_seq), 0 when no older event is left.
  Result<FetchedPage> FetchNewestEvents(uint64_t upto_seq, uint32_t max_events, const std::string& prefix);
  // Where to start reading to see the newest `n` events that match `prefix`:
  // the sequence number of the oldest of them, or the head + 1 when none
  // matches. With a prefix it pages backwards from the head (FetchNewestEvents),
  // so they are found however many newer events do not match; without one
  // the log is dense and only the head is asked for. `n` must be at least 1.
  Result<uint64_t> StartOfNewestEvents(uint64_t n, const std::string& prefix);
  // Starts a broker workflow and returns its first status.
  Result<wire::WorkflowStatusT> StartWorkflow(const std::string& kind, const std::string& params_json);
  Result<wire::WorkflowStatusT> GetWorkflowStatus(uint64_t run_id);
  // Asks the running workflow (0 = whichever runs) to abort and roll back.
  Result<wire::WorkflowStatusT> AbortWorkflow(uint64_t run_id);

  struct Impl;

 private:
  Result<wire::WorkflowStatusT> WorkflowRequest(wire::BodyUnion body);
  Result<FetchedPage> FetchPage(wire::FetchEventsT request);
  explicit BrokerClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Replays the event log from a sequence number and then follows it live.
// Subscribes first, then pages history over ctl; live events are merged by
// sequence, and any gap in the live stream (a slow-subscriber drop, a
// reconnect) is filled from history, so each event is delivered exactly
// once and in order.
class EventFollower {
 public:
  // prefix filters on "<kind>.<node>" (e.g. "command" or "status.r1").
  static Result<std::unique_ptr<EventFollower>> Start(ClientOptions options, uint64_t from_seq,
                                                      std::string prefix);
  ~EventFollower();
  // The next event in order, waiting up to wait_ms for a live one;
  // nullopt when nothing arrived in time.
  Result<std::optional<DecodedEnvelope>> Next(int64_t wait_ms);
  // Next sequence number not yet delivered or known to be filtered out.
  uint64_t next_seq() const;

  struct Impl;

 private:
  explicit EventFollower(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledgerkeep
