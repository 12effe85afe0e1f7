#include "broker/broker.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <zmq.h>

#include <atomic>
#include <ctime>
#include <future>
#include <random>
#include <thread>
#include <zmq.hpp>

#include "broker/destination_rules.h"
#include "broker/maintenance_workflow.h"
#include "broker/node_registry.h"
#include "broker/wedge_workflows.h"
#include "broker/workflow.h"
#include "broker/zap_authenticator.h"
#include "common/exception_text.h"
#include "common/kv_store.h"
#include "common/zmq_util.h"

namespace ledgerkeep {
namespace {

// Column families of the broker's state store (append only).
enum BrokerCf : int {
  kCfMeta = 0,
  kCfNodes = 1,
  kCfCommands = 2,
  kCfTargets = 3,
  kCfEvents = 4,
  kCfWorkflows = 5
};
const std::vector<std::string> kBrokerCfs = {"meta", "nodes", "commands", "targets", "events", "workflows"};
// The broker's own workflows reach it here, in its context, as operator "broker".
constexpr const char* kInternalEndpoint = "inproc://ledgerkeep-internal";
constexpr const char* kNextCmdIdKey = "next_cmd_id";
constexpr const char* kBrokerName = "broker";

// Messages drained per loop turn before the group commit.
constexpr int kMaxMessagesPerTurn = 4096;
// How often the timers (liveness, redelivery, deadlines) run.
constexpr int64_t kTickMs = 20;
// Events a backward FetchEvents examines per request (a filter that matches
// little must not hold the broker's loop over a whole large log).
constexpr uint64_t kMaxBackwardScan = 100'000;
// Status pushes to watchers at most this often while a command runs.
constexpr int64_t kPushIntervalMs = 200;
constexpr int64_t kRetentionIntervalMs = 10'000;
constexpr int64_t kAckIntervalMs = 500;

std::string RandomHex64() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

// "2026-05-17T01:59:00Z"
std::string FormatUtc(int64_t ms) {
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string CommandTopic(const wire::TargetT& t, const std::vector<std::string>& targets) {
  if (!t.node_id.empty() && targets.size() == 1) return "cmd.node." + targets[0];
  if (!t.all && t.role != wire::Role::Unknown) return "cmd.role." + RoleName(t.role);
  return "cmd.all";
}

}  // namespace

struct Broker::Impl {
  enum class Sock { kCtl = 0, kPub = 1, kXpub = 2, kInternal = 3 };
  struct Outgoing {
    Sock sock;
    std::vector<std::string> frames;
  };

  BrokerOptions opt;
  ZapAuthenticator zap_policy{opt.config};
  std::string instance = RandomHex64();
  std::unique_ptr<KvStore> store;
  std::unique_ptr<NodeRegistry> registry;
  std::unique_ptr<DestinationRules> destinations;  // over `registry`
  std::unique_ptr<CommandTracker> tracker;
  std::unique_ptr<EventLog> events;
  std::unique_ptr<WorkflowManager> workflows;
  uint64_t next_cmd_id = 1;
  uint64_t next_msg_id = 1;

  zmq::context_t ctx{2};                      // two I/O threads: CURVE crypto is the broker's hot spot
  std::unique_ptr<zmq::socket_t> pipe_front;  // owned by the caller thread
  std::thread thread;
  Status exit_status;
  bool stopped = false;
  std::atomic<bool> exited{false};
  bool ready_sent = false;  // broker thread: Start() was told how the start went

  // Loop-turn state (broker thread only).
  KvStore::Batch batch;
  std::vector<Outgoing> out;
  // Nodes owed a ReportAck, by the time it is due (ScheduleAck); sent after
  // the commit that stored their reports.
  std::multimap<int64_t, std::string> ack_due_;
  std::set<std::string> ack_scheduled_;
  std::map<std::string, int64_t> last_ack_ms_;
  int64_t last_tick = 0;
  int64_t last_retention = 0;

  explicit Impl(BrokerOptions o) : opt(std::move(o)) {}

  int64_t Now() const { return opt.clock->NowMs(); }

  // ------------------------------------------------------------ set-up
  Status Open() {
    LK_ASSIGN_OR_RETURN(store, KvStore::Open(opt.data_dir + "/state", kBrokerCfs));
    registry = std::make_unique<NodeRegistry>(opt.config, store.get(), kCfNodes);
    LK_RETURN_IF_ERROR(registry->Load(Now()));
    destinations = std::make_unique<DestinationRules>(registry.get());
    tracker = std::make_unique<CommandTracker>(store.get(), kCfCommands, kCfTargets, opt.tracker);
    LK_ASSIGN_OR_RETURN(next_cmd_id, tracker->Load());
    LK_ASSIGN_OR_RETURN(auto stored_next, store->Get(kCfMeta, kNextCmdIdKey));
    if (stored_next && stored_next->size() == 8) {
      next_cmd_id = std::max(next_cmd_id, DecodeU64BE(*stored_next));
    }
    events = std::make_unique<EventLog>(store.get(), kCfEvents, opt.events, opt.clock, kBrokerName);
    LK_RETURN_IF_ERROR(events->Load());
    workflows = std::make_unique<WorkflowManager>(store.get(), kCfWorkflows, &ctx, kInternalEndpoint,
                                                  opt.config, opt.clock);
    RegisterWedgeWorkflows(*workflows);
    RegisterMaintenanceWorkflow(*workflows);
    return workflows->Load();
  }

  void Run(zmq::socket_t& pipe, std::promise<Status>& ready) {
    zmq::socket_t zap(ctx, zmq::socket_type::rep);
    zmq::socket_t ctl(ctx, zmq::socket_type::router);
    zmq::socket_t pub(ctx, zmq::socket_type::pub);
    zmq::socket_t xpub(ctx, zmq::socket_type::xpub);
    zmq::socket_t internal(ctx, zmq::socket_type::router);
    try {
      internal.set(zmq::sockopt::linger, 0);
      internal.set(zmq::sockopt::router_mandatory, 1);
      internal.bind(kInternalEndpoint);
      zap.set(zmq::sockopt::linger, 0);
      zap.bind("inproc://zeromq.zap.01");
      for (auto* s : {&ctl, &pub, &xpub}) ApplyCommonOptions(*s, static_cast<int64_t>(kMaxMessageBytes));
      ctl.set(zmq::sockopt::router_mandatory, 1);
      ctl.set(zmq::sockopt::sndhwm, 100000);
      ctl.set(zmq::sockopt::rcvhwm, 100000);
      pub.set(zmq::sockopt::sndhwm, opt.pub_hwm);
      xpub.set(zmq::sockopt::sndhwm, opt.xpub_hwm);
      if (opt.curve) {
        ConfigureCurveServer(ctl, opt.key, kZapDomainCtl);
        ConfigureCurveServer(pub, opt.key, kZapDomainCmd);
        ConfigureCurveServer(xpub, opt.key, kZapDomainEvents);
      }
      ctl.bind(opt.config.BindEndpoint(opt.config.ctl_port));
      pub.bind(opt.config.BindEndpoint(opt.config.cmd_port));
      xpub.bind(opt.config.BindEndpoint(opt.config.events_port));
    } catch (const zmq::error_t& e) {
      ready.set_value(Status::Unavailable(
          std::string("cannot bind broker endpoints on ") + opt.config.bind_host + " ports " +
          std::to_string(opt.config.cmd_port) + "/" + std::to_string(opt.config.ctl_port) + "/" +
          std::to_string(opt.config.events_port) + ": " + e.what() +
          " (is another broker running? change the ports in the cluster config)"));
      ready_sent = true;
      return;
    }
    spdlog::info(
        "broker {} serving: cmd {} ctl {} events {}; {} nodes in the allowlist, "
        "{} pending commands, event log at seq {}",
        instance, opt.config.BindEndpoint(opt.config.cmd_port), opt.config.BindEndpoint(opt.config.ctl_port),
        opt.config.BindEndpoint(opt.config.events_port), registry->All().size(), tracker->Unfinished().size(),
        events->head_seq());
    {
      wire::NoteT note;
      note.level = "info";
      note.text = "broker started (instance " + instance + ")";
      wire::EventBodyUnion body;
      body.Set(std::move(note));
      events->Stage(batch, "note", kBrokerName, std::move(body));
    }
    ready.set_value(Status::OK());
    ready_sent = true;  // Start() returns: `ready` is gone
    sockets_ = {&ctl, &pub, &xpub, &internal};
    workflows->ResumeUnfinished();

    std::vector<zmq::pollitem_t> items = {
        {pipe.handle(), 0, ZMQ_POLLIN, 0},     {zap.handle(), 0, ZMQ_POLLIN, 0},
        {ctl.handle(), 0, ZMQ_POLLIN, 0},      {xpub.handle(), 0, ZMQ_POLLIN, 0},
        {internal.handle(), 0, ZMQ_POLLIN, 0},
    };
    while (true) {
      int64_t wait = kTickMs;
      if (!events->staged().empty() || batch.Count() > 0 || !out.empty()) wait = 0;
      if (!ack_due_.empty()) wait = std::clamp<int64_t>(ack_due_.begin()->first - Now(), 0, wait);
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(wait));
      if (items[0].revents & ZMQ_POLLIN) break;
      if (items[1].revents & ZMQ_POLLIN) Guarded("a ZAP request", [&] { HandleZap(zap); });
      if (items[3].revents & ZMQ_POLLIN) {
        while (RecvMultipartNoWait(xpub)) {
        }  // subscriptions: libzmq tracks them; nothing to do
      }
      if (items[2].revents & ZMQ_POLLIN) {
        for (int i = 0; i < kMaxMessagesPerTurn; ++i) {
          auto frames = RecvMultipartNoWait(ctl);
          if (!frames) break;
          HandleCtlGuarded(*frames, Sock::kCtl);
        }
      }
      if (items[4].revents & ZMQ_POLLIN) {
        while (auto frames = RecvMultipartNoWait(internal)) HandleCtlGuarded(*frames, Sock::kInternal);
      }
      const int64_t now = Now();
      if (now - last_tick >= kTickMs) {
        last_tick = now;
        Guarded("the timers", [&] { Tick(now); });
      }
      Status s;
      try {
        s = CommitAndFlush();
      } catch (...) {  // half a commit cannot be told from a whole one: restart from the saved state
        s = Status::Internal("internal error while saving and sending: " + CurrentExceptionText());
      }
      if (!s.ok()) {
        spdlog::critical("{}; stopping the broker so that it restarts from its saved state", s.ToString());
        exit_status = s;
        break;
      }
    }
    // Workflows keep their saved state and resume on the next start.
    workflows->StopAll();
    sockets_ = {};
  }

  std::vector<zmq::socket_t*> sockets_;

  // ------------------------------------------------------------ boundaries
  // Exceptions never leave the broker thread (std::terminate would stop the
  // broker for every node): what one message or one timer pass throws is
  // logged, and the broker goes on serving with the state it has (what the
  // handler staged before throwing is committed as it is in memory).
  template <typename Fn>
  void Guarded(const char* what, Fn&& fn) {
    try {
      fn();
    } catch (...) {
      spdlog::error("internal error in {}: {}; the broker keeps serving", what, CurrentExceptionText());
    }
  }

  // One ctl message; an exception becomes an ErrorReply to its sender.
  void HandleCtlGuarded(std::vector<zmq::message_t>& frames, Sock sock) {
    try {
      HandleCtl(frames, sock);
    } catch (...) {
      const std::string what = CurrentExceptionText();
      std::string kind = "a ctl message";
      uint64_t msg_id = 0;
      if (frames.size() == 2) {
        if (auto env = DecodeEnvelope(frames[1].data(), frames[1].size()); env.ok()) {
          kind = BodyName((*env)->body_type());
          msg_id = (*env)->msg_id();
        }
      }
      spdlog::error("internal error handling {}: {}; the broker keeps serving", kind, what);
      if (frames.empty()) return;
      reply_sock_ = sock;
      ReplyError(frames[0].to_string(), msg_id,
                 Status::Internal("internal error in the broker handling " + kind + ": " + what +
                                  "; the broker keeps serving"));
    }
  }

  // ------------------------------------------------------------ ZAP
  void HandleZap(zmq::socket_t& zap) {
    while (auto frames = RecvMultipartNoWait(zap)) {
      auto& f = *frames;
      if (f.size() < 6) continue;  // not a ZAP request; REP needs a reply anyway
      std::string version = f[0].to_string();
      std::string request_id = f[1].to_string();
      std::string domain = f[2].to_string();
      std::string address = f[3].to_string();
      std::string mechanism = f[5].to_string();
      std::string key = f.size() > 6 ? f[6].to_string() : std::string();
      ZapDecision d = zap_policy.Decide(domain, mechanism, key);
      if (!d.allow) spdlog::warn("refused connection from {} to {}: {}", address, domain, d.reason);
      // The status text must outlive `reply` (a ?: of "OK" and a std::string
      // would be a temporary gone before the send: caught by ASan).
      const std::string status_text = d.allow ? std::string("OK") : d.reason;
      std::vector<std::string_view> reply = {"1.0",       request_id, d.allow ? "200" : "400",
                                             status_text, d.user_id,  ""};
      (void)version;
      SendFramesNoWait(zap, reply);
    }
  }

  // ------------------------------------------------------------ helpers
  void Queue(Sock sock, std::vector<std::string> frames) { out.push_back({sock, std::move(frames)}); }

  // Replies go to the ROUTER the request came in on (reply_sock_). Watcher
  // keys carry their socket in the first byte.
  Sock reply_sock_ = Sock::kCtl;
  static std::string WatcherKey(Sock sock, const std::string& rid) {
    return std::string(1, static_cast<char>(sock)) + rid;
  }

  void Reply(const std::string& rid, uint64_t reply_to, wire::BodyUnion body) {
    EnvelopeHeader h;
    h.sender = kBrokerName;
    h.msg_id = next_msg_id++;
    h.reply_to = reply_to;
    h.sent_at_ms = Now();
    Queue(reply_sock_, {rid, BuildEnvelope(h, std::move(body))});
  }

  void ReplyError(const std::string& rid, uint64_t reply_to, const Status& s) {
    wire::ErrorReplyT e;
    e.code = static_cast<uint16_t>(s.code());
    e.message = s.message();
    wire::BodyUnion b;
    b.Set(std::move(e));
    Reply(rid, reply_to, std::move(b));
  }

  template <typename T>
  void StageEvent(const std::string& kind, const std::string& node, T value) {
    wire::EventBodyUnion body;
    body.Set(std::move(value));
    events->Stage(batch, kind, node, std::move(body));
  }

  void StageTransition(const NodeTransition& t) {
    spdlog::info("node {} {} -> {} ({})", t.node_id, NodeStateName(t.from), NodeStateName(t.to), t.reason);
    wire::NodeStateChangeT c;
    c.node_id = t.node_id;
    c.role = t.role;
    c.from = t.from;
    c.to = t.to;
    c.reason = t.reason;
    StageEvent("status", t.node_id, std::move(c));
  }

  void SendCommandTo(CommandEntry& c, NodeEntry& n) {
    if (n.routing_id.empty()) return;
    Queue(Sock::kCtl, {n.routing_id, c.envelope});
    tracker->MarkSent(c, n.node_id, Now());
  }

  void NoteFinished(CommandEntry& c) {
    if (!tracker->UpdateFinished(c)) return;
    wire::CommandFinishedT f;
    f.cmd_id = c.cmd_id;
    f.kind = CommandKindName(c.kind);
    for (const auto& [node, t] : c.targets) {
      if (t.result && t.result->status == wire::ResultStatus::Ok) {
        ++f.ok_count;
      } else {
        ++f.failed_count;
      }
    }
    spdlog::info("command {} ({}) finished: {} ok, {} failed", c.cmd_id, CommandKindName(c.kind), f.ok_count,
                 f.failed_count);
    recent_finished_.push_back(&c);
    StageEvent("command", kBrokerName, std::move(f));
  }

  // ------------------------------------------------------------ ctl
  void HandleCtl(std::vector<zmq::message_t>& frames, Sock sock) {
    reply_sock_ = sock;
    if (frames.size() != 2) {
      spdlog::warn("dropped a ctl message with {} frames (expected 1 payload frame)", frames.size() - 1);
      return;
    }
    const std::string rid = frames[0].to_string();
    const char* uid = zmq_msg_gets(frames[1].handle(), "User-Id");
    std::string user = uid ? uid : "";
    static const AllowEntry kInternalOperator{kBrokerName, wire::Role::Operator, ""};
    if (!opt.curve || sock == Sock::kInternal) {  // benchmark mode / inproc: trust the claimed sender
      auto peek = DecodeEnvelope(frames[1].data(), frames[1].size());
      if (peek.ok()) user = Str((*peek)->sender());
    }
    const AllowEntry* who = sock == Sock::kInternal ? &kInternalOperator : opt.config.FindNode(user);
    if (who == nullptr) {
      spdlog::warn("dropped a ctl message from an unauthenticated peer");
      return;
    }
    auto env = DecodeEnvelope(frames[1].data(), frames[1].size());
    if (!env.ok()) {
      spdlog::warn("rejected a malformed message from '{}': {}", user, env.status().message());
      ReplyError(rid, 0, env.status().WithContext("message rejected"));
      return;
    }
    const wire::Envelope& e = **env;
    if (Str(e.sender()) != user) {
      spdlog::warn("rejected {} claiming to be from '{}' on the key of '{}'", BodyName(e.body_type()),
                   Str(e.sender()), user);
      ReplyError(rid, e.msg_id(),
                 Status::PermissionDenied("message claims sender '" + Str(e.sender()) +
                                          "' but the connection's key belongs to '" + user + "'"));
      return;
    }
    const bool is_agent = who->role == wire::Role::Replica || who->role == wire::Role::Client;
    const bool is_operator = who->role == wire::Role::Operator;
    switch (e.body_type()) {
      case wire::Body::Hello:
      case wire::Body::Heartbeat:
      case wire::Body::Report:
        if (!is_agent) break;
        return HandleAgent(rid, user, e);
      case wire::Body::ListNodes:
        if (!is_operator) break;
        return HandleListNodes(rid, e);
      case wire::Body::IssueCommand:
        if (!is_operator) break;
        return HandleIssue(rid, user, e);
      case wire::Body::GetCommandStatus:
        if (!is_operator) break;
        return HandleGetStatus(rid, e);
      case wire::Body::FetchEvents:
        if (!is_operator && who->role != wire::Role::Subscriber) break;
        return HandleFetch(rid, e);
      case wire::Body::StartWorkflow:
        if (!is_operator) break;
        return HandleStartWorkflow(rid, e);
      case wire::Body::GetWorkflowStatus:
        if (!is_operator) break;
        return HandleGetWorkflow(rid, e);
      case wire::Body::AppendEvent:
        if (sock != Sock::kInternal) break;
        return HandleAppendEvent(rid, e);
      case wire::Body::AbortWorkflow: {
        if (!is_operator) break;
        auto r = workflows->Abort(e.body_as_AbortWorkflow()->run_id());
        if (!r.ok()) return ReplyError(rid, e.msg_id(), r.status());
        wire::BodyUnion b;
        b.Set(ToWire(*r));
        return Reply(rid, e.msg_id(), std::move(b));
      }
      default:
        ReplyError(rid, e.msg_id(),
                   Status::InvalidArgument("unexpected " + std::string(BodyName(e.body_type())) + " on ctl"));
        return;
    }
    spdlog::warn("refused {} from '{}' ({}): not allowed for that role", BodyName(e.body_type()), user,
                 RoleName(who->role));
    ReplyError(rid, e.msg_id(),
               Status::PermissionDenied(std::string(BodyName(e.body_type())) + " is not allowed for role " +
                                        RoleName(who->role) + " (commands need an operator key)"));
  }

  void HandleAgent(const std::string& rid, const std::string& node_id, const wire::Envelope& e) {
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
  bool CurrentConnectionAlive(const NodeEntry& n) {
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
  bool AdmitNewConnection(NodeEntry& n, const std::string& rid, const wire::Envelope& e) {
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

  void HandleHello(NodeEntry& n, const wire::Envelope& e, const wire::Hello& h) {
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
  void ScheduleAck(const std::string& node, int64_t now) {
    if (!ack_scheduled_.insert(node).second) return;
    const auto phase = static_cast<int64_t>(std::hash<std::string>{}(node) % kAckIntervalMs);
    int64_t due = now - ((now - phase) % kAckIntervalMs + kAckIntervalMs) % kAckIntervalMs;  // this slot
    auto last = last_ack_ms_.find(node);
    if (last != last_ack_ms_.end() && last->second >= due) due += kAckIntervalMs;  // acked in it already
    ack_due_.emplace(due, node);
  }

  void HandleReport(NodeEntry& n, const wire::Report& r) {
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

  void HandleListNodes(const std::string& rid, const wire::Envelope& e) {
    wire::NodeListT list;
    list.now_ms = Now();
    std::map<std::string, uint32_t> pending;
    for (CommandEntry* c : tracker->Unfinished())
      for (const auto& [node, t] : c->targets)
        if (t.state != wire::TargetState::Done) ++pending[node];
    for (NodeEntry* n : registry->All()) {
      auto info = std::make_unique<wire::NodeInfoT>();
      info->node_id = n->node_id;
      info->role = n->role;
      info->state = n->state;
      info->last_heartbeat_ms = n->last_seen_ms;
      info->version = n->version;
      info->connected_since_ms = n->connected_since_ms;
      info->pending_commands = pending[n->node_id];
      info->clone = n->clone;
      if (!n->backup_target.destination.empty()) {
        info->backup_target = std::make_unique<wire::BackupTargetT>(n->backup_target);
      }
      info->backup_places = PlacesToWire(n->backup_places);
      list.nodes.push_back(std::move(info));
    }
    wire::BodyUnion b;
    b.Set(std::move(list));
    Reply(rid, e.msg_id(), std::move(b));
  }

  // Up to this many targets are listed by id in a Command; more go as a
  // bitmap of node indexes (Command.target_bits).
  static constexpr size_t kMaxListedTargets = 16;

  std::vector<uint8_t> TargetBits(const std::vector<std::string>& ids) {
    std::vector<uint8_t> bits;
    for (const auto& id : ids) {
      const NodeEntry* n = registry->Find(id);
      if (n == nullptr || n->index == 0) continue;  // ResolveTargets only returns registered nodes
      if (bits.size() <= n->index / 8) bits.resize(n->index / 8 + 1, 0);
      bits[n->index / 8] |= static_cast<uint8_t>(1u << (n->index % 8));
    }
    return bits;
  }

  Result<std::vector<std::string>> ResolveTargets(const wire::TargetT& t) {
    if (!t.node_id.empty()) {
      if (registry->Find(t.node_id) == nullptr) {
        return Status::NotFound("no agent node '" + t.node_id +
                                "' in the allowlist (see `ledgerkeep nodes`)");
      }
      return std::vector<std::string>{t.node_id};
    }
    auto ids = registry->IdsWithRole(t.all ? wire::Role::Unknown : t.role);
    if (ids.empty()) {
      return Status::NotFound("no agent nodes with role " + RoleName(t.role) + " in the allowlist");
    }
    return ids;
  }

  void HandleIssue(const std::string& rid, const std::string& issuer, const wire::Envelope& e) {
    const auto* ic = e.body_as_IssueCommand();
    if (ic->body_type() == wire::CommandBody::NONE) {
      return ReplyError(rid, e.msg_id(), Status::InvalidArgument("IssueCommand has no command body"));
    }
    wire::IssueCommandT req;
    ic->UnPackTo(&req);
    wire::TargetT target = req.target ? *req.target : wire::TargetT{};
    if (target.node_id.empty() && target.role == wire::Role::Unknown) target.all = true;
    auto targets = ResolveTargets(target);
    if (!targets.ok()) return ReplyError(rid, e.msg_id(), targets.status());
    const std::string idem_key = req.idempotency_key.empty() ? "" : "idempotency:" + req.idempotency_key;
    if (!idem_key.empty()) {
      auto known = store->Get(kCfMeta, idem_key);
      if (!known.ok()) return ReplyError(rid, e.msg_id(), known.status());
      if (known->has_value() && (*known)->size() == 8) {
        if (CommandEntry* existing = tracker->Find(DecodeU64BE(**known))) {
          existing->watchers.insert(WatcherKey(reply_sock_, rid));
          PushStatus(*existing, WatcherKey(reply_sock_, rid), e.msg_id());
          return;
        }
      }
    }
    if (Status unique = destinations->CheckUnique(req.body, *targets); !unique.ok()) {
      spdlog::warn("refused {} from {}: {}", CommandKindName(req.body.type), issuer, unique.message());
      return ReplyError(rid, e.msg_id(), unique);
    }
    if (Status restore = destinations->PrepareRestore(req.body, *targets); !restore.ok()) {
      spdlog::warn("refused {} from {}: {}", CommandKindName(req.body.type), issuer, restore.message());
      return ReplyError(rid, e.msg_id(), restore);
    }

    const int64_t now = Now();
    const uint64_t cmd_id = next_cmd_id++;
    batch.Put(kCfMeta, kNextCmdIdKey, EncodeU64BE(next_cmd_id));
    if (!idem_key.empty()) batch.Put(kCfMeta, idem_key, EncodeU64BE(cmd_id));
    wire::CommandT cmd;
    cmd.cmd_id = cmd_id;
    cmd.issued_at_ms = now;
    cmd.deadline_ms = now + (req.timeout_ms > 0 ? req.timeout_ms : opt.default_timeout_ms);
    if (targets->size() <= kMaxListedTargets) {
      cmd.targets = *targets;
    } else {
      cmd.target_bits = TargetBits(*targets);
    }
    cmd.issuer = issuer;
    cmd.body = req.body;
    const wire::CommandBody kind = cmd.body.type;
    const std::string topic = CommandTopic(target, *targets);
    EnvelopeHeader h;
    h.sender = kBrokerName;
    h.msg_id = next_msg_id++;
    h.sent_at_ms = now;
    wire::BodyUnion body;
    body.Set(std::move(cmd));
    std::string envelope = BuildEnvelope(h, std::move(body));
    CommandEntry& c =
        tracker->Add(batch, cmd_id, kind, envelope, topic, now,
                     now + (req.timeout_ms > 0 ? req.timeout_ms : opt.default_timeout_ms), issuer, *targets);
    wire::CommandIssuedT issued;
    issued.cmd_id = cmd_id;
    issued.kind = CommandKindName(kind);
    issued.targets = *targets;
    issued.issuer = issuer;
    issued.deadline_ms = c.deadline_ms;
    StageEvent("command", kBrokerName, std::move(issued));
    spdlog::info("command {} ({}) from {} to {} target(s) on {}", cmd_id, CommandKindName(kind), issuer,
                 targets->size(), topic);
    // Published only after the group commit (Queue order == send order).
    Queue(Sock::kPub, {topic, envelope});
    for (const auto& node : *targets) tracker->MarkSent(c, node, now);
    c.watchers.insert(WatcherKey(reply_sock_, rid));
    PushStatus(c, WatcherKey(reply_sock_, rid), e.msg_id());
  }

  void PushStatus(CommandEntry& c, const std::string& watcher, uint64_t reply_to) {
    wire::BodyUnion b;
    b.Set(CommandTracker::StatusOf(c));
    reply_sock_ = static_cast<Sock>(watcher[0]);
    Reply(watcher.substr(1), reply_to, std::move(b));
  }

  wire::WorkflowStatusT ToWire(const WorkflowRecord& r) {
    wire::WorkflowStatusT w;
    w.run_id = r.run_id;
    w.kind = r.kind;
    w.state = r.status;
    w.step = r.step;
    w.finished = r.finished();
    w.error = r.error;
    // The report quotes agents' text, which need not be UTF-8 (dump() would throw).
    w.report_json = r.report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    w.started_at_ms = r.started_at_ms;
    w.finished_at_ms = r.finished_at_ms;
    return w;
  }

  void HandleStartWorkflow(const std::string& rid, const wire::Envelope& e) {
    const auto* sw = e.body_as_StartWorkflow();
    auto r = workflows->Start(Str(sw->kind()), Str(sw->params_json()));
    if (!r.ok()) return ReplyError(rid, e.msg_id(), r.status());
    wire::BodyUnion b;
    b.Set(ToWire(*r));
    Reply(rid, e.msg_id(), std::move(b));
  }

  void HandleGetWorkflow(const std::string& rid, const wire::Envelope& e) {
    const uint64_t id = e.body_as_GetWorkflowStatus()->run_id();
    auto r = workflows->Get(id);
    if (!r && id == 0) r = workflows->Latest();
    if (!r) return ReplyError(rid, e.msg_id(), Status::NotFound("no workflow " + std::to_string(id)));
    wire::BodyUnion b;
    b.Set(ToWire(*r));
    Reply(rid, e.msg_id(), std::move(b));
  }

  void HandleAppendEvent(const std::string& rid, const wire::Envelope& e) {
    wire::AppendEventT a;
    e.body_as_AppendEvent()->UnPackTo(&a);
    events->Stage(batch, a.kind, a.node, std::move(a.body));
    wire::BodyUnion b;
    b.Set(wire::HeartbeatAckT{});  // a plain "done" once it is durable
    Reply(rid, e.msg_id(), std::move(b));
  }

  void HandleGetStatus(const std::string& rid, const wire::Envelope& e) {
    CommandEntry* c = tracker->Find(e.body_as_GetCommandStatus()->cmd_id());
    if (c == nullptr) {
      return ReplyError(rid, e.msg_id(),
                        Status::NotFound("command " + std::to_string(e.body_as_GetCommandStatus()->cmd_id()) +
                                         " is not known to the broker (finished long ago?)"));
    }
    c->watchers.insert(WatcherKey(reply_sock_, rid));
    PushStatus(*c, WatcherKey(reply_sock_, rid), e.msg_id());
  }

  void HandleFetch(const std::string& rid, const wire::Envelope& e) {
    const auto* f = e.body_as_FetchEvents();
    uint32_t max = f->max_events() == 0 ? 1000 : std::min<uint32_t>(f->max_events(), 10000);
    auto page = f->backward() ? events->ReadNewest(f->from_seq(), max, Str(f->kind_prefix()),
                                                   opt.max_event_page_bytes, kMaxBackwardScan)
                              : events->Read(f->from_seq(), max, Str(f->kind_prefix()), opt.max_event_page_bytes);
    if (!page.ok()) return ReplyError(rid, e.msg_id(), page.status());
    flatbuffers::FlatBufferBuilder fbb(64 * 1024);
    std::vector<flatbuffers::Offset<wire::EventBlob>> blobs;
    blobs.reserve(page->events.size());
    for (const auto& ev : page->events) {
      fbb.ForceVectorAlignment(ev.size(), 1, 8);
      auto data = fbb.CreateVector(reinterpret_cast<const uint8_t*>(ev.data()), ev.size());
      blobs.push_back(wire::CreateEventBlob(fbb, data));
    }
    auto vec = fbb.CreateVector(blobs);
    auto p = wire::CreateEventPage(fbb, vec, page->next_seq, page->head_seq, page->first_seq);
    EnvelopeHeader h;
    h.sender = kBrokerName;
    h.msg_id = next_msg_id++;
    h.reply_to = e.msg_id();
    h.sent_at_ms = Now();
    FinishEnvelope(fbb, h, wire::Body::EventPage, p.Union());
    Queue(Sock::kCtl,
          {rid, std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize())});
  }

  // ------------------------------------------------------------ timers
  void Tick(int64_t now) {
    for (const auto& t : registry->Tick(now)) StageTransition(t);
    for (CommandEntry* c : tracker->Unfinished()) {
      for (auto& [node, t] : c->targets) {
        if (t.state == wire::TargetState::Done) continue;
        NodeEntry* n = registry->Find(node);
        const bool lost =
            n == nullptr || n->state == wire::NodeState::Lost || n->state == wire::NodeState::Unknown;
        if (t.state == wire::TargetState::Acked) {
          if (now > c->deadline_ms && lost) {
            tracker->Complete(batch, *c, node, wire::ResultStatus::Failed,
                              static_cast<uint16_t>(StatusCode::kUnavailable),
                              "node " + node + " was lost while running the command", now);
          }
          continue;
        }
        if (now > c->deadline_ms) {
          std::string state = n ? NodeStateName(n->state) : "unknown";
          tracker->Complete(
              batch, *c, node, wire::ResultStatus::Expired, static_cast<uint16_t>(StatusCode::kExpired),
              "deadline passed before " + node + " acknowledged the command (node " + state + ")", now);
          continue;
        }
        auto sent = c->last_sent_ms.find(node);
        const int64_t last = sent == c->last_sent_ms.end() ? 0 : sent->second;
        if (n != nullptr && n->welcomed && !n->routing_id.empty() &&
            now - last >= tracker->options().ack_timeout_ms) {
          spdlog::debug("redelivering command {} to {} over ctl", c->cmd_id, node);
          SendCommandTo(*c, *n);
        }
      }
      NoteFinished(*c);
    }
    for (CommandEntry* c : tracker->Unfinished()) MaybePush(*c, now);
    if (now - last_retention >= kRetentionIntervalMs) {
      last_retention = now;
      Status s = events->StageRetention(batch);
      if (!s.ok()) spdlog::error("event log retention: {}", s.ToString());
      trim_due_ = true;
    }
  }

  void MaybePush(CommandEntry& c, int64_t now) {
    if (!c.dirty || c.watchers.empty()) return;
    if (!c.finished && now - c.last_push_ms < kPushIntervalMs) return;
    c.dirty = false;
    c.last_push_ms = now;
    for (const auto& w : c.watchers) PushStatus(c, w, 0);
    if (c.finished) c.watchers.clear();
  }

  // ------------------------------------------------------------ commit
  Status CommitAndFlush() {
    // Node records change with every report; write each once per turn.
    for (const auto& id : dirty_nodes_) {
      if (NodeEntry* n = registry->Find(id)) registry->Persist(batch, *n);
    }
    dirty_nodes_.clear();
    // Finished commands push right away, not at the next tick.
    const int64_t now = Now();
    for (CommandEntry* c : recent_finished_) MaybePush(*c, now);
    recent_finished_.clear();
    if (batch.Count() > 0) {
      Status s = store->Write(batch, /*sync=*/true);
      batch.Clear();
      if (!s.ok()) {
        events->Abort();
        out.clear();
        return s.WithContext("cannot save broker state");
      }
    }
    const auto staged = events->staged();
    events->Commit();
    // The report acks now due (see ScheduleAck), after the commit above.
    reply_sock_ = Sock::kCtl;
    const int64_t ack_now = Now();
    while (!ack_due_.empty() && ack_due_.begin()->first <= ack_now) {
      const std::string node = std::move(ack_due_.begin()->second);
      ack_due_.erase(ack_due_.begin());
      ack_scheduled_.erase(node);
      NodeEntry* n = registry->Find(node);
      if (n == nullptr || n->routing_id.empty()) continue;
      last_ack_ms_[node] = ack_now;
      wire::ReportAckT a;
      a.upto_seq = n->last_report_seq;
      a.broker_instance = instance;
      wire::BodyUnion b;
      b.Set(std::move(a));
      Reply(n->routing_id, 0, std::move(b));
    }
    for (auto& o : out) {
      zmq::socket_t* s = sockets_[static_cast<size_t>(o.sock)];
      std::vector<std::string_view> views(o.frames.begin(), o.frames.end());
      if (!SendFramesNoWait(*s, views) && o.sock == Sock::kCtl) {
        spdlog::debug("ctl peer gone or slow; a reply was dropped");
      }
    }
    out.clear();
    for (const auto& ev : staged) {
      SendFramesNoWait(*sockets_[static_cast<size_t>(Sock::kXpub)], {ev.topic, ev.bytes});
    }
    if (trim_due_) {
      trim_due_ = false;
      tracker->Trim();  // only here: no CommandEntry* is held across this point
    }
    return Status::OK();
  }

  std::vector<CommandEntry*> recent_finished_;
  bool trim_due_ = false;
  std::set<std::string> dirty_nodes_;  // node records to persist this turn
  std::map<std::string, std::set<uint32_t>> refused_pids_;  // second agent processes refused, by node
};

Result<std::unique_ptr<Broker>> Broker::Start(BrokerOptions options) {
  if (options.data_dir.empty()) return Status::InvalidArgument("the broker needs --data-dir");
  auto impl = std::make_unique<Impl>(std::move(options));
  LK_RETURN_IF_ERROR(impl->Open());
  impl->pipe_front = std::make_unique<zmq::socket_t>(impl->ctx, zmq::socket_type::pair);
  const std::string pipe_addr = "inproc://broker-pipe";
  impl->pipe_front->bind(pipe_addr);
  std::promise<Status> ready;
  auto ready_future = ready.get_future();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw, pipe_addr, &ready] {
    ::pthread_setname_np(::pthread_self(), "lk-broker");  // for top -H and perf
    zmq::socket_t back(raw->ctx, zmq::socket_type::pair);
    back.connect(pipe_addr);
    try {
      raw->Run(back, ready);
    } catch (...) {  // outside a turn (set-up, shutdown): the broker stops, saying why
      raw->exit_status = Status::Internal("the broker thread failed: " + CurrentExceptionText());
      spdlog::critical("{}", raw->exit_status.message());
      if (!raw->ready_sent) ready.set_value(raw->exit_status);  // Start() is still waiting
    }
    raw->exited = true;
  });
  Status s = ready_future.get();
  if (!s.ok()) {
    impl->thread.join();
    return s;
  }
  return std::unique_ptr<Broker>(new Broker(std::move(impl)));
}

Broker::Broker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Broker::~Broker() { Stop(); }

void Broker::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  SendFramesNoWait(*impl_->pipe_front, {"$TERM"});
  if (impl_->thread.joinable()) impl_->thread.join();
}

bool Broker::Exited() const { return impl_->exited.load(); }

Status Broker::Wait() {
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->stopped = true;
  return impl_->exit_status;
}

}  // namespace ledgerkeep
