#include "agents/agent.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <zmq.hpp>

#include "agents/lane_executor.h"
#include "common/backoff.h"
#include "common/exception_text.h"
#include "common/zmq_util.h"

namespace ledgerkeep {
namespace {

std::string PackResult(const wire::CommandResultT& r) {
  flatbuffers::FlatBufferBuilder fbb(128);
  fbb.Finish(wire::CommandResult::Pack(fbb, &r));
  return {reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()};
}

constexpr int64_t kResendUnackedMs = 5'000;
// Consecutive agent-thread turns that may throw before the agent gives up.
constexpr int kMaxFailedTurns = 100;

// The handler boundary: an exception a handler lets out (a filesystem_error
// on a path too long, a json type_error, ...) becomes the command's failed
// result instead of std::terminate taking the whole agent down.
CommandOutcome ExecuteGuarded(CommandHandler& handler, const CommandContext& ctx) {
  try {
    return handler.Execute(ctx);
  } catch (...) {
    const std::string kind(CommandKindName(ctx.command().body_type()));
    const std::string what = CurrentExceptionText();
    spdlog::error("internal error in {} (command {}): {}; the agent keeps serving", kind, ctx.cmd_id(), what);
    return {Status::Internal("internal error in " + kind + ": " + what + "; the agent keeps serving"), {}};
  }
}

}  // namespace

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
  bool data_dir_lost = false;
  int64_t refused_since = 0;  // first refusal as a second process since the last Welcome (0: none)
  ExponentialBackoff backoff{200, 10'000, std::random_device{}()};

  explicit Impl(AgentOptions o) : opt(std::move(o)) {}
  ~Impl() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  int64_t Now() const { return opt.clock->NowMs(); }
  int64_t hb() const { return opt.config.heartbeat_ms; }

  // ------------------------------------------------------------ posts
  void PostFromWorker(Post p) {
    {
      std::lock_guard<std::mutex> lock(post_mu);
      posts.push_back(std::move(p));
    }
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd, &one, sizeof one);
    (void)n;
  }

  void DrainPosts() {
    uint64_t v;
    ssize_t n = ::read(wake_fd, &v, sizeof v);
    (void)n;
    DrainPostsNoWake();
  }

  void DrainPostsNoWake() {
    std::deque<Post> mine;
    {
      std::lock_guard<std::mutex> lock(post_mu);
      mine.swap(posts);
    }
    for (auto& p : mine) {
      switch (p.kind) {
        case Post::kProgress: {
          wire::ReportBodyUnion b;
          b.Set(std::move(p.progress));
          EmitAppend(std::move(b));
          break;
        }
        case Post::kNote: {
          wire::NoteT note;
          note.level = p.level;
          note.text = p.text;
          wire::ReportBodyUnion b;
          b.Set(std::move(note));
          EmitAppend(std::move(b));
          break;
        }
        case Post::kReport:
          EmitAppend(std::move(p.report));
          break;
        case Post::kDone: {
          wire::CommandResultT r;
          r.cmd_id = p.cmd_id;
          r.status = p.outcome.status.ok() ? wire::ResultStatus::Ok : wire::ResultStatus::Failed;
          r.error_code = static_cast<uint16_t>(p.outcome.status.code());
          r.message = p.outcome.status.message();
          r.started_at_ms = p.started_at_ms;
          r.finished_at_ms = Now();
          r.detail = std::move(p.outcome.detail);
          CompleteCommand(r);
          break;
        }
      }
    }
  }

  // ------------------------------------------------------------ reports
  OutboxEntry MakeReport(wire::ReportBodyUnion body) {
    const uint64_t seq = opt.journal->last_seq() + 1;
    wire::ReportT r;
    r.seq = seq;
    r.at_ms = Now();
    r.body = std::move(body);
    EnvelopeHeader h;
    h.sender = opt.node_id;
    h.msg_id = next_msg_id++;
    h.seq = seq;
    h.sent_at_ms = r.at_ms;
    wire::BodyUnion b;
    b.Set(std::move(r));
    return {seq, BuildEnvelope(h, std::move(b))};
  }

  void SendReport(const OutboxEntry& e) {
    if (!welcomed || !dealer) return;  // resent after the next Welcome
    SendFramesNoWait(*dealer, {e.envelope});
    last_sent = Now();
  }

  void EmitAppend(wire::ReportBodyUnion body) {
    if (data_dir_lost) return;  // nothing more into deleted files
    OutboxEntry e = MakeReport(std::move(body));
    Status s = opt.journal->Append(e);
    if (!s.ok()) spdlog::error("cannot journal a report: {}", s.ToString());
    SendReport(e);
  }

  void CompleteCommand(const wire::CommandResultT& r) {
    if (data_dir_lost) return;  // nothing more into deleted files
    wire::ReportBodyUnion b;
    b.Set(wire::CommandResultT(r));
    OutboxEntry e = MakeReport(std::move(b));
    Status s = opt.journal->Complete(r.cmd_id, PackResult(r), e);
    if (!s.ok()) spdlog::error("cannot journal the result of command {}: {}", r.cmd_id, s.ToString());
    if (r.status == wire::ResultStatus::Ok) {
      spdlog::info("command {} done", r.cmd_id);
    } else {
      spdlog::warn("command {} {}: {}", r.cmd_id, wire::EnumNameResultStatus(r.status), r.message);
    }
    SendReport(e);
  }

  void ResendUnacked() {
    if (!welcomed || !dealer) return;
    last_resend = Now();
    auto pending = opt.journal->Unacked(acked_seq);
    if (!pending.ok()) {
      spdlog::error("cannot read the outbox: {}", pending.status().ToString());
      return;
    }
    for (const auto& e : *pending) SendFramesNoWait(*dealer, {e.envelope});
  }

  // ------------------------------------------------------------ connection
  void Connect() {
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

  void Disconnect() {
    sub_monitor.reset();
    monitor.reset();
    sub.reset();
    dealer.reset();
    welcomed = false;
  }

  void SendHello() {
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

  void SendHeartbeat() {
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

  // A broker instance other than the one that welcomed us: it restarted, so
  // say Hello again (it resends our pending commands on Hello).
  void CheckBrokerInstance(const std::string& inst) {
    if (welcomed && inst != broker_instance) {
      spdlog::info("broker restarted (instance {}); saying hello again", inst);
      welcomed = false;
      SendHello();
    }
  }

  // ------------------------------------------------------------ receive
  void HandleDealer() {
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

  void HandleSub() {
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

  // Whether this node is one of the command's targets: listed by id, or its
  // bit set in target_bits. A bitmap command that reached us directly over
  // ctl (redelivery, pending on Hello) is ours whatever our index: the
  // broker sends commands directly only to their targets.
  bool IsTarget(const wire::Command& cmd, bool direct) const {
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

  // The broker refused this connection: another process serves this node
  // (or, for a moment, the broker has not yet seen our previous connection
  // close). Inert from now on: nothing is executed or reported before a
  // Welcome. A refusal that lasts longer than a restart's race and than the
  // broker's suspect window (after which it stops counting a silent, half-
  // open connection as alive) is final: the agent stops with the broker's
  // reason, and main exits 1.
  void RefusedAsSecondProcess(const std::string& why) {
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

  void HandleCommand(DecodedEnvelope env, bool direct) {
    // Commands count only once the broker welcomed this connection: a second
    // process with this node's key (refused) receives the node's commands on
    // PUB too, and must not run them. The broker sends what is pending for
    // the node right after the Welcome, so nothing is lost by waiting.
    if (!welcomed) return;
    const wire::Command& cmd = *env->body_as_Command();
    if (!IsTarget(cmd, direct)) return;
    const uint64_t id = cmd.cmd_id();
    auto existing = opt.journal->GetCommand(id);
    if (!existing.ok()) {
      spdlog::error("journal read failed for command {}: {}", id, existing.status().ToString());
      return;
    }
    if (existing->has_value()) {
      // Duplicate (PUB and redelivery both arrived, or the broker missed our
      // reports): the answer is already in the outbox; resend it.
      if (Now() - last_resend > 500) ResendUnacked();
      return;
    }
    const std::string kind(CommandKindName(cmd.body_type()));
    auto refuse = [&](bool expired, const std::string& why) {
      wire::AckT ack;
      ack.cmd_id = id;
      ack.accepted = false;
      ack.reason = why;
      wire::ReportBodyUnion b;
      b.Set(std::move(ack));
      OutboxEntry e = MakeReport(std::move(b));
      Status s = opt.journal->Accept(id, e);
      if (!s.ok()) spdlog::error("journal: {}", s.ToString());
      SendReport(e);
      wire::CommandResultT r;
      r.cmd_id = id;
      r.status = expired ? wire::ResultStatus::Expired : wire::ResultStatus::Rejected;
      r.error_code = static_cast<uint16_t>(expired ? StatusCode::kExpired : StatusCode::kInvalidArgument);
      r.message = why;
      r.finished_at_ms = Now();
      CompleteCommand(r);
    };
    if (Now() > cmd.deadline_ms()) {
      return refuse(
          true, "command " + std::to_string(id) + " (" + kind + ") arrived after its deadline; not executed");
    }
    auto h = handlers.find(cmd.body_type());
    if (h == handlers.end()) {
      return refuse(false, "this " + RoleName(opt.role) + " agent does not handle '" + kind + "' commands");
    }
    std::shared_ptr<CommandHandler> handler = h->second;
    const std::string lane = handler->Lane(cmd);
    if (lane.empty()) {
      // An instant handler: its result is the acknowledgement (the broker
      // counts a result as an ack), so no separate Ack report is sent.
      ExecuteInline(*handler, std::move(env), id);
      return;
    }
    wire::AckT ack;
    ack.cmd_id = id;
    ack.accepted = true;
    wire::ReportBodyUnion b;
    b.Set(std::move(ack));
    OutboxEntry e = MakeReport(std::move(b));
    Status s = opt.journal->Accept(id, e);
    if (!s.ok()) {
      spdlog::error("cannot journal command {}: {}; not acking it", id, s.ToString());
      return;
    }
    SendReport(e);
    spdlog::info("command {} ({}) accepted", id, kind);
    auto ctx_ptr = std::make_shared<CommandContext>(
        std::move(env), &cancelled, opt.clock,
        [this, id](wire::ProgressT p) {
          Post post{Post::kProgress};
          post.cmd_id = id;
          post.progress = std::move(p);
          PostFromWorker(std::move(post));
        },
        [this](std::string level, std::string text) {
          Post post{Post::kNote};
          post.level = std::move(level);
          post.text = std::move(text);
          PostFromWorker(std::move(post));
        });
    lanes.Submit(lane, [this, handler, ctx_ptr, id] {
      const int64_t started = Now();
      CommandOutcome outcome = ExecuteGuarded(*handler, *ctx_ptr);
      Post post{Post::kDone};
      post.cmd_id = id;
      post.outcome = std::move(outcome);
      post.started_at_ms = started;
      PostFromWorker(std::move(post));
    });
  }

  // Runs an instant handler on this thread; only its result is journaled
  // and reported (an instant command cannot be interrupted half-way).
  void ExecuteInline(CommandHandler& handler, DecodedEnvelope env, uint64_t id) {
    CommandContext context(
        std::move(env), &cancelled, opt.clock, [](wire::ProgressT) {}, [](std::string, std::string) {});
    const int64_t started = Now();
    CommandOutcome outcome = ExecuteGuarded(handler, context);
    wire::CommandResultT r;
    r.cmd_id = id;
    r.status = outcome.status.ok() ? wire::ResultStatus::Ok : wire::ResultStatus::Failed;
    r.error_code = static_cast<uint16_t>(outcome.status.code());
    r.message = outcome.status.message();
    r.started_at_ms = started;
    r.finished_at_ms = Now();
    r.detail = std::move(outcome.detail);
    CompleteCommand(r);
  }

  // Commands that were running when the agent died are reported, not re-run:
  // re-running a half-done backup or node stop blindly is not safe.
  void ReportInterrupted() {
    auto ids = opt.journal->Interrupted();
    if (!ids.ok()) {
      spdlog::error("journal: {}", ids.status().ToString());
      return;
    }
    for (uint64_t id : *ids) {
      wire::CommandResultT r;
      r.cmd_id = id;
      r.status = wire::ResultStatus::Interrupted;
      r.error_code = static_cast<uint16_t>(StatusCode::kAborted);
      r.message = "the agent restarted while this command ran; it was not re-run (issue it again)";
      r.finished_at_ms = Now();
      CompleteCommand(r);
    }
  }

  // ------------------------------------------------------------ data dir
  // A data directory deleted under a running agent leaves RocksDB writing
  // into deleted files: every report and command state it journals would be
  // gone at the next start, silently. So the agent checks that each watched
  // directory is still the one it opened (same device and inode, reachable
  // by its path) and stops the moment it is not.
  void CheckDataDir() {
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
      SendReport(MakeReport(std::move(b)));
      if (dealer) dealer->set(zmq::sockopt::linger, 1000);  // let the note leave before the socket closes
      data_dir_lost = true;
      exit_status = Status::FailedPrecondition(why);
      stop_requested = true;
      return;
    }
  }

  // ------------------------------------------------------------ loop
  void Run() {
    ReportInterrupted();
    Connect();
    next_heartbeat = Now();
    int failed_turns = 0;
    while (!stop_requested) {
      // The agent thread's boundary: a turn that throws (a ZeroMQ error, a
      // bad_alloc) is logged and the agent goes on serving. Only a fault
      // that repeats turn after turn stops it (rather than spin logging).
      try {
        Turn();
        failed_turns = 0;
      } catch (...) {
        const std::string what = CurrentExceptionText();
        if (++failed_turns >= kMaxFailedTurns) {
          exit_status = Status::Internal("the agent thread failed " + std::to_string(failed_turns) +
                                         " turns in a row, last: " + what);
          spdlog::critical("{}; stopping", exit_status.message());
          break;
        }
        spdlog::error("internal error in the agent thread: {}; the agent keeps serving", what);
      }
    }
    cancelled = true;
    lanes.Stop();
    DrainPosts();  // results of handlers that finished while stopping
    Disconnect();
  }

  void Turn() {
    const int64_t now = Now();
    // Once welcomed, sleep until the next heartbeat (1000 idle agents must
    // not wake 10 times a second each); while connecting, check often.
    const int64_t cap = (dealer && welcomed && !hello_pending) ? hb() : 100;
    int64_t wait = std::max<int64_t>(0, std::min<int64_t>(next_heartbeat - now, cap));
    // Every ZeroMQ socket in a poll costs a system call per pass, on each
    // of 1000 agents: only the two bus sockets are polled; Stop() and the
    // lane workers wake this thread through wake_fd.
    zmq::pollitem_t items[3] = {{nullptr, wake_fd, ZMQ_POLLIN, 0}, {nullptr, -1, 0, 0}, {nullptr, -1, 0, 0}};
    size_t n = 1;
    if (dealer) {
      items[n++] = {dealer->handle(), 0, ZMQ_POLLIN, 0};
      items[n++] = {sub->handle(), 0, ZMQ_POLLIN, 0};
    }
    zmq::poll(items, n, std::chrono::milliseconds(wait));
    if (stop_requested) return;
    if (items[0].revents & ZMQ_POLLIN) DrainPosts();
    if (dealer && (items[1].revents & ZMQ_POLLIN)) HandleDealer();
    if (dealer && (items[2].revents & ZMQ_POLLIN)) HandleSub();
    Timers();
  }

  void Timers() {
    const int64_t now = Now();
    if (!watched_dirs.empty() && now >= next_data_dir_check) {
      next_data_dir_check = now + hb();
      CheckDataDir();
      if (data_dir_lost) return;
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
};

Result<std::unique_ptr<Agent>> Agent::Start(AgentOptions options, HandlerMap handlers) {
  if (options.node_id.empty()) return Status::InvalidArgument("the agent needs --node-id");
  if (!options.journal) return Status::InvalidArgument("the agent needs a journal");
  if (options.role != wire::Role::Replica && options.role != wire::Role::Client) {
    return Status::InvalidArgument("agent role must be replica or client");
  }
  const AllowEntry* me = options.config.FindNode(options.node_id);
  if (me == nullptr) {
    spdlog::warn(
        "node '{}' is not in this config's allowlist; the broker will refuse it unless "
        "its own config lists it",
        options.node_id);
  } else if (me->public_z85 != options.key.public_z85) {
    return Status::InvalidArgument(
        "the key file's public key is not the one the allowlist binds to "
        "node '" +
        options.node_id + "'");
  } else if (me->role != options.role) {
    return Status::InvalidArgument("node '" + options.node_id + "' is allowlisted as " + RoleName(me->role) +
                                   ", not " + RoleName(options.role));
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  impl->handlers = std::move(handlers);
  if (!impl->opt.data_dir.empty()) {
    for (const std::string& dir : {impl->opt.data_dir, impl->opt.data_dir + "/journal"}) {
      struct stat st {};
      if (::stat(dir.c_str(), &st) != 0) {
        if (dir != impl->opt.data_dir && errno == ENOENT) continue;  // no durable journal there
        return Status::FromErrno(errno, "data directory " + dir);
      }
      impl->watched_dirs.push_back({dir, st.st_dev, st.st_ino});
    }
  }
  impl->backoff =
      ExponentialBackoff(impl->opt.reconnect_base_ms, impl->opt.reconnect_max_ms, std::random_device{}());
  impl->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->wake_fd < 0) return Status::FromErrno(errno, "eventfd");
  if (impl->opt.context == nullptr) {
    impl->own_ctx = std::make_unique<zmq::context_t>(1);
    impl->ctx = impl->own_ctx.get();
  } else {
    impl->ctx = impl->opt.context;
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    ::pthread_setname_np(::pthread_self(), "lk-agent");  // for top -H and perf
    try {
      raw->Run();
    } catch (...) {  // outside a turn (start-up, shutdown): the agent stops, saying why
      raw->exit_status = Status::Internal("the agent thread failed: " + CurrentExceptionText());
      spdlog::critical("{}", raw->exit_status.message());
    }
    raw->exited = true;
  });
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Agent::~Agent() { Stop(); }

void Agent::Stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->stop_requested = true;
  uint64_t one = 1;
  ssize_t n = ::write(impl_->wake_fd, &one, sizeof one);
  (void)n;
  if (impl_->thread.joinable()) impl_->thread.join();
}

bool Agent::Exited() const { return impl_->exited.load(); }

std::function<void(wire::ReportBodyUnion)> Agent::Reporter() {
  Impl* impl = impl_.get();
  return [impl](wire::ReportBodyUnion body) {
    Impl::Post post{Impl::Post::kReport};
    post.report = std::move(body);
    impl->PostFromWorker(std::move(post));
  };
}

Status Agent::Wait() {
  if (impl_->thread.joinable()) impl_->thread.join();
  return impl_->exit_status;
}

}  // namespace ledgerkeep
