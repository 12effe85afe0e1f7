#include "client/broker_client.h"

#include <algorithm>
#include <deque>
#include <zmq.hpp>

#include "common/clock.h"
#include "common/zmq_util.h"

namespace ledgerkeep {
namespace {

// The client accepts larger messages than the broker: event pages.
constexpr int64_t kClientMaxMessage = 4 << 20;
// A quiet follower checks history for dropped events this often.
constexpr int64_t kIdleBackfillMs = 500;

Status StatusFromError(const wire::ErrorReply& e) {
  uint16_t code = e.code();
  if (code == 0 || code > kMaxStatusCode) code = static_cast<uint16_t>(StatusCode::kInternal);
  return Status(static_cast<StatusCode>(code), e.message() ? e.message()->str() : "broker error");
}

}  // namespace

struct BrokerClient::Impl {
  ClientOptions opt;
  std::unique_ptr<zmq::context_t> own_ctx;
  zmq::context_t* ctx = nullptr;
  std::unique_ptr<zmq::socket_t> dealer;
  std::unique_ptr<HandshakeMonitor> monitor;
  uint64_t next_msg_id = 1;
  std::deque<DecodedEnvelope> unsolicited;  // pushes received while waiting for a reply

  std::string Endpoint() const {
    return opt.endpoint.empty() ? opt.config.ConnectEndpoint(opt.config.ctl_port) : opt.endpoint;
  }

  Status Unreachable() const {
    return Status::Unavailable("no answer from the broker at " + Endpoint() + " within " +
                               std::to_string(opt.timeout_ms) +
                               " ms: is ledgerkeep-broker running there? (check --config / "
                               "LEDGERKEEP_CONFIG)");
  }

  Status Send(wire::BodyUnion body, uint64_t* msg_id) {
    EnvelopeHeader h;
    h.sender = opt.key.name;
    h.msg_id = next_msg_id++;
    h.sent_at_ms = Clock::System()->NowMs();
    *msg_id = h.msg_id;
    std::string bytes = BuildEnvelope(h, std::move(body));
    if (!SendFramesNoWait(*dealer, {bytes})) {
      // DEALER with no connection yet: block until the deadline.
      dealer->set(zmq::sockopt::sndtimeo, static_cast<int>(opt.timeout_ms));
      auto r = dealer->send(zmq::buffer(bytes), zmq::send_flags::none);
      if (!r) {
        Status auth = monitor->Poll();
        return auth.ok() ? Unreachable() : auth;
      }
    }
    return Status::OK();
  }

  // Receives the next envelope within wait_ms (nullopt on timeout).
  Result<std::optional<DecodedEnvelope>> Receive(int64_t wait_ms) {
    const int64_t until = MonotonicMs() + wait_ms;
    while (true) {
      zmq::pollitem_t items[] = {{dealer->handle(), 0, ZMQ_POLLIN, 0},
                                 {monitor->socket().handle(), 0, ZMQ_POLLIN, 0}};
      const int64_t left = until - MonotonicMs();
      if (left < 0) return std::optional<DecodedEnvelope>();
      zmq::poll(items, 2, std::chrono::milliseconds(std::min<int64_t>(left, 100)));
      if (items[1].revents & ZMQ_POLLIN) {
        Status auth = monitor->Poll();
        if (!auth.ok()) return auth;
      }
      if (items[0].revents & ZMQ_POLLIN) {
        zmq::message_t msg;
        if (!dealer->recv(msg, zmq::recv_flags::dontwait)) continue;
        auto env = DecodeEnvelope(msg.data(), msg.size(), static_cast<size_t>(kClientMaxMessage));
        if (!env.ok()) return env.status().WithContext("malformed reply from the broker");
        return std::optional<DecodedEnvelope>(std::move(*env));
      }
    }
  }

  Result<DecodedEnvelope> Request(wire::BodyUnion body) {
    uint64_t id = 0;
    LK_RETURN_IF_ERROR(Send(std::move(body), &id));
    const int64_t until = MonotonicMs() + opt.timeout_ms;
    while (true) {
      LK_ASSIGN_OR_RETURN(auto env, Receive(until - MonotonicMs()));
      if (!env) return Unreachable();
      if ((*env)->reply_to() != id) {
        unsolicited.push_back(std::move(*env));
        continue;
      }
      if (const auto* err = (*env)->body_as_ErrorReply()) return StatusFromError(*err);
      return std::move(*env);
    }
  }
};

Result<std::unique_ptr<BrokerClient>> BrokerClient::Connect(ClientOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = std::move(options);
  if (impl->opt.curve && impl->opt.key.secret_z85.empty()) {
    return Status::InvalidArgument("no operator key: set [operator] key_file in the config or pass --key");
  }
  if (impl->opt.context != nullptr) {
    impl->ctx = impl->opt.context;
  } else {
    impl->own_ctx = std::make_unique<zmq::context_t>(1);
    impl->ctx = impl->own_ctx.get();
  }
  impl->dealer = std::make_unique<zmq::socket_t>(*impl->ctx, zmq::socket_type::dealer);
  ApplyCommonOptions(*impl->dealer, kClientMaxMessage);
  if (impl->opt.curve) {
    ConfigureCurveClient(*impl->dealer, impl->opt.key, impl->opt.config.broker_public_key);
  }
  impl->monitor = std::make_unique<HandshakeMonitor>(*impl->ctx, *impl->dealer, "cli");
  impl->dealer->connect(impl->Endpoint());
  return std::unique_ptr<BrokerClient>(new BrokerClient(std::move(impl)));
}

BrokerClient::BrokerClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BrokerClient::~BrokerClient() = default;

Result<DecodedEnvelope> BrokerClient::Request(wire::BodyUnion body) {
  return impl_->Request(std::move(body));
}

Result<wire::NodeListT> BrokerClient::ListNodes() {
  wire::BodyUnion b;
  b.Set(wire::ListNodesT{});
  LK_ASSIGN_OR_RETURN(auto env, Request(std::move(b)));
  const auto* list = env->body_as_NodeList();
  if (list == nullptr) return Status::Internal("broker answered ListNodes with " + std::string(BodyName(env->body_type())));
  wire::NodeListT out;
  list->UnPackTo(&out);
  return out;
}

Result<wire::CommandStatusT> BrokerClient::Issue(const wire::TargetT& target,
                                                 wire::CommandBodyUnion body, uint32_t timeout_ms,
                                                 const std::string& idempotency_key,
                                                 const std::string& requested_by) {
  wire::IssueCommandT ic;
  ic.idempotency_key = idempotency_key;
  ic.requested_by = requested_by;
  ic.target = std::make_unique<wire::TargetT>(target);
  ic.timeout_ms = timeout_ms;
  ic.body = std::move(body);
  wire::BodyUnion b;
  b.Set(std::move(ic));
  LK_ASSIGN_OR_RETURN(auto env, Request(std::move(b)));
  const auto* st = env->body_as_CommandStatus();
  if (st == nullptr) return Status::Internal("unexpected answer to IssueCommand");
  wire::CommandStatusT out;
  st->UnPackTo(&out);
  return out;
}

Result<wire::CommandStatusT> BrokerClient::Wait(
    uint64_t cmd_id, int64_t max_wait_ms,
    const std::function<void(const wire::CommandStatusT&)>& on_update) {
  const int64_t until = MonotonicMs() + max_wait_ms;
  int64_t last_heard = MonotonicMs();
  std::optional<wire::CommandStatusT> last;
  auto take = [&](const DecodedEnvelope& env) -> bool {
    const auto* st = env->body_as_CommandStatus();
    if (st == nullptr || st->cmd_id() != cmd_id) return false;
    wire::CommandStatusT s;
    st->UnPackTo(&s);
    if (on_update) on_update(s);
    bool done = s.finished;
    last = std::move(s);
    return done;
  };
  auto ask = [&]() -> Result<bool> {
    wire::GetCommandStatusT g;
    g.cmd_id = cmd_id;
    wire::BodyUnion b;
    b.Set(std::move(g));
    auto r = Request(std::move(b));
    last_heard = MonotonicMs();
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kUnavailable) return false;  // broker restarting
      return r.status();
    }
    return take(*r);
  };
  while (!impl_->unsolicited.empty()) {
    DecodedEnvelope env = std::move(impl_->unsolicited.front());
    impl_->unsolicited.pop_front();
    if (take(env)) return std::move(*last);
  }
  // Ask once up front: the command may be finished already, or have been
  // issued before a broker restart, when no watcher is left to push to us.
  if (!last) {
    LK_ASSIGN_OR_RETURN(bool done, ask());
    if (done) return std::move(*last);
  }
  while (MonotonicMs() < until) {
    LK_ASSIGN_OR_RETURN(auto env, impl_->Receive(std::min<int64_t>(until - MonotonicMs(), 1000)));
    if (env) {
      last_heard = MonotonicMs();
      if (take(*env)) return std::move(*last);
      continue;
    }
    // Quiet for a while: ask (this also re-registers us as a watcher after a
    // broker restart).
    if (MonotonicMs() - last_heard >= 1000) {
      LK_ASSIGN_OR_RETURN(bool done, ask());
      if (done) return std::move(*last);
    }
  }
  if (last) return std::move(*last);
  return Status::Timeout("command " + std::to_string(cmd_id) + " did not finish in time");
}

Result<FetchedPage> BrokerClient::FetchEvents(uint64_t from_seq, uint32_t max_events,
                                              const std::string& prefix) {
  wire::FetchEventsT f;
  f.from_seq = from_seq;
  f.max_events = max_events;
  f.kind_prefix = prefix;
  return FetchPage(std::move(f));
}

Result<FetchedPage> BrokerClient::FetchNewestEvents(uint64_t upto_seq, uint32_t max_events,
                                                    const std::string& prefix) {
  wire::FetchEventsT f;
  f.from_seq = upto_seq;
  f.max_events = max_events;
  f.kind_prefix = prefix;
  f.backward = true;
  return FetchPage(std::move(f));
}

Result<uint64_t> BrokerClient::StartOfNewestEvents(uint64_t n, const std::string& prefix) {
  if (prefix.empty()) {  // the log is dense: no need to read it
    LK_ASSIGN_OR_RETURN(auto head, FetchEvents(UINT64_MAX, 1, ""));
    return head.head_seq > n ? head.head_seq - n + 1 : 1;
  }
  uint64_t upto = UINT64_MAX, found = 0, start = 0, head = 0;
  while (true) {
    const auto want = static_cast<uint32_t>(std::min<uint64_t>(n - found, 10'000));
    LK_ASSIGN_OR_RETURN(auto page, FetchNewestEvents(upto, want, prefix));
    if (head == 0) head = page.head_seq;
    found += page.events.size();
    if (!page.events.empty()) start = page.events.front()->body_as_Event()->seq();
    if (found >= n || page.next_seq == 0) break;
    upto = page.next_seq;
  }
  return start != 0 ? start : head + 1;
}

Result<FetchedPage> BrokerClient::FetchPage(wire::FetchEventsT request) {
  wire::BodyUnion b;
  b.Set(std::move(request));
  LK_ASSIGN_OR_RETURN(auto env, Request(std::move(b)));
  const auto* page = env->body_as_EventPage();
  if (page == nullptr) return Status::Internal("unexpected answer to FetchEvents");
  FetchedPage out;
  out.next_seq = page->next_seq();
  out.head_seq = page->head_seq();
  out.first_seq = page->first_seq();
  if (page->events()) {
    for (const auto* blob : *page->events()) {
      if (blob->data() == nullptr) continue;
      auto ev = DecodeEnvelope(blob->data()->data(), blob->data()->size());
      if (!ev.ok()) return ev.status().WithContext("event page");
      if ((*ev)->body_as_Event() == nullptr) return Status::Corruption("event page holds a non-event");
      out.events.push_back(std::move(*ev));
    }
  }
  return out;
}

namespace {
Result<wire::WorkflowStatusT> ToWorkflowStatus(const DecodedEnvelope& env) {
  const auto* st = env->body_as_WorkflowStatus();
  if (st == nullptr) return Status::Internal("unexpected answer to a workflow request");
  wire::WorkflowStatusT out;
  st->UnPackTo(&out);
  return out;
}
}  // namespace

Result<wire::WorkflowStatusT> BrokerClient::WorkflowRequest(wire::BodyUnion body) {
  LK_ASSIGN_OR_RETURN(auto env, Request(std::move(body)));
  return ToWorkflowStatus(env);
}

Result<wire::WorkflowStatusT> BrokerClient::StartWorkflow(const std::string& kind,
                                                          const std::string& params_json) {
  wire::StartWorkflowT w;
  w.kind = kind;
  w.params_json = params_json;
  wire::BodyUnion b;
  b.Set(std::move(w));
  return WorkflowRequest(std::move(b));
}

Result<wire::WorkflowStatusT> BrokerClient::GetWorkflowStatus(uint64_t run_id) {
  wire::GetWorkflowStatusT g;
  g.run_id = run_id;
  wire::BodyUnion b;
  b.Set(std::move(g));
  return WorkflowRequest(std::move(b));
}

Result<wire::WorkflowStatusT> BrokerClient::AbortWorkflow(uint64_t run_id) {
  wire::AbortWorkflowT a;
  a.run_id = run_id;
  wire::BodyUnion b;
  b.Set(std::move(a));
  return WorkflowRequest(std::move(b));
}

// ---------------------------------------------------------------- follower

struct EventFollower::Impl {
  ClientOptions opt;
  std::unique_ptr<BrokerClient> client;
  zmq::context_t ctx{1};
  std::unique_ptr<zmq::socket_t> sub;
  std::string prefix;
  uint64_t next = 1;                 // next seq not yet delivered / skipped
  int64_t last_backfill_ms = 0;
  std::deque<DecodedEnvelope> ready;  // in order, to hand out

  // Pulls history [next, upto] (upto 0 = up to the head) into `ready`.
  Status Backfill(uint64_t upto) {
    while (upto == 0 || next <= upto) {
      LK_ASSIGN_OR_RETURN(auto page, client->FetchEvents(next, 1000, prefix));
      if (page.first_seq > next) next = page.first_seq;  // older ones fell to retention
      for (auto& ev : page.events) {
        const uint64_t seq = ev->body_as_Event()->seq();
        if (seq < next) continue;
        if (upto != 0 && seq > upto) return Status::OK();
        ready.push_back(std::move(ev));
        next = seq + 1;
      }
      // Everything below page.next_seq was scanned (non-matching ones skipped).
      uint64_t scanned = upto == 0 ? page.next_seq : std::min(page.next_seq, upto + 1);
      next = std::max(next, scanned);
      if (page.next_seq > page.head_seq) return Status::OK();  // reached the head
    }
    return Status::OK();
  }
};

Result<std::unique_ptr<EventFollower>> EventFollower::Start(ClientOptions options, uint64_t from_seq,
                                                            std::string prefix) {
  auto impl = std::make_unique<Impl>();
  impl->opt = options;
  impl->prefix = std::move(prefix);
  impl->next = std::max<uint64_t>(from_seq, 1);
  LK_ASSIGN_OR_RETURN(impl->client, BrokerClient::Connect(options));
  impl->sub = std::make_unique<zmq::socket_t>(options.context != nullptr ? *options.context : impl->ctx,
                                              zmq::socket_type::sub);
  ApplyCommonOptions(*impl->sub, kClientMaxMessage);
  impl->sub->set(zmq::sockopt::rcvhwm, 100000);
  if (options.curve) ConfigureCurveClient(*impl->sub, options.key, options.config.broker_public_key);
  impl->sub->set(zmq::sockopt::subscribe, "evt." + impl->prefix);
  impl->sub->connect(options.events_endpoint.empty() ? options.config.ConnectEndpoint(options.config.events_port)
                                                     : options.events_endpoint);
  // Subscribed first; now history. Anything published meanwhile is either in
  // the history or arrives live, and Next() merges by seq.
  LK_RETURN_IF_ERROR(impl->Backfill(0));
  return std::unique_ptr<EventFollower>(new EventFollower(std::move(impl)));
}

EventFollower::EventFollower(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EventFollower::~EventFollower() = default;

uint64_t EventFollower::next_seq() const { return impl_->next; }

Result<std::optional<DecodedEnvelope>> EventFollower::Next(int64_t wait_ms) {
  const int64_t until = MonotonicMs() + wait_ms;
  while (impl_->ready.empty()) {
    const int64_t left = until - MonotonicMs();
    if (left < 0) return std::optional<DecodedEnvelope>();
    zmq::pollitem_t item{impl_->sub->handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(std::min<int64_t>(left, kIdleBackfillMs)));
    auto frames = RecvMultipartNoWait(*impl_->sub);
    if (!frames) {
      // Quiet: the tail of a burst may have been dropped on the way (a slow
      // subscriber's queue overflowed). Gaps show only when a later event
      // arrives, so ask history now and then.
      if (MonotonicMs() - impl_->last_backfill_ms >= kIdleBackfillMs) {
        impl_->last_backfill_ms = MonotonicMs();
        Status s = impl_->Backfill(0);
        if (!s.ok() && s.code() != StatusCode::kUnavailable) return s;  // broker restarting: later
      }
      continue;
    }
    if (frames->size() != 2) continue;
    auto env = DecodeEnvelope((*frames)[1].data(), (*frames)[1].size(),
                              static_cast<size_t>(kClientMaxMessage));
    if (!env.ok() || (*env)->body_as_Event() == nullptr) continue;
    const uint64_t seq = (*env)->body_as_Event()->seq();
    if (seq < impl_->next) continue;  // already delivered from history
    if (seq > impl_->next) {
      // A gap in the live stream: fill it from history first.
      LK_RETURN_IF_ERROR(impl_->Backfill(seq - 1));
      impl_->next = std::max(impl_->next, seq);
      if (seq < impl_->next) continue;
    }
    impl_->ready.push_back(std::move(*env));
    impl_->next = seq + 1;
  }
  DecodedEnvelope ev = std::move(impl_->ready.front());
  impl_->ready.pop_front();
  return std::optional<DecodedEnvelope>(std::move(ev));
}

}  // namespace ledgerkeep
