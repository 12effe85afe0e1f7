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

#include "agents/agent_impl.h"
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

void Agent::Impl::PostFromWorker(Post p) {
  {
    std::lock_guard<std::mutex> lock(post_mu);
    posts.push_back(std::move(p));
  }
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd, &one, sizeof one);
  (void)n;
}

void Agent::Impl::DrainPosts() {
  uint64_t v;
  ssize_t n = ::read(wake_fd, &v, sizeof v);
  (void)n;
  DrainPostsNoWake();
}

void Agent::Impl::DrainPostsNoWake() {
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

OutboxEntry Agent::Impl::MakeReport(wire::ReportBodyUnion body) {
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

OutboxEntry Agent::Impl::MakeAck(uint64_t id, bool accepted, const std::string& reason) {
  wire::AckT ack;
  ack.cmd_id = id;
  ack.accepted = accepted;
  ack.reason = reason;
  wire::ReportBodyUnion b;
  b.Set(std::move(ack));
  return MakeReport(std::move(b));
}

void Agent::Impl::SendReport(const OutboxEntry& e) {
  if (!welcomed || !dealer) return;  // resent after the next Welcome
  SendFramesNoWait(*dealer, {e.envelope});
  last_sent = Now();
}

void Agent::Impl::EmitAppend(wire::ReportBodyUnion body) {
  if (data_dir_lost) return;  // nothing more into deleted files
  OutboxEntry e = MakeReport(std::move(body));
  Status s = opt.journal->Append(e);
  if (!s.ok()) spdlog::error("cannot journal a report: {}", s.ToString());
  SendReport(e);
}

void Agent::Impl::CompleteCommand(const wire::CommandResultT& r) {
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

void Agent::Impl::ResendUnacked() {
  if (!welcomed || !dealer) return;
  last_resend = Now();
  auto pending = opt.journal->Unacked(acked_seq);
  if (!pending.ok()) {
    spdlog::error("cannot read the outbox: {}", pending.status().ToString());
    return;
  }
  for (const auto& e : *pending) SendFramesNoWait(*dealer, {e.envelope});
}

void Agent::Impl::HandleCommand(DecodedEnvelope env, bool direct) {
  // Commands count only once the broker welcomed this connection: a second
  // process with this node's key (refused) receives the node's commands on
  // PUB too, and must not run them. The broker sends what is pending for
  // the node right after the Welcome, so nothing is lost by waiting.
  if (!welcomed) return;
  // The data directory is gone: nothing more is journaled, so nothing is
  // run (the broker redelivers to the restarted agent).
  if (data_dir_lost) return;
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
    OutboxEntry e = MakeAck(id, false, why);
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
  OutboxEntry e = MakeAck(id, true, "");
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

void Agent::Impl::ExecuteInline(CommandHandler& handler, DecodedEnvelope env, uint64_t id) {
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

void Agent::Impl::ReportInterrupted() {
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

void Agent::Impl::Run() {
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

void Agent::Impl::Turn() {
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
