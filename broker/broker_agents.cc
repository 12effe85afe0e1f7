// Broker::Impl: what agents send over ctl (Hello, Heartbeat, Report) and
// the one-live-connection-per-node rule (broker_impl.h).
#include <zmq.h>

#include <ctime>

#include "broker/broker_impl.h"

namespace ledgerkeep {

using broker_internal::kBrokerName;
using broker_internal::kAckIntervalMs;
using broker_internal::Str;

namespace {

// "2026-05-17T01:59:00Z"
std::string FormatUtc(int64_t ms) {
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

void Broker::Impl::HandleAgent(const std::string& rid, const std::string& node_id, const wire::Envelope& e) {
  NodeEntry* n = registry->Find(node_id);
  if (n == nullptr) return;  // allowlisted agent roles are always registered
  if (const auto* h = e.body_as_Hello();
      h != nullptr && (Str(h->node_id()) != n->node_id || h->role() != n->role)) {
    // Checked before anything else: a refused hello must not make the node
    // look alive or take over its routing id.
    spdlog::warn("refused a hello claiming node '{}' role {} on the key of '{}'", Str(h->node_id()),
                 RoleName(h->role()), n->node_id);
    ReplyError(rid, e.msg_id(),
               Status::PermissionDenied("hello claims node '" + Str(h->node_id()) + "' role " +
                                        RoleName(h->role()) + " but the key is bound to '" + n->node_id +
                                        "' role " + RoleName(n->role)));
    return;
  }
  // One live connection per node: a message from a connection other than
  // the node's current one is a second process with the node's key (or
  // the agent's own new connection, once the old one is gone).
  if (!n->routing_id.empty() && rid != n->routing_id && !AdmitNewConnection(*n, rid, e)) return;
  const int64_t now = Now();
  if (auto t = registry->MarkSeen(*n, rid, now)) StageTransition(*t);
  switch (e.body_type()) {
    case wire::Body::Hello:
      return HandleHello(*n, e, *e.body_as_Hello());
    case wire::Body::Heartbeat: {
      wire::HeartbeatAckT ack;
      ack.broker_instance = instance;
      wire::BodyUnion b;
      b.Set(std::move(ack));
      Reply(rid, e.msg_id(), std::move(b));
      return;
    }
    case wire::Body::Report:
      return HandleReport(*n, *e.body_as_Report());
    default:
      return;
  }
}

// Whether the node's current connection is alive: libzmq still has it
// (ROUTER_MANDATORY: a send to a peer whose connection closed fails with
// EHOSTUNREACH, so a crashed or SIGKILLed agent's is gone at once) and it
// spoke within the suspect threshold (a half-open connection of a host that
// vanished does not count). The probe is a HeartbeatAck, which the agent
// takes as a no-op.
bool Broker::Impl::CurrentConnectionAlive(const NodeEntry& n) {
  if (Now() - n.last_seen_ms > static_cast<int64_t>(opt.config.heartbeat_ms) * opt.config.suspect_after) {
    return false;
  }
  zmq::socket_t& ctl = *sockets_[static_cast<size_t>(Sock::kCtl)];
  if (zmq_send(ctl.handle(), n.routing_id.data(), n.routing_id.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
    return zmq_errno() != EHOSTUNREACH;  // EAGAIN: connected, its queue is full
  }
  wire::HeartbeatAckT probe;
  probe.broker_instance = instance;
  EnvelopeHeader h;
  h.sender = kBrokerName;
  h.msg_id = next_msg_id++;
  h.sent_at_ms = Now();
  wire::BodyUnion b;
  b.Set(std::move(probe));
  const std::string bytes = BuildEnvelope(h, std::move(b));
  zmq_send(ctl.handle(), bytes.data(), bytes.size(), ZMQ_DONTWAIT);
  return true;
}

// A message for node `n` from connection `rid`, which is not the node's
// current one. While the current connection is alive it is a second
// process with this node's key: refused (AlreadyExists, which makes the
// agent stop), it never touches the node's state, and a Hello's refusal
// is an event. Otherwise the agent reconnected: its Hello takes over; any
// other message is answered FailedPrecondition, so that it says Hello.
bool Broker::Impl::AdmitNewConnection(NodeEntry& n, const std::string& rid, const wire::Envelope& e) {
  const auto* hello = e.body_as_Hello();
  if (!CurrentConnectionAlive(n)) {
    if (hello != nullptr) {
      spdlog::info("agent {} connected again (pid {}); its previous connection is gone", n.node_id,
                   hello->pid());
      return true;
    }
    ReplyError(rid, e.msg_id(),
               Status::FailedPrecondition("this connection has not said Hello for node " + n.node_id +
                                          "; say Hello first"));
    return false;
  }
  const std::string since = n.connected_since_ms > 0 ? FormatUtc(n.connected_since_ms) : "an unknown time";
  const std::string pid = n.pid > 0 ? std::to_string(n.pid) : "unknown";
  const std::string why = "node " + n.node_id + " is already connected from another process (pid " + pid +
                          ", since " + since + "); stop it, or use this node's own key";
  if (hello != nullptr) {
    spdlog::warn("refused a second agent for {} (pid {}, version {}): {}", n.node_id, hello->pid(),
                 Str(hello->version()), why);
    // One event per refused process, not one per Hello it retries.
    if (refused_pids_[n.node_id].insert(hello->pid()).second) {
      wire::NoteT note;
      note.level = "warn";
      note.text = "refused a second agent process for " + n.node_id + " (pid " +
                  std::to_string(hello->pid()) + "): the node is already connected from pid " + pid +
                  " since " + since;
      StageEvent("status", n.node_id, std::move(note));
    }
  }
  ReplyError(rid, e.msg_id(), Status::AlreadyExists(why));
  return false;
}

void Broker::Impl::HandleHello(NodeEntry& n, const wire::Envelope& e, const wire::Hello& h) {
  n.welcomed = true;
  n.clone = h.clone();
  n.connected_since_ms = Now();
  n.version = Str(h.version());
  n.pid = h.pid();
  if (h.last_report_seq() < n.last_report_seq) {
    spdlog::warn("agent {} reports seq {} but {} were stored: its state was reset", n.node_id,
                 h.last_report_seq(), n.last_report_seq);
    wire::NoteT note;
    note.level = "warn";
    note.text = "agent state was reset (its report seq went back from " +
                std::to_string(n.last_report_seq) + " to " + std::to_string(h.last_report_seq()) + ")";
    StageEvent("note", n.node_id, std::move(note));
    n.last_report_seq = h.last_report_seq();
  }
  dirty_nodes_.insert(n.node_id);
  {
    wire::NoteT note;
    note.level = "info";
    note.text = "agent connected (version " + n.version + ", pid " + std::to_string(n.pid) + ")";
    StageEvent("status", n.node_id, std::move(note));
  }
  wire::WelcomeT w;
  w.broker_instance = instance;
  w.stored_report_seq = n.last_report_seq;
  w.heartbeat_ms = static_cast<uint32_t>(opt.config.heartbeat_ms);
  w.node_index = n.index;
  wire::BodyUnion b;
  b.Set(std::move(w));
  Reply(n.routing_id, e.msg_id(), std::move(b));
  for (CommandEntry* c : tracker->PendingFor(n.node_id)) SendCommandTo(*c, n);
}

// Report acks are cumulative: one per node per kAckIntervalMs is enough
// (agents resend unacked reports only after 5 s) and saves a message per
// report under load. Each node's acks go out in its own slot of the
// interval (a phase from its id), so that the acks of 1000 busy agents
// trickle out instead of landing all at once in the middle of a fan-out.
void Broker::Impl::ScheduleAck(const std::string& node, int64_t now) {
  if (!ack_scheduled_.insert(node).second) return;
  const auto phase = static_cast<int64_t>(std::hash<std::string>{}(node) % kAckIntervalMs);
  int64_t due = now - ((now - phase) % kAckIntervalMs + kAckIntervalMs) % kAckIntervalMs;  // this slot
  auto last = last_ack_ms_.find(node);
  if (last != last_ack_ms_.end() && last->second >= due) due += kAckIntervalMs;  // acked in it already
  ack_due_.emplace(due, node);
}

void Broker::Impl::HandleReport(NodeEntry& n, const wire::Report& r) {
  ScheduleAck(n.node_id, Now());
  if (r.seq() <= n.last_report_seq) return;  // duplicate: already stored
  if (r.seq() != n.last_report_seq + 1) {
    spdlog::warn("agent {} skipped report seq {}..{}", n.node_id, n.last_report_seq + 1, r.seq() - 1);
  }
  n.last_report_seq = r.seq();
  dirty_nodes_.insert(n.node_id);
  const int64_t now = Now();
  switch (r.body_type()) {
    case wire::ReportBody::Ack: {
      const auto* a = r.body_as_Ack();
      wire::AckT ack;
      a->UnPackTo(&ack);
      if (CommandEntry* c = tracker->Find(a->cmd_id())) {
        tracker->OnAck(batch, *c, n.node_id, a->accepted(), ack.reason, now);
        NoteFinished(*c);
      }
      StageEvent("command", n.node_id, std::move(ack));
      return;
    }
    case wire::ReportBody::Progress: {
      wire::ProgressT p;
      r.body_as_Progress()->UnPackTo(&p);
      if (CommandEntry* c = tracker->Find(p.cmd_id)) tracker->OnProgress(*c, n.node_id, p);
      StageEvent("progress", n.node_id, std::move(p));
      return;
    }
    case wire::ReportBody::CommandResult: {
      wire::CommandResultT res;
      r.body_as_CommandResult()->UnPackTo(&res);
      if (CommandEntry* c = tracker->Find(res.cmd_id)) {
        if (res.status == wire::ResultStatus::Ok && DestinationRules::RecordsPlaces(c->kind)) {
          if (auto env = DecodeEnvelope(c->envelope); env.ok()) {
            wire::CommandT cmd;
            (*env)->body_as_Command()->UnPackTo(&cmd);
            if (destinations->RememberAccepted(cmd.body, n, res)) dirty_nodes_.insert(n.node_id);
          }
        }
        tracker->OnResult(batch, *c, n.node_id, res, now);
        NoteFinished(*c);
      }
      StageEvent("command", n.node_id, std::move(res));
      return;
    }
    case wire::ReportBody::Note: {
      wire::NoteT note;
      r.body_as_Note()->UnPackTo(&note);
      StageEvent("note", n.node_id, std::move(note));
      return;
    }
    case wire::ReportBody::BackupResult: {  // a scheduled run (not a command)
      wire::BackupResultT res;
      r.body_as_BackupResult()->UnPackTo(&res);
      if (DestinationRules::RememberScheduledRun(n, res)) dirty_nodes_.insert(n.node_id);
      StageEvent("backup", n.node_id, std::move(res));
      return;
    }
    case wire::ReportBody::NONE:
      return;
  }
}

}  // namespace ledgerkeep
