// Agent::Impl: the agent thread's state and its parts (internal to
// agents/; agent.h is the contract). Methods by file:
//   agent.cc             posts from lane workers, reports and the journal,
//                        command dispatch, the loop;
//   agent_connection.cc  the broker connection: connect, Hello and
//                        heartbeats, receiving, liveness timers, the
//                        data-directory watch.
// Thread-safety: everything below belongs to the agent thread, except what
// says otherwise (posts under post_mu, the atomics).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "agents/agent.h"
#include "agents/lane_executor.h"
#include "common/backoff.h"
#include "common/codec.h"
#include "common/zmq_util.h"

namespace ledgerkeep {

// Unacknowledged reports are sent again after this long.
constexpr int64_t kResendUnackedMs = 5'000;

struct Agent::Impl {
  // Work handed from lane workers to the agent thread.
  struct Post {
    enum Kind { kProgress, kNote, kDone, kReport } kind;
    uint64_t cmd_id = 0;
    wire::ProgressT progress;
    std::string level;
    std::string text;
    CommandOutcome outcome;
    int64_t started_at_ms = 0;
    wire::ReportBodyUnion report;
  };
  AgentOptions opt;
  HandlerMap handlers;
  std::unique_ptr<zmq::context_t> own_ctx;
  zmq::context_t* ctx = nullptr;
  std::thread thread;
  std::atomic<bool> stop_requested{false};  // set by Stop(), then wake_fd
  std::atomic<bool> cancelled{false};
  std::atomic<bool> exited{false};
  bool stopped = false;
  Status exit_status;
  LaneExecutor lanes;
  int wake_fd = -1;
  std::mutex post_mu;
  std::deque<Post> posts;  // guarded by post_mu

  // Agent-thread state.
  std::unique_ptr<zmq::socket_t> sub;
  std::unique_ptr<zmq::socket_t> dealer;
  std::unique_ptr<HandshakeMonitor> monitor;
  std::unique_ptr<HandshakeMonitor> sub_monitor;
  bool welcomed = false;
  bool hello_pending = false;  // waiting for the SUB connection before Hello
  int64_t connected_at = 0;
  std::string broker_instance;
  uint32_t node_index = 0;  // our bit in Command.target_bits (Welcome); 0 = not yet known
  int64_t last_broker_msg = 0;
  int64_t next_heartbeat = 0;
  int64_t last_hello = 0;
  int64_t reconnect_at = 0;
  int64_t last_resend = 0;
  int64_t last_sent = 0;           // anything to the broker over ctl
  int64_t next_monitor_check = 0;  // handshake monitor, once welcomed
  uint64_t next_msg_id = 1;
  uint64_t acked_seq = 0;
  bool auth_error_logged = false;
  // The data directory and its journal/ as opened (see AgentOptions::data_dir).
  struct WatchedDir {
    std::string path;
    dev_t dev = 0;
    ino_t ino = 0;
  };
  std::vector<WatchedDir> watched_dirs;
  int64_t next_data_dir_check = 0;
  bool data_dir_lost = false;       // nothing is executed or journaled from then on
  std::optional<OutboxEntry> lost_note;  // the broker is told this before the agent stops
  int64_t lost_deadline = 0;             // stop then even if the note could not leave
  int64_t refused_since = 0;  // first refusal as a second process since the last Welcome (0: none)
  ExponentialBackoff backoff{200, 10'000, std::random_device{}()};
  explicit Impl(AgentOptions o) : opt(std::move(o)) {}
  ~Impl() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  int64_t Now() const { return opt.clock->NowMs(); }
  int64_t hb() const { return opt.config.heartbeat_ms; }

  // ------------------------------------------------------------ posts
  void PostFromWorker(Post p);
  void DrainPosts();
  void DrainPostsNoWake();

  // ------------------------------------------------------------ reports
  OutboxEntry MakeReport(wire::ReportBodyUnion body);
  // The Ack report of command `id` (refused: `reason` says why).
  OutboxEntry MakeAck(uint64_t id, bool accepted, const std::string& reason);
  void SendReport(const OutboxEntry& e);
  void EmitAppend(wire::ReportBodyUnion body);
  void CompleteCommand(const wire::CommandResultT& r);
  void ResendUnacked();

  // ------------------------------------------------------------ connection
  void Connect();
  void Disconnect();
  void SendHello();
  void SendHeartbeat();

  // A broker instance other than the one that welcomed us: it restarted, so
  // say Hello again (it resends our pending commands on Hello).
  void CheckBrokerInstance(const std::string& inst);

  // ------------------------------------------------------------ receive
  void HandleDealer();
  void HandleSub();

  // Whether this node is one of the command's targets: listed by id, or its
  // bit set in target_bits. A bitmap command that reached us directly over
  // ctl (redelivery, pending on Hello) is ours whatever our index: the
  // broker sends commands directly only to their targets.
  bool IsTarget(const wire::Command& cmd, bool direct) const;

  // The broker refused this connection: another process serves this node
  // (or, for a moment, the broker has not yet seen our previous connection
  // close). Inert from now on: nothing is executed or reported before a
  // Welcome. A refusal that lasts longer than a restart's race and than the
  // broker's suspect window (after which it stops counting a silent, half-
  // open connection as alive) is final: the agent stops with the broker's
  // reason, and main exits 1.
  void RefusedAsSecondProcess(const std::string& why);
  void HandleCommand(DecodedEnvelope env, bool direct);

  // Runs an instant handler on this thread; only its result is journaled
  // and reported (an instant command cannot be interrupted half-way).
  void ExecuteInline(CommandHandler& handler, DecodedEnvelope env, uint64_t id);

  // Commands that were running when the agent died are reported, not re-run:
  // re-running a half-done backup or node stop blindly is not safe.
  void ReportInterrupted();

  // ------------------------------------------------------------ data dir
  // A data directory deleted under a running agent leaves RocksDB writing
  // into deleted files: every report and command state it journals would be
  // gone at the next start, silently. So the agent checks that each watched
  // directory is still the one it opened (same device and inode, reachable
  // by its path) and stops the moment it is not.
  void CheckDataDir();
  // Sends the note once welcomed, then stops; stops without it at
  // lost_deadline.
  void FinishDataDirLoss();

  // ------------------------------------------------------------ loop
  void Run();
  void Turn();
  void Timers();
};

}  // namespace ledgerkeep
