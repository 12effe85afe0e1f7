// Agent::Impl's broker connection (agent_impl.h): connect, Hello and
// heartbeats, what arrives on the dealer and SUB sockets, the liveness and
// reconnect timers, the data-directory watch.
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "agents/agent_impl.h"

namespace ledgerkeep {

void Agent::Impl::Connect() {
  auto make = [&](zmq::socket_type type) {
    auto s = std::make_unique<zmq::socket_t>(*ctx, type);
    ApplyCommonOptions(*s, static_cast<int64_t>(kMaxMessageBytes));
    std::mt19937 rng(std::random_device{}());
    s->set(zmq::sockopt::reconnect_ivl, 100 + static_cast<int>(rng() % 200));
    s->set(zmq::sockopt::reconnect_ivl_max,
           static_cast<int>(std::min<int64_t>(opt.reconnect_max_ms, 2000)));
    if (opt.curve) ConfigureCurveClient(*s, opt.key, opt.config.broker_public_key);
    return s;
  };
  sub = make(zmq::socket_type::sub);
  dealer = make(zmq::socket_type::dealer);
  dealer->set(zmq::sockopt::sndhwm, 10000);
  for (const std::string& t :
       {std::string("cmd.all"), "cmd.role." + RoleName(opt.role), "cmd.node." + opt.node_id}) {
    // Exact-topic match: "cmd.node.r1" must not also match "cmd.node.r10",
    // so the topic frame is checked again on receipt.
    sub->set(zmq::sockopt::subscribe, t);
  }
  monitor = std::make_unique<HandshakeMonitor>(*ctx, *dealer, "agent-" + opt.node_id);
  sub_monitor = std::make_unique<HandshakeMonitor>(*ctx, *sub, "agent-sub-" + opt.node_id);
  sub->connect(opt.config.ConnectEndpoint(opt.config.cmd_port));
  dealer->connect(opt.config.ConnectEndpoint(opt.config.ctl_port));
  welcomed = false;
  last_broker_msg = Now();
  connected_at = Now();
  // Hello waits until the SUB connection is up, so that commands published
  // after the broker's Welcome reach us on PUB instead of waiting for
  // redelivery (bounded: see Timers).
  hello_pending = true;
}

void Agent::Impl::Disconnect() {
  sub_monitor.reset();
  monitor.reset();
  sub.reset();
  dealer.reset();
  welcomed = false;
}

void Agent::Impl::SendHello() {
  if (!dealer) return;
  wire::HelloT h;
  h.node_id = opt.node_id;
  h.role = opt.role;
  h.clone = opt.clone;
  h.version = opt.version;
  h.pid = static_cast<uint32_t>(::getpid());
  h.started_at_ms = Now();
  h.last_report_seq = opt.journal->last_seq();
  EnvelopeHeader eh;
  eh.sender = opt.node_id;
  eh.msg_id = next_msg_id++;
  eh.sent_at_ms = Now();
  wire::BodyUnion b;
  b.Set(std::move(h));
  SendFramesNoWait(*dealer, {BuildEnvelope(eh, std::move(b))});
  last_hello = Now();
}

void Agent::Impl::SendHeartbeat() {
  wire::HeartbeatT hbt;
  hbt.state = welcomed ? "ready" : "connecting";
  EnvelopeHeader eh;
  eh.sender = opt.node_id;
  eh.msg_id = next_msg_id++;
  eh.sent_at_ms = Now();
  wire::BodyUnion b;
  b.Set(std::move(hbt));
  SendFramesNoWait(*dealer, {BuildEnvelope(eh, std::move(b))});
  last_sent = Now();
}

void Agent::Impl::CheckBrokerInstance(const std::string& inst) {
  if (welcomed && inst != broker_instance) {
    spdlog::info("broker restarted (instance {}); saying hello again", inst);
    welcomed = false;
    SendHello();
  }
}

void Agent::Impl::HandleDealer() {
  for (int i = 0; i < 1024; ++i) {
    auto frames = RecvMultipartNoWait(*dealer);
    if (!frames) return;
    if (frames->size() != 1) continue;
    auto env = DecodeEnvelope((*frames)[0].data(), (*frames)[0].size());
    if (!env.ok()) {
      spdlog::warn("dropped a malformed message from the broker: {}", env.status().message());
      continue;
    }
    last_broker_msg = Now();
    switch ((*env)->body_type()) {
      case wire::Body::Welcome: {
        const auto* w = (*env)->body_as_Welcome();
        const bool first = broker_instance.empty();
        broker_instance = w->broker_instance() ? w->broker_instance()->str() : "";
        node_index = w->node_index();
        welcomed = true;
        refused_since = 0;
        backoff.Reset();
        acked_seq = w->stored_report_seq();
        Status s = opt.journal->AckUpTo(acked_seq);
        if (!s.ok()) spdlog::error("outbox: {}", s.ToString());
        spdlog::info("{} broker {} (it has our reports up to {})",
                     first ? "connected to" : "reconnected to", broker_instance, acked_seq);
        ResendUnacked();
        break;
      }
      case wire::Body::HeartbeatAck: {
        const auto* a = (*env)->body_as_HeartbeatAck();
        CheckBrokerInstance(a->broker_instance() ? a->broker_instance()->str() : "");
        break;
      }
      case wire::Body::ReportAck: {
        const auto* a = (*env)->body_as_ReportAck();
        // Older brokers send no instance with a ReportAck.
        if (a->broker_instance() != nullptr) CheckBrokerInstance(a->broker_instance()->str());
        uint64_t upto = a->upto_seq();
        if (upto > acked_seq) {
          acked_seq = upto;
          Status s = opt.journal->AckUpTo(upto);
          if (!s.ok()) spdlog::error("outbox: {}", s.ToString());
        }
        break;
      }
      case wire::Body::Command:
        HandleCommand(std::move(*env), /*direct=*/true);
        break;
      case wire::Body::ErrorReply: {
        const auto* er = (*env)->body_as_ErrorReply();
        const std::string text = er->message() ? er->message()->str() : "(no message)";
        if (er->code() == static_cast<uint16_t>(StatusCode::kAlreadyExists)) {
          RefusedAsSecondProcess(text);
        } else if (er->code() == static_cast<uint16_t>(StatusCode::kFailedPrecondition) && welcomed) {
          // Our connection is new to the broker (ZeroMQ reconnected it):
          // it takes nothing from it before a Hello.
          spdlog::info("broker says: {}; saying hello again", text);
          welcomed = false;
          SendHello();
        } else {
          spdlog::warn("broker says: {}", text);
        }
        break;
      }
      default:
        spdlog::warn("unexpected {} from the broker", BodyName((*env)->body_type()));
    }
  }
}

void Agent::Impl::HandleSub() {
  const std::string own = "cmd.node." + opt.node_id;
  for (int i = 0; i < 1024; ++i) {
    auto frames = RecvMultipartNoWait(*sub);
    if (!frames) return;
    if (frames->size() != 2) continue;
    std::string topic = (*frames)[0].to_string();
    if (topic.rfind("cmd.node.", 0) == 0 && topic != own) continue;  // prefix match of another id
    auto env = DecodeEnvelope((*frames)[1].data(), (*frames)[1].size());
    if (!env.ok()) {
      spdlog::warn("dropped a malformed command on {}: {}", topic, env.status().message());
      continue;
    }
    last_broker_msg = Now();
    if ((*env)->body_type() != wire::Body::Command) continue;
    HandleCommand(std::move(*env), /*direct=*/false);
  }
}

bool Agent::Impl::IsTarget(const wire::Command& cmd, bool direct) const {
  if (cmd.targets() && cmd.targets()->size() > 0) {
    for (const auto* t : *cmd.targets()) {
      if (t->string_view() == opt.node_id) return true;
    }
    return false;
  }
  const auto* bits = cmd.target_bits();
  if (bits == nullptr) return false;
  if (direct) return true;
  if (node_index == 0 || node_index / 8 >= bits->size()) return false;
  return (bits->Get(node_index / 8) >> (node_index % 8)) & 1;
}

void Agent::Impl::RefusedAsSecondProcess(const std::string& why) {
  welcomed = false;
  const int64_t now = Now();
  if (refused_since == 0) {
    refused_since = now;
    spdlog::error("the broker refused this agent: {}", why);
  }
  const int64_t patience =
      std::max<int64_t>(2000, hb() * (static_cast<int64_t>(opt.config.suspect_after) + 2));
  if (now - refused_since >= patience && !stop_requested) {
    exit_status = Status::AlreadyExists(why);
    spdlog::error("still refused after {} ms; stopping: {}", now - refused_since, why);
    stop_requested = true;
  }
}

void Agent::Impl::CheckDataDir() {
  for (const WatchedDir& w : watched_dirs) {
    struct stat st {};
    std::string what;
    if (::stat(w.path.c_str(), &st) != 0) {
      what = errno == ENOENT ? "was deleted" : std::string("cannot be checked: ") + std::strerror(errno);
    } else if (st.st_dev != w.dev || st.st_ino != w.ino) {
      what = "was replaced by another directory";
    } else {
      continue;
    }
    const std::string why = "data directory " + w.path + " " + what +
                            " while the agent ran; it stops so that nothing more is journaled into files "
                            "that are gone. Restore the directory, or start the agent again on it (a fresh "
                            "journal forgets the commands this node ran)";
    spdlog::error("{}", why);
    // Tell the broker, without journaling (the journal is what is gone).
    wire::NoteT note;
    note.level = "error";
    note.text = why;
    wire::ReportBodyUnion b;
    b.Set(std::move(note));
    lost_note = MakeReport(std::move(b));
    data_dir_lost = true;
    exit_status = Status::FailedPrecondition(why);
    // Not welcomed yet (the directory went while connecting): the note can
    // only leave after the Welcome, so wait for it a little.
    lost_deadline = Now() + std::max<int64_t>(10 * hb(), 10'000);
    FinishDataDirLoss();
    return;
  }
}

void Agent::Impl::FinishDataDirLoss() {
  if (welcomed && dealer) {
    SendReport(*lost_note);
    dealer->set(zmq::sockopt::linger, 1000);  // let the note leave before the socket closes
    stop_requested = true;
  } else if (Now() >= lost_deadline) {
    spdlog::warn("stopping without telling the broker: no connection to it");
    stop_requested = true;
  }
}

void Agent::Impl::Timers() {
  const int64_t now = Now();
  if (data_dir_lost) {
    FinishDataDirLoss();
    if (stop_requested) return;
  } else if (!watched_dirs.empty() && now >= next_data_dir_check) {
    next_data_dir_check = now + hb();
    CheckDataDir();
    if (stop_requested) return;
  }
  if (!dealer) {
    if (now >= reconnect_at) {
      spdlog::info("reconnecting to the broker (attempt {})", backoff.attempts());
      Connect();
    }
    return;
  }
  // Handshake failures show while connecting; once welcomed, a look per
  // heartbeat interval is enough (each look is a system call).
  if (monitor && (!welcomed || now >= next_monitor_check)) {
    next_monitor_check = now + hb();
    Status auth = monitor->Poll();
    if (!auth.ok() && !auth_error_logged) {
      spdlog::error("{}", auth.message());
      auth_error_logged = true;
    } else if (auth.ok()) {
      auth_error_logged = false;
    }
  }
  if (now >= next_heartbeat) {
    // Any message shows the broker we are alive: a heartbeat only after a
    // heartbeat interval with nothing else sent (saves two messages per
    // interval on a busy agent; a restarted broker is still noticed from
    // the instance in its ReportAcks).
    if (welcomed && now - last_sent < hb()) {
      next_heartbeat = last_sent + hb();
    } else {
      SendHeartbeat();
      next_heartbeat = now + hb();
    }
  }
  const int64_t silent = now - last_broker_msg;
  if (silent > hb() * opt.config.lost_after) {
    const int64_t delay = backoff.NextDelayMs();
    spdlog::warn("no word from the broker for {} ms; reconnecting in {} ms", silent, delay);
    Disconnect();
    reconnect_at = now + delay;
    return;
  }
  if (hello_pending) {
    Status sub_state = sub_monitor->Poll();
    if (sub_monitor->succeeded() || now - connected_at >= 1000) {
      hello_pending = false;
      SendHello();
    }
    (void)sub_state;
  } else if (!welcomed && now - last_hello >= std::max<int64_t>(hb(), 500)) {
    SendHello();
  }
  if (welcomed && now - last_resend > kResendUnackedMs && opt.journal->last_seq() > acked_seq) {
    ResendUnacked();
  }
}

}  // namespace ledgerkeep
