// ScriptedBroker: the broker's side of the bus, played by a test against a
// real Agent: a CURVE ROUTER `ctl` and a PUB `cmd` on loopback. It answers
// Hello with Welcome, Heartbeat with HeartbeatAck and (unless told not to)
// each Report with a ReportAck, keeps every report it receives, and sends
// commands straight to the agent over ctl, so a test decides exactly what the
// agent sees: the same command twice, another broker instance, a command
// whose handler throws. One agent at a time (the last one heard from).
// Thread-safety: one owner thread.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <zmq.hpp>

#include "common/codec.h"
#include "common/curve_keys.h"

namespace ledgerkeep::test {

class ScriptedBroker {
 public:
  ScriptedBroker(const CurveKeyPair& key, int ctl_port, int cmd_port);

  // Receives for `ms`, answering as the broker instance `instance`; with
  // `send_pings`, also sends the agent a Ping every 50 ms. Returns how many
  // messages of each body type arrived.
  std::map<wire::Body, int> Serve(int ms, const std::string& instance, bool send_pings = false);
  // Serves (as instance "A") until `done()` holds or `timeout` passed;
  // returns done().
  bool ServeUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout);

  // Sends `cmd` to the agent over ctl; false if no agent has spoken yet.
  bool SendCommand(const wire::CommandT& cmd);
  // A command for node `node` with this id, no deadline, and `body`.
  static wire::CommandT MakeCommand(uint64_t cmd_id, const std::string& node, wire::CommandBodyUnion body);

  // Every Report received, in arrival order (resent ones again).
  const std::deque<wire::ReportT>& reports() const { return reports_; }
  // The CommandResult reports about `cmd_id`, in arrival order.
  std::vector<const wire::ReportT*> ResultsFor(uint64_t cmd_id) const;
  int hellos() const { return hellos_; }

  // Whether Reports are acknowledged (ReportAck). Default: true.
  void set_ack_reports(bool ack) { ack_reports_ = ack; }

 private:
  void ReceiveAll(const std::string& instance, std::map<wire::Body, int>* seen);
  template <typename T>
  void Send(T body);

  zmq::context_t ctx_{1};
  zmq::socket_t ctl_{ctx_, zmq::socket_type::router};
  zmq::socket_t pub_{ctx_, zmq::socket_type::pub};
  std::string agent_rid_;
  uint64_t last_seq_ = 0;
  uint64_t next_msg_id_ = 1;
  uint64_t next_ping_id_ = 1'000'000;
  bool ack_reports_ = true;
  int hellos_ = 0;
  std::deque<wire::ReportT> reports_;
};

}  // namespace ledgerkeep::test
