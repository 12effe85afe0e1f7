// Workflows: multi-step operations the broker runs for an operator (wedge
// the cluster at one stop point, unwedge it; the maintenance runbook builds
// on the same machinery).
//
// A workflow runs on its own thread and drives the cluster through the same
// command API as the CLI: a BrokerClient on the broker's internal inproc
// endpoint. So every step gets reliable delivery, deadlines, dedupe and the
// event log for free, and the broker's socket thread never blocks on it.
// Its record (kind, params, state, step, outcome, report) is persisted in the
// broker's store after every step; a broker restart resumes each unfinished
// workflow from its saved state (Run() is called again and must continue
// from ctx.state()). Only one workflow runs at a time: they all move the
// whole cluster. The manager also owns the broker's "needs unwedge" list
// (UnwedgeRetrier), which retries no unwedge while a workflow runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "broker/unwedge_retrier.h"
#include "client/broker_client.h"
#include "common/clock.h"
#include "common/kv_store.h"

namespace ledgerkeep {

struct WorkflowRecord {
  uint64_t run_id = 0;
  std::string kind;
  nlohmann::json params = nlohmann::json::object();
  nlohmann::json state = nlohmann::json::object();   // the workflow's own resume state
  std::string status = "running";                    // running | succeeded | failed
  std::string step;
  std::string error;
  nlohmann::json report = nlohmann::json::object();
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;

  bool finished() const { return status != "running"; }
  nlohmann::json ToJson() const;
  static Result<WorkflowRecord> FromJson(std::string_view text);
};

class WorkflowManager;

// A member of the live cluster as the broker sees it (WorkflowContext::Members).
struct ClusterMember {
  std::string node_id;
  wire::Role role = wire::Role::Unknown;
  wire::NodeState state = wire::NodeState::Unknown;
};

// What a running workflow may do. Used from the workflow's thread only.
class WorkflowContext {
 public:
  WorkflowContext(WorkflowManager* manager, uint64_t run_id, BrokerClient* client,
                  const std::atomic<bool>* cancelled);

  BrokerClient& client() { return *client_; }
  // The broker's cluster config (e.g. the maintenance hooks it may run).
  const ClusterConfig& config() const;
  // The broker's clock (BrokerOptions::clock): the times a workflow records
  // (window start and end, archive names), its deadlines and its pauses
  // between polls.
  const Clock& clock() const;
  uint64_t run_id() const { return run_id_; }
  nlohmann::json params() const;
  // Resume state; persisted by SaveState().
  nlohmann::json& state() { return state_; }
  Status SaveState();
  // Makes `report` the run's report now (persisted), so a status query sees
  // a long step's progress before the run ends.
  Status SaveReport(const nlohmann::json& report);
  // Records the step in the workflow record and logs a RunbookStep event.
  void Step(const std::string& step, const std::string& state, const std::string& detail);
  bool cancelled() const { return cancelled_->load(); }

  // Issues a command and waits until every target is done (or the deadline
  // passes, or the broker stops).
  Result<wire::CommandStatusT> RunCommand(const wire::TargetT& target, wire::CommandBodyUnion body,
                                          uint32_t timeout_ms);
  // Issues a command and returns its id without waiting. With a `step_key`,
  // the broker issues it at most once per workflow run and key, even if the
  // workflow is resumed after a broker restart between issuing and saving.
  Result<uint64_t> IssueCommand(const wire::TargetT& target, wire::CommandBodyUnion body, uint32_t timeout_ms,
                                const std::string& step_key = "");
  // Waits for a command issued earlier (also one issued before a broker
  // restart) until every target is done; gives up after `max_wait_ms`.
  Result<wire::CommandStatusT> WaitCommand(uint64_t cmd_id, int64_t max_wait_ms);
  // The operator asked to abort (`ledgerkeep maintenance abort`).
  bool abort_requested() const;
  // The live cluster's nodes of `role` (Unknown: every role), clones left
  // out: a restore clone is never wedged, stopped, unwedged, queried or
  // backed up by a workflow (README "Clones"). Workflows pick the nodes they
  // address one by one only through this, never from a raw ListNodes, so
  // they follow the rule the broker applies to role-addressed commands
  // (NodeRegistry::IdsWithRole).
  Result<std::vector<ClusterMember>> Members(wire::Role role);

  // The "needs unwedge" list (UnwedgeRetrier): a replica this run could not
  // unwedge goes on it (retried until it is unwedged), one it unwedged or
  // wedged anew comes off it. Each change is an event (kind "wedge"). A
  // failure to record is logged and noted in the event, not fatal: the
  // workflow's own report names the replica either way.
  void NeedsUnwedge(const std::string& node, const std::string& reason);
  void NoLongerNeedsUnwedge(const std::string& node, const std::string& why);
  std::vector<UnwedgeRetrier::Entry> NeedsUnwedgeList();
  // Appends a Note event (level info|warn|error) for `node`.
  void Note(const std::string& kind, const std::string& node, const std::string& level,
            const std::string& text);

 private:
  WorkflowManager* manager_;
  uint64_t run_id_;
  BrokerClient* client_;
  const std::atomic<bool>* cancelled_;
  nlohmann::json state_;
};

class Workflow {
 public:
  virtual ~Workflow() = default;
  // Runs to the end, or continues from ctx.state() after a broker restart.
  // OK: succeeded; an error: failed with that message. `report` is kept
  // either way (what happened, per node).
  virtual Status Run(WorkflowContext& ctx, nlohmann::json& report) = 0;
};

using WorkflowFactory = std::function<std::unique_ptr<Workflow>(const nlohmann::json& params)>;

class WorkflowManager {
 public:
  // `store`/`cf`: where records live. Workflows reach the broker through
  // `endpoint` on `context` (the broker's internal inproc ROUTER).
  // The unwedge retrier keeps its list in `cf` too (keys "needs-unwedge/...";
  // records are keyed by their 8-byte run id).
  WorkflowManager(KvStore* store, int cf, zmq::context_t* context, std::string endpoint, ClusterConfig config,
                  const Clock* clock, UnwedgeRetryOptions retry = {});
  ~WorkflowManager();

  void Register(const std::string& kind, WorkflowFactory factory);
  // Loads records and the needs-unwedge list.
  Status Load();
  // Starts threads for every unfinished workflow, and the unwedge retrier
  // (after the broker serves).
  void ResumeUnfinished();
  // Validates and starts a workflow. Busy while another one runs;
  // InvalidArgument for an unknown kind or bad params.
  Result<WorkflowRecord> Start(const std::string& kind, const std::string& params_json);
  std::optional<WorkflowRecord> Get(uint64_t run_id);
  // The most recent workflow, if any.
  std::optional<WorkflowRecord> Latest();
  // Cancels and joins every workflow thread and the unwedge retrier (broker
  // shutdown). Their records stay "running", so the next broker start
  // resumes them.
  void StopAll();
  // Asks a running workflow to abort (0 = the one running). It rolls back
  // and finishes as failed. NotFound if none runs.
  Result<WorkflowRecord> Abort(uint64_t run_id);
  bool AbortRequested(uint64_t run_id);

  // For WorkflowContext.
  UnwedgeRetrier& unwedge_retrier() { return retrier_; }
  const ClusterConfig& config() const { return config_; }
  const Clock& clock() const { return *clock_; }
  Status Save(const WorkflowRecord& r);
  void Update(uint64_t run_id, const std::function<void(WorkflowRecord&)>& fn);

 private:
  void Launch(uint64_t run_id);
  void RunThread(uint64_t run_id);
  ClientOptions InternalClientOptions() const;

  KvStore* store_;
  int cf_;
  zmq::context_t* context_;
  std::string endpoint_;
  ClusterConfig config_;
  const Clock* clock_;
  std::map<std::string, WorkflowFactory> factories_;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::map<uint64_t, WorkflowRecord> records_;  // guarded by mu_
  std::map<uint64_t, std::thread> threads_;     // guarded by mu_
  std::set<uint64_t> aborts_;                   // guarded by mu_
  uint64_t next_id_ = 1;                        // guarded by mu_
  UnwedgeRetrier retrier_;
};

}  // namespace ledgerkeep
