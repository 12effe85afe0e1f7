#include "tests/support/scripted_broker.h"

#include "common/clock.h"
#include "common/zmq_util.h"

namespace ledgerkeep::test {

using SteadyClock = std::chrono::steady_clock;

ScriptedBroker::ScriptedBroker(const CurveKeyPair& key, int ctl_port, int cmd_port) {
  for (zmq::socket_t* s : {&ctl_, &pub_}) {
    s->set(zmq::sockopt::curve_server, 1);
    s->set(zmq::sockopt::curve_secretkey, key.secret_z85);
    s->set(zmq::sockopt::linger, 0);
  }
  ctl_.bind("tcp://127.0.0.1:" + std::to_string(ctl_port));
  pub_.bind("tcp://127.0.0.1:" + std::to_string(cmd_port));
}

std::map<wire::Body, int> ScriptedBroker::Serve(int ms, const std::string& instance, bool send_pings) {
  std::map<wire::Body, int> seen;
  const auto end = SteadyClock::now() + std::chrono::milliseconds(ms);
  auto next_ping = SteadyClock::now();
  while (SteadyClock::now() < end) {
    if (send_pings && !agent_rid_.empty() && SteadyClock::now() >= next_ping) {
      wire::CommandBodyUnion body;
      body.Set(wire::PingT{});
      SendCommand(MakeCommand(next_ping_id_++, "r1", std::move(body)));
      next_ping = SteadyClock::now() + std::chrono::milliseconds(50);
    }
    ReceiveAll(instance, &seen);
  }
  return seen;
}

bool ScriptedBroker::ServeUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto end = SteadyClock::now() + timeout;
  std::map<wire::Body, int> seen;
  while (!done()) {
    if (SteadyClock::now() >= end) return false;
    ReceiveAll("A", &seen);
  }
  return true;
}

void ScriptedBroker::ReceiveAll(const std::string& instance, std::map<wire::Body, int>* seen) {
  zmq::pollitem_t item{ctl_.handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, std::chrono::milliseconds(10));
  while (auto frames = RecvMultipartNoWait(ctl_)) {
    if (frames->size() != 2) continue;
    auto env = DecodeEnvelope((*frames)[1].data(), (*frames)[1].size());
    if (!env.ok()) continue;
    const wire::Body type = (*env)->body_type();
    ++(*seen)[type];
    agent_rid_ = (*frames)[0].to_string();
    if (type == wire::Body::Hello) {
      ++hellos_;
      wire::WelcomeT w;
      w.broker_instance = instance;
      w.node_index = 1;
      w.stored_report_seq = last_seq_;
      Send(std::move(w));
    } else if (type == wire::Body::Heartbeat) {
      wire::HeartbeatAckT a;
      a.broker_instance = instance;
      Send(std::move(a));
    } else if (type == wire::Body::Report) {
      wire::ReportT r;
      (*env)->body_as_Report()->UnPackTo(&r);
      reports_.push_back(std::move(r));
      if (!ack_reports_) continue;
      last_seq_ = std::max(last_seq_, (*env)->body_as_Report()->seq());
      wire::ReportAckT a;
      a.upto_seq = last_seq_;
      a.broker_instance = instance;
      Send(std::move(a));
    }
  }
}

template <typename T>
void ScriptedBroker::Send(T body) {
  EnvelopeHeader h;
  h.sender = "broker";
  h.msg_id = next_msg_id_++;
  wire::BodyUnion b;
  b.Set(std::move(body));
  SendFramesNoWait(ctl_, {agent_rid_, BuildEnvelope(h, std::move(b))});
}

bool ScriptedBroker::SendCommand(const wire::CommandT& cmd) {
  if (agent_rid_.empty()) return false;
  Send(wire::CommandT(cmd));
  return true;
}

wire::CommandT ScriptedBroker::MakeCommand(uint64_t cmd_id, const std::string& node,
                                           wire::CommandBodyUnion body) {
  wire::CommandT cmd;
  cmd.cmd_id = cmd_id;
  cmd.issued_at_ms = MonotonicMs();
  cmd.deadline_ms = INT64_MAX;
  cmd.targets = {node};
  cmd.issuer = "test";
  cmd.body = std::move(body);
  return cmd;
}

std::vector<const wire::ReportT*> ScriptedBroker::ResultsFor(uint64_t cmd_id) const {
  std::vector<const wire::ReportT*> out;
  for (const auto& r : reports_) {
    const auto* res = r.body.AsCommandResult();
    if (res != nullptr && res->cmd_id == cmd_id) out.push_back(&r);
  }
  return out;
}

}  // namespace ledgerkeep::test
