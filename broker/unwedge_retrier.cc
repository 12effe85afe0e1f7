#include "broker/unwedge_retrier.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "broker/workflow_steps.h"

namespace ledgerkeep {
namespace {

constexpr const char* kKeyPrefix = "needs-unwedge/";
// Deadline of one retry's Unwedge command (as in a rollback), and how much
// longer its result is waited for (an agent that acked it and then froze).
constexpr uint32_t kAttemptTimeoutMs = 10'000;
constexpr int64_t kAttemptGraceMs = 10'000;
// A node that is not alive is looked at again this often (no attempt made).
constexpr int64_t kNotAliveRecheckMs = 1'000;

std::string Key(const std::string& node) { return kKeyPrefix + node; }

void AppendNote(BrokerClient& client, const std::string& node, const std::string& level,
                const std::string& text) {
  wire::NoteT note;
  note.level = level;
  note.text = text;
  wire::AppendEventT a;
  a.kind = "wedge";
  a.node = node;
  a.body.Set(std::move(note));
  wire::BodyUnion b;
  b.Set(std::move(a));
  auto r = client.Request(std::move(b));
  if (!r.ok()) spdlog::warn("needs-unwedge event for {} not logged: {}", node, r.status().ToString());
}

}  // namespace

UnwedgeRetrier::UnwedgeRetrier(KvStore* store, int cf, const Clock* clock, Options options)
    : store_(store), cf_(cf), clock_(clock), opt_(options) {}

UnwedgeRetrier::~UnwedgeRetrier() { Stop(); }

Status UnwedgeRetrier::Load() {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string prefix = kKeyPrefix;
  std::string end = prefix;
  end.back() = static_cast<char>(end.back() + 1);
  Status inner;
  Status s = store_->Scan(cf_, prefix, end, [&](std::string_view key, std::string_view value) {
    auto j = nlohmann::json::parse(value, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      inner = Status::Corruption("broker state '" + std::string(key) + "' is unreadable");
      return false;
    }
    Entry e;
    e.node = std::string(key.substr(prefix.size()));
    e.reason = j.value("reason", "");
    e.run_id = j.value("run_id", uint64_t{0});
    e.since_ms = j.value("since_ms", int64_t{0});
    e.attempts = j.value("attempts", uint32_t{0});
    e.last_error = j.value("last_error", "");
    entries_[e.node] = std::move(e);
    return true;
  });
  LK_RETURN_IF_ERROR(s);
  if (!entries_.empty()) spdlog::info("{} replica(s) still need an unwedge; retrying", entries_.size());
  return inner;
}

Status UnwedgeRetrier::Persist(const Entry& e) {
  nlohmann::json j = {{"reason", e.reason},
                      {"run_id", e.run_id},
                      {"since_ms", e.since_ms},
                      {"attempts", e.attempts},
                      {"last_error", e.last_error}};
  return store_->Put(cf_, Key(e.node), j.dump(), /*sync=*/true);
}

Result<bool> UnwedgeRetrier::Add(const std::string& node, const std::string& reason, uint64_t run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, added] = entries_.try_emplace(node);
  Entry& e = it->second;
  if (added) {
    e.node = node;
    e.since_ms = clock_->NowMs();
  }
  e.reason = reason;
  e.run_id = run_id;
  e.next_attempt_mono_ms = 0;
  Status s = Persist(e);
  if (!s.ok()) {
    if (added) entries_.erase(it);
    return s.WithContext("cannot record that " + node + " needs an unwedge");
  }
  return added;
}

Result<bool> UnwedgeRetrier::Remove(const std::string& node) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(node);
  if (it == entries_.end()) return false;
  LK_RETURN_IF_ERROR(store_->Delete(cf_, Key(node), /*sync=*/true));
  entries_.erase(it);
  return true;
}

std::vector<UnwedgeRetrier::Entry> UnwedgeRetrier::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Entry> out;
  for (const auto& [node, e] : entries_) out.push_back(e);
  return out;
}

void UnwedgeRetrier::Pause() {
  std::unique_lock<std::mutex> lock(mu_);
  ++paused_;
  cv_.wait(lock, [&] { return !in_flight_; });
}

void UnwedgeRetrier::Resume() {
  std::lock_guard<std::mutex> lock(mu_);
  if (paused_ > 0) --paused_;
  cv_.notify_all();
}

void UnwedgeRetrier::Start(ClientOptions client) {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this, client = std::move(client)] { Run(client); });
}

void UnwedgeRetrier::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t UnwedgeRetrier::DelayAfter(uint32_t attempts) const {
  int64_t d = std::max<int64_t>(opt_.base_ms, 1);
  for (uint32_t i = 1; i < attempts && d < opt_.max_ms; ++i) d *= 2;
  return std::min(d, opt_.max_ms);
}

void UnwedgeRetrier::Run(ClientOptions client_options) {
  std::unique_ptr<BrokerClient> client;
  while (true) {
    std::vector<std::string> due;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(opt_.poll_ms), [&] { return stopping_; });
      if (stopping_) return;
      if (paused_ > 0) continue;
      const int64_t now = MonotonicMs();
      for (const auto& [node, e] : entries_)
        if (e.next_attempt_mono_ms <= now) due.push_back(node);
      if (due.empty()) continue;
      in_flight_ = true;
    }
    if (!client) {
      auto c = BrokerClient::Connect(client_options);
      if (c.ok()) client = std::move(*c);
    }
    if (client) Attempt(*client, due);
    {
      std::lock_guard<std::mutex> lock(mu_);
      in_flight_ = false;
    }
    cv_.notify_all();
  }
}

void UnwedgeRetrier::Attempt(BrokerClient& client, const std::vector<std::string>& due) {
  auto stopping = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  };
  auto list = client.ListNodes();
  if (!list.ok()) return;  // the broker is busy or stopping: the next poll tries again
  std::map<std::string, const wire::NodeInfoT*> nodes;
  for (const auto& n : list->nodes) nodes[n->node_id] = n.get();

  // One Unwedge per alive node, all issued before any is waited for.
  std::vector<std::pair<std::string, uint64_t>> issued;
  std::map<std::string, std::string> failed;  // node -> why
  for (const auto& node : due) {
    auto it = nodes.find(node);
    if (it == nodes.end() || it->second->clone || it->second->role != wire::Role::Replica) {
      if (Remove(node).value_or(false)) {
        AppendNote(client, node, "warn",
                   node + " is no longer a replica of the cluster: taken off the needs-unwedge list");
      }
      continue;
    }
    if (it->second->state != wire::NodeState::Alive) {  // tried as soon as it is back
      std::lock_guard<std::mutex> lock(mu_);
      if (auto e = entries_.find(node); e != entries_.end()) {
        e->second.next_attempt_mono_ms = MonotonicMs() + kNotAliveRecheckMs;
      }
      continue;
    }
    if (stopping()) return;
    wire::CommandBodyUnion body;
    body.Set(wire::UnwedgeT{});
    auto st = client.Issue(TargetNode(node), std::move(body), kAttemptTimeoutMs);
    if (st.ok()) {
      issued.emplace_back(node, st->cmd_id);
    } else {
      failed[node] = st.status().message();
    }
  }
  for (const auto& [node, id] : issued) {
    wire::CommandStatusT last;
    const int64_t give_up = MonotonicMs() + kAttemptTimeoutMs + kAttemptGraceMs;
    while (!last.finished && MonotonicMs() < give_up) {
      if (stopping()) return;
      auto st = client.Wait(id, 500, nullptr);
      if (st.ok()) last = std::move(*st);
    }
    const wire::TargetStatusT* t = nullptr;
    for (const auto& target : last.targets)
      if (target->node_id == node) t = target.get();
    if (t == nullptr || !last.finished) {
      failed[node] = "no result for command " + std::to_string(id);
      continue;
    }
    if (!ResultOk(*t)) {
      failed[node] = ResultText(*t);
      continue;
    }
    const auto* ws = t->result->detail.AsWedgeStatus();
    if (ws != nullptr && ws->stop_point != 0) {
      failed[node] = "ledgerd still has stop point " + std::to_string(ws->stop_point) + " after the unwedge";
      continue;
    }
    Entry was;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto e = entries_.find(node);
      if (e == entries_.end()) continue;  // taken off meanwhile
      was = e->second;
    }
    Status s = Remove(node).status();
    if (!s.ok()) spdlog::error("needs-unwedge list: {}", s.ToString());
    spdlog::info("{} unwedged by the broker's retry (attempt {})", node, was.attempts + 1);
    AppendNote(client, node, "info",
               node + " unwedged by the broker's retry (attempt " + std::to_string(was.attempts + 1) +
                   "); it had needed one for " + std::to_string((clock_->NowMs() - was.since_ms) / 1000) +
                   " s: " + was.reason);
  }
  for (const auto& [node, why] : failed) {
    Entry e;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = entries_.find(node);
      if (it == entries_.end()) continue;
      ++it->second.attempts;
      it->second.last_error = why;
      const int64_t delay = DelayAfter(it->second.attempts);
      it->second.next_attempt_mono_ms = MonotonicMs() + delay;
      e = it->second;
    }
    Status s = Persist(e);
    if (!s.ok()) spdlog::error("needs-unwedge list: {}", s.ToString());
    const int64_t delay = DelayAfter(e.attempts);
    spdlog::warn("{} still needs an unwedge: attempt {} failed: {}", node, e.attempts, why);
    AppendNote(client, node, "warn",
               node + " still needs an unwedge: attempt " + std::to_string(e.attempts) + " failed: " + why +
                   "; next attempt in " + std::to_string((delay + 999) / 1000) +
                   " s (`ledgerkeep unwedge --node " + node + "` releases it by hand)");
  }
}

}  // namespace ledgerkeep
