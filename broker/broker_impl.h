// Broker::Impl, the broker thread's state and handlers (private to broker/).
//
// broker.cc: set-up, the poll loop, ZAP, ctl dispatch, timers and the group
// commit (transport and dispatch); broker_agents.cc: what agents send
// (Hello, Heartbeat, Report) and the one-connection-per-node rule;
// broker_ctl.cc: what operators and subscribers ask (nodes, commands,
// workflows, events). The destination rules are DestinationRules.
// Thread-safety: everything here belongs to the broker thread, except
// pipe_front/thread/stopped (the caller's thread) and `exited`.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "broker/allowlist_reload.h"
#include "broker/broker.h"
#include "broker/destination_rules.h"
#include "broker/node_registry.h"
#include "broker/workflow.h"
#include "broker/zap_authenticator.h"
#include "common/exception_text.h"
#include "common/kv_store.h"
#include "common/zmq_util.h"

namespace ledgerkeep {
namespace broker_internal {

// Column families of the broker's state store (append only).
enum BrokerCf : int {
  kCfMeta = 0,
  kCfNodes = 1,
  kCfCommands = 2,
  kCfTargets = 3,
  kCfEvents = 4,
  kCfWorkflows = 5
};
// The name the broker sends under and stages its own events with.
inline constexpr const char* kBrokerName = "broker";
inline constexpr const char* kNextCmdIdKey = "next_cmd_id";
// Report acks per node at most this often (Broker::Impl::ScheduleAck).
inline constexpr int64_t kAckIntervalMs = 500;

std::string RandomHex64();
inline std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

}  // namespace broker_internal

struct Broker::Impl {
  enum class Sock { kCtl = 0, kPub = 1, kXpub = 2, kInternal = 3 };
  struct Outgoing {
    Sock sock;
    std::vector<std::string> frames;
  };

  BrokerOptions opt;
  ZapAuthenticator zap_policy{opt.config};
  std::string instance = broker_internal::RandomHex64();
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
  Status Open();

  void Run(zmq::socket_t& pipe, std::promise<Status>& ready);

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
  void HandleCtlGuarded(std::vector<zmq::message_t>& frames, Sock sock);

  // ------------------------------------------------------------ ZAP
  void HandleZap(zmq::socket_t& zap);

  // ------------------------------------------------------------ helpers
  void Queue(Sock sock, std::vector<std::string> frames) { out.push_back({sock, std::move(frames)}); }

  // Replies go to the ROUTER the request came in on (reply_sock_). Watcher
  // keys carry their socket in the first byte.
  Sock reply_sock_ = Sock::kCtl;
  static std::string WatcherKey(Sock sock, const std::string& rid) {
    return std::string(1, static_cast<char>(sock)) + rid;
  }

  void Reply(const std::string& rid, uint64_t reply_to, wire::BodyUnion body);

  void ReplyError(const std::string& rid, uint64_t reply_to, const Status& s);

  template <typename T>
  void StageEvent(const std::string& kind, const std::string& node, T value) {
    wire::EventBodyUnion body;
    body.Set(std::move(value));
    events->Stage(batch, kind, node, std::move(body));
  }

  void StageTransition(const NodeTransition& t);

  void SendCommandTo(CommandEntry& c, NodeEntry& n);

  void NoteFinished(CommandEntry& c);

  // ------------------------------------------------------------ ctl dispatch
  // Authenticates the sender, checks its role may send the message and
  // hands it to its handler.
  void HandleCtl(std::vector<zmq::message_t>& frames, Sock sock);

  // ------------------------------------------------------------ agents (broker_agents.cc)
  void HandleAgent(const std::string& rid, const std::string& node_id, const wire::Envelope& e);

  // Whether the node's current connection is alive: libzmq still has it
  // (ROUTER_MANDATORY: a send to a peer whose connection closed fails with
  // EHOSTUNREACH, so a crashed or SIGKILLed agent's is gone at once) and it
  // spoke within the suspect threshold (a half-open connection of a host that
  // vanished does not count). The probe is a HeartbeatAck, which the agent
  // takes as a no-op.
  bool CurrentConnectionAlive(const NodeEntry& n);

  // A message for node `n` from connection `rid`, which is not the node's
  // current one. While the current connection is alive it is a second
  // process with this node's key: refused (AlreadyExists, which makes the
  // agent stop), it never touches the node's state, and a Hello's refusal
  // is an event. Otherwise the agent reconnected: its Hello takes over; any
  // other message is answered FailedPrecondition, so that it says Hello.
  bool AdmitNewConnection(NodeEntry& n, const std::string& rid, const wire::Envelope& e);

  void HandleHello(NodeEntry& n, const wire::Envelope& e, const wire::Hello& h);

  // Report acks are cumulative: one per node per kAckIntervalMs is enough
  // (agents resend unacked reports only after 5 s) and saves a message per
  // report under load. Each node's acks go out in its own slot of the
  // interval (a phase from its id), so that the acks of 1000 busy agents
  // trickle out instead of landing all at once in the middle of a fan-out.
  void ScheduleAck(const std::string& node, int64_t now);

  void HandleReport(NodeEntry& n, const wire::Report& r);

  // ------------------------------------------------------------ operator requests (broker_ctl.cc)
  void HandleListNodes(const std::string& rid, const wire::Envelope& e);

  // Up to this many targets are listed by id in a Command; more go as a
  // bitmap of node indexes (Command.target_bits).
  static constexpr size_t kMaxListedTargets = 16;

  std::vector<uint8_t> TargetBits(const std::vector<std::string>& ids);

  Result<std::vector<std::string>> ResolveTargets(const wire::TargetT& t);

  void HandleIssue(const std::string& rid, const std::string& issuer, const wire::Envelope& e);
  // An agent's own request (its HTTP API): only the runbook's node-local
  // commands, only to itself; recorded as "<node> (<requested_by>)".
  void HandleAgentIssue(const std::string& rid, const std::string& node, const wire::Envelope& e);

  void PushStatus(CommandEntry& c, const std::string& watcher, uint64_t reply_to);

  wire::WorkflowStatusT ToWire(const WorkflowRecord& r);

  void HandleStartWorkflow(const std::string& rid, const wire::Envelope& e);

  void HandleGetWorkflow(const std::string& rid, const wire::Envelope& e);

  void HandleAppendEvent(const std::string& rid, const wire::Envelope& e);

  // `agent` set: an agent may follow only commands addressed to itself alone.
  void HandleGetStatus(const std::string& rid, const wire::Envelope& e, const std::string& agent = "");

  void HandleFetch(const std::string& rid, const wire::Envelope& e);

  // ------------------------------------------------------------ allowlist
  // Applies a change of the allowlist files (allowlist_reload.h): the new
  // allowlist is used from the next message and ZAP handshake on, agent
  // nodes join or leave the registry, the connections of removed keys are
  // shut down, and a "keys" event says what changed (or why the files were
  // not taken).
  void ReloadAllowlist();
  // Shuts down the open connections a removed key may hold.
  void CutOff(const AllowEntry& removed);

  // ------------------------------------------------------------ timers
  void Tick(int64_t now);

  void MaybePush(CommandEntry& c, int64_t now);

  // ------------------------------------------------------------ commit
  Status CommitAndFlush();

  std::vector<CommandEntry*> recent_finished_;
  bool trim_due_ = false;
  std::set<std::string> dirty_nodes_;  // node records to persist this turn
  std::map<std::string, std::set<uint32_t>> refused_pids_;  // second agent processes refused, by node
  std::unique_ptr<AllowlistWatcher> allowlist_watch;
  int64_t last_allowlist_poll_ = 0;
  // The ctl connections (descriptors) each key's messages came from, so
  // that removing the key can close them (the newest few per key).
  std::map<std::string, std::set<int>> ctl_fds_;
};

}  // namespace ledgerkeep
