#include "broker/workflow.h"

#include <spdlog/spdlog.h>

#include "common/codec.h"
#include "common/exception_text.h"

namespace ledgerkeep {

nlohmann::json WorkflowRecord::ToJson() const {
  return {{"run_id", run_id},   {"kind", kind},       {"params", params},
          {"state", state},     {"status", status},   {"step", step},
          {"error", error},     {"report", report},   {"started_at_ms", started_at_ms},
          {"finished_at_ms", finished_at_ms}};
}

Result<WorkflowRecord> WorkflowRecord::FromJson(std::string_view text) try {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("unreadable workflow record");
  WorkflowRecord r;
  r.run_id = j.value("run_id", uint64_t{0});
  r.kind = j.value("kind", "");
  r.params = j.value("params", nlohmann::json::object());
  r.state = j.value("state", nlohmann::json::object());
  r.status = j.value("status", "running");
  r.step = j.value("step", "");
  r.error = j.value("error", "");
  r.report = j.value("report", nlohmann::json::object());
  r.started_at_ms = j.value("started_at_ms", int64_t{0});
  r.finished_at_ms = j.value("finished_at_ms", int64_t{0});
  return r;
} catch (const nlohmann::json::exception& e) {  // value() on a field of another type
  return Status::Corruption(std::string("unreadable workflow record: ") + e.what());
}

// ---------------------------------------------------------------- context

WorkflowContext::WorkflowContext(WorkflowManager* manager, uint64_t run_id, BrokerClient* client,
                                 const std::atomic<bool>* cancelled)
    : manager_(manager), run_id_(run_id), client_(client), cancelled_(cancelled) {
  if (auto r = manager_->Get(run_id)) state_ = r->state;
}

const ClusterConfig& WorkflowContext::config() const { return manager_->config(); }

const Clock& WorkflowContext::clock() const { return manager_->clock(); }

nlohmann::json WorkflowContext::params() const {
  auto r = manager_->Get(run_id_);
  return r ? r->params : nlohmann::json::object();
}

Status WorkflowContext::SaveState() {
  Status s;
  manager_->Update(run_id_, [&](WorkflowRecord& r) {
    r.state = state_;
    s = manager_->Save(r);
  });
  return s;
}

Status WorkflowContext::SaveReport(const nlohmann::json& report) {
  Status s;
  manager_->Update(run_id_, [&](WorkflowRecord& r) {
    r.report = report;
    s = manager_->Save(r);
  });
  return s;
}

void WorkflowContext::Step(const std::string& step, const std::string& state,
                           const std::string& detail) {
  std::string kind;
  manager_->Update(run_id_, [&](WorkflowRecord& r) {
    r.step = step;
    kind = r.kind;
    Status s = manager_->Save(r);
    if (!s.ok()) spdlog::error("workflow {}: cannot save its record: {}", run_id_, s.ToString());
  });
  spdlog::info("workflow {} ({}) {} {}: {}", run_id_, kind, step, state, detail);
  wire::RunbookStepT ev;
  ev.run_id = run_id_;
  ev.kind = kind;
  ev.step = step;
  ev.state = state;
  ev.detail = detail;
  wire::AppendEventT a;
  a.kind = "runbook";
  a.node = "broker";
  a.body.Set(std::move(ev));
  wire::BodyUnion b;
  b.Set(std::move(a));
  auto r = client_->Request(std::move(b));
  if (!r.ok()) spdlog::warn("workflow {}: step event not logged: {}", run_id_, r.status().ToString());
}

bool WorkflowContext::abort_requested() const { return manager_->AbortRequested(run_id_); }

void WorkflowContext::Note(const std::string& kind, const std::string& node, const std::string& level,
                           const std::string& text) {
  wire::NoteT note;
  note.level = level;
  note.text = text;
  wire::AppendEventT a;
  a.kind = kind;
  a.node = node;
  a.body.Set(std::move(note));
  wire::BodyUnion b;
  b.Set(std::move(a));
  auto r = client_->Request(std::move(b));
  if (!r.ok()) spdlog::warn("workflow {}: event not logged: {}", run_id_, r.status().ToString());
}

void WorkflowContext::NeedsUnwedge(const std::string& node, const std::string& reason) {
  auto added = manager_->unwedge_retrier().Add(node, reason, run_id_);
  if (!added.ok()) {
    spdlog::error("workflow {}: {}", run_id_, added.status().ToString());
    Note("wedge", node, "error",
         node + " needs an unwedge (" + reason + ") but the broker cannot record it: " +
             added.status().message() + "; run `ledgerkeep unwedge --node " + node + "`");
    return;
  }
  if (*added) {
    spdlog::warn("workflow {}: {} needs an unwedge: {}", run_id_, node, reason);
    Note("wedge", node, "warn",
         node + " needs an unwedge: " + reason + "; the broker retries it until it succeeds");
  }
}

void WorkflowContext::NoLongerNeedsUnwedge(const std::string& node, const std::string& why) {
  auto removed = manager_->unwedge_retrier().Remove(node);
  if (!removed.ok()) {
    spdlog::error("workflow {}: {}", run_id_, removed.status().ToString());
    return;
  }
  if (*removed) Note("wedge", node, "info", node + " no longer needs an unwedge: " + why);
}

std::vector<UnwedgeRetrier::Entry> WorkflowContext::NeedsUnwedgeList() {
  return manager_->unwedge_retrier().List();
}

Result<std::vector<ClusterMember>> WorkflowContext::Members(wire::Role role) {
  LK_ASSIGN_OR_RETURN(auto list, client_->ListNodes());
  std::vector<ClusterMember> out;
  for (const auto& n : list.nodes) {
    if (n->clone || (role != wire::Role::Unknown && n->role != role)) continue;
    out.push_back({n->node_id, n->role, n->state});
  }
  return out;
}

Result<uint64_t> WorkflowContext::IssueCommand(const wire::TargetT& target, wire::CommandBodyUnion body,
                                               uint32_t timeout_ms, const std::string& step_key) {
  const std::string key = step_key.empty() ? "" : "workflow-" + std::to_string(run_id_) + "-" + step_key;
  LK_ASSIGN_OR_RETURN(auto issued, client_->Issue(target, std::move(body), timeout_ms, key));
  return issued.cmd_id;
}

Result<wire::CommandStatusT> WorkflowContext::RunCommand(const wire::TargetT& target,
                                                         wire::CommandBodyUnion body,
                                                         uint32_t timeout_ms) {
  LK_ASSIGN_OR_RETURN(uint64_t id, IssueCommand(target, std::move(body), timeout_ms));
  // The broker finishes a command by its deadline at the latest; allow for
  // targets that acked and still run (they finish or are declared lost).
  return WaitCommand(id, timeout_ms + 60'000);
}

Result<wire::CommandStatusT> WorkflowContext::WaitCommand(uint64_t id, int64_t max_wait_ms) {
  wire::CommandStatusT last;
  const int64_t give_up = clock().MonotonicNowMs() + max_wait_ms;
  while (!last.finished) {
    if (cancelled()) return Status::Aborted("broker stopping");
    if (clock().MonotonicNowMs() > give_up) {
      return Status::Timeout("command " + std::to_string(id) + " did not finish");
    }
    auto st = client_->Wait(id, 500, nullptr);
    if (st.ok()) {
      last = std::move(*st);
    } else if (st.status().code() != StatusCode::kTimeout &&
               st.status().code() != StatusCode::kUnavailable) {
      return st.status();
    }
  }
  return last;
}

// ---------------------------------------------------------------- manager

WorkflowManager::WorkflowManager(KvStore* store, int cf, zmq::context_t* context, std::string endpoint,
                                 ClusterConfig config, const Clock* clock, UnwedgeRetryOptions retry)
    : store_(store),
      cf_(cf),
      context_(context),
      endpoint_(std::move(endpoint)),
      config_(std::move(config)),
      clock_(clock),
      retrier_(store, cf, clock, retry) {}

WorkflowManager::~WorkflowManager() { StopAll(); }

void WorkflowManager::Register(const std::string& kind, WorkflowFactory factory) {
  factories_[kind] = std::move(factory);
}

Status WorkflowManager::Load() {
  std::lock_guard<std::mutex> lock(mu_);
  Status inner;
  Status s = store_->Scan(cf_, "", "", [&](std::string_view key, std::string_view value) {
    if (key.size() != 8) return true;  // not a record (the unwedge retrier's list)
    auto r = WorkflowRecord::FromJson(value);
    if (!r.ok()) {
      inner = r.status().WithContext("workflow " + std::to_string(DecodeU64BE(key)));
      return false;
    }
    next_id_ = std::max(next_id_, r->run_id + 1);
    records_[r->run_id] = std::move(*r);
    return true;
  });
  LK_RETURN_IF_ERROR(s);
  LK_RETURN_IF_ERROR(inner);
  return retrier_.Load();
}

void WorkflowManager::ResumeUnfinished() {
  ClientOptions retries = InternalClientOptions();
  retries.timeout_ms = 2000;  // a broker that stopped answering holds its shutdown up no longer
  retrier_.Start(retries);
  std::vector<uint64_t> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, r] : records_)
      if (!r.finished()) ids.push_back(id);
  }
  for (uint64_t id : ids) {
    spdlog::info("resuming workflow {} after a broker restart", id);
    Launch(id);
  }
}

Status WorkflowManager::Save(const WorkflowRecord& r) {
  // Reports hold agents' text, which need not be UTF-8: replaced, not thrown.
  return store_->Put(cf_, EncodeU64BE(r.run_id),
                     r.ToJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                     /*sync=*/true);
}

void WorkflowManager::Update(uint64_t run_id, const std::function<void(WorkflowRecord&)>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(run_id);
  if (it != records_.end()) fn(it->second);
}

std::optional<WorkflowRecord> WorkflowManager::Get(uint64_t run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(run_id);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

std::optional<WorkflowRecord> WorkflowManager::Latest() {
  std::lock_guard<std::mutex> lock(mu_);
  if (records_.empty()) return std::nullopt;
  return records_.rbegin()->second;
}

Result<WorkflowRecord> WorkflowManager::Start(const std::string& kind, const std::string& params_json) {
  if (factories_.count(kind) == 0) {
    std::string known;
    for (const auto& [k, f] : factories_) known += (known.empty() ? "" : ", ") + k;
    return Status::InvalidArgument("unknown workflow '" + kind + "' (known: " + known + ")");
  }
  auto params = params_json.empty() ? nlohmann::json::object()
                                    : nlohmann::json::parse(params_json, nullptr, false);
  if (params.is_discarded() || !params.is_object()) {
    return Status::InvalidArgument("workflow parameters must be a JSON object");
  }
  WorkflowRecord r;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, other] : records_) {
      if (!other.finished()) {
        return Status::Busy("workflow " + std::to_string(id) + " (" + other.kind +
                            ") is still running; wait for it to finish");
      }
    }
    r.run_id = next_id_++;
    r.kind = kind;
    r.params = params;
    r.started_at_ms = clock_->NowMs();
    records_[r.run_id] = r;
  }
  LK_RETURN_IF_ERROR(Save(r));
  Launch(r.run_id);
  return r;
}

void WorkflowManager::Launch(uint64_t run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto old = threads_.find(run_id);
  if (old != threads_.end() && old->second.joinable()) old->second.join();
  threads_[run_id] = std::thread([this, run_id] { RunThread(run_id); });
}

ClientOptions WorkflowManager::InternalClientOptions() const {
  ClientOptions o;
  o.config = config_;
  o.key.name = "broker";
  o.curve = false;  // inproc
  o.context = context_;
  o.endpoint = endpoint_;
  o.timeout_ms = 5000;
  return o;
}

void WorkflowManager::RunThread(uint64_t run_id) {
  auto rec = Get(run_id);
  if (!rec) return;
  // No unwedge retry runs alongside a workflow (it could land in the middle
  // of a new wedge); one in flight is waited for.
  retrier_.Pause();
  struct ResumeRetries {
    UnwedgeRetrier& r;
    ~ResumeRetries() { r.Resume(); }
  } resume_retries{retrier_};
  auto client = BrokerClient::Connect(InternalClientOptions());
  Status result;
  nlohmann::json report = rec->report;
  if (!client.ok()) {
    spdlog::error("workflow {} cannot reach the broker: {}", run_id, client.status().ToString());
    Update(run_id, [&](WorkflowRecord& r) {
      r.status = "failed";
      r.error = client.status().message();
      r.finished_at_ms = clock_->NowMs();
      Save(r).IgnoreError();
    });
  } else {
    auto wf = factories_.at(rec->kind)(rec->params);
    WorkflowContext ctx(this, run_id, client->get(), &cancelled_);
    // The workflow thread's boundary: an exception (a parameter of the wrong
    // type, ...) fails the run instead of std::terminate stopping the broker.
    try {
      result = wf->Run(ctx, report);
    } catch (...) {
      result = Status::Internal("internal error in workflow " + rec->kind + ": " + CurrentExceptionText() +
                                "; the broker keeps serving");
      spdlog::error("workflow {}: {}", run_id, result.message());
    }
    if (cancelled_) {
      spdlog::info("workflow {} interrupted by broker shutdown; it resumes on the next start", run_id);
      return;
    }
    Update(run_id, [&](WorkflowRecord& r) {
      r.status = result.ok() ? "succeeded" : "failed";
      r.error = result.ok() ? "" : result.message();
      r.report = report;
      r.finished_at_ms = clock_->NowMs();
      Status s = Save(r);
      if (!s.ok()) spdlog::error("workflow {}: cannot save its result: {}", run_id, s.ToString());
    });
    ctx.Step("finished", result.ok() ? "done" : "failed",
             result.ok() ? "succeeded" : result.message());
  }
}

Result<WorkflowRecord> WorkflowManager::Abort(uint64_t run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, r] : records_) {
    if (r.finished() || (run_id != 0 && id != run_id)) continue;
    aborts_.insert(id);
    return r;
  }
  return Status::NotFound(run_id == 0 ? "no workflow is running" : "workflow " + std::to_string(run_id) + " is not running");
}

bool WorkflowManager::AbortRequested(uint64_t run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return aborts_.count(run_id) > 0;
}

void WorkflowManager::StopAll() {
  cancelled_ = true;
  retrier_.Stop();  // first: a workflow thread may wait in Pause() for its attempt
  std::map<uint64_t, std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (auto& [id, t] : threads)
    if (t.joinable()) t.join();
}

}  // namespace ledgerkeep
