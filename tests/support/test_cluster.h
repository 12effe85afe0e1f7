// TestCluster: a real ledgerkeep cluster for one test, on loopback with CURVE
// on: the real ledgerkeep-broker and ledgerkeep-agent binaries as child
// processes, and the real `ledgerkeep` CLI on demand.
//
// Create() makes a TempDir and, in it, with the generator every cluster
// uses (common/config_init.h, `ledgerkeep config init`):
//   keys/<name>.key|.pub  CURVE pairs: broker, operator, r1..rN, c1..cM,
//                         clone1..cloneK, extra keys (and, not allowlisted,
//                         the unlisted keys)
//   cluster.toml          the config (see common/config.h) with 3 free
//                         loopback ports and the allowlist
//   nodes/<node>.toml     node configs (used with with_ledger)
//   data/<node>/          broker state and agent journals
//   logs/<node>.log       each process's stdout+stderr (restarts append)
// Nothing is started by Create(). Every wait is a poll with a deadline.
// When the cluster is destroyed during a failed test, the tail of every log
// is printed, so failures can be diagnosed from the ctest output alone.
// Thread-safety: one owner thread (the test's main thread: see
// ChildProcess).
#pragma once

#include <signal.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "broker/broker.h"
#include "client/broker_client.h"
#include "common/config.h"
#include "common/curve_keys.h"
#include "tests/support/child_process.h"
#include "tests/support/temp_dir.h"

namespace ledgerkeep::test {

using std::chrono::milliseconds;

struct ExtraKey {
  std::string name;  // also the node id in the allowlist
  wire::Role role = wire::Role::Operator;
};

struct TestClusterOptions {
  int replicas = 2;  // r1..rN. Default: 2
  int clients = 1;   // c1..cM. Default: 1
  // Restore clones clone1..cloneK: replica agents started with --clone
  // (with_ledger: their ledgerd runs --read-only on data/<clone>/db once a
  // snapshot was restored there). Not in AgentNodes(). Default: 0.
  int clones = 0;
  // Liveness; tests use short beats so that `lost` comes within ~1 s.
  // Defaults: 100 ms, 3, 10.
  int heartbeat_ms = 100;
  int suspect_after = 3;
  int lost_after = 10;
  // More allowlisted keys: a second operator, a subscriber, ...
  std::vector<ExtraKey> extra_keys;
  // Key files written but *not* allowlisted (e.g. "stranger").
  std::vector<std::string> unlisted_keys;
  // Extra ledgerkeep-broker flags, e.g. {"--ack-timeout-ms", "300"}.
  std::vector<std::string> broker_args;
  std::string log_level = "info";
  // Run a ledgerd under every replica agent and a stand-in service under
  // every client (node configs in nodes/<node>.toml, like `./run cluster
  // up`). All replicas share one chain seed and genesis time. Default: off.
  bool with_ledger = false;
  int ledger_blocks_per_sec = 200;     // Default: 200
  int ledger_payload_bytes = 1024;     // Default: 1024
  int ledger_st_blocks_per_sec = 2000; // state transfer speed. Default: 2000
  // Extra lines for every node config (e.g. a [backup] section).
  std::string node_config_extra;
  // Extra lines at the end of cluster.toml (e.g. [[hook]] entries).
  std::string cluster_config_extra;
  // Print the log tails when destroyed during a failed test. Default: true.
  bool dump_logs_on_failure = true;
  // Where a node's agent serves its HTTP API (--http-listen), by node id:
  // "127.0.0.1:8546", "off", ... Default: every agent on a free loopback
  // port of its own (AgentHttpPort), so clusters and agents never collide.
  std::map<std::string, std::string> agent_http_listen;
};

// An EventLog read: every event from seq 1 to the head at the time of reading.
struct EventDump {
  std::vector<DecodedEnvelope> events;  // Envelope{Event}, in the order received
  uint64_t head_seq = 0;
};

class TestCluster {
 public:
  static Result<std::unique_ptr<TestCluster>> Create(TestClusterOptions options = {});
  ~TestCluster();  // kills every process (SIGKILL), dumps logs on failure

  // ---------------------------------------------------------- layout
  const std::string& dir() const { return dir_.path(); }
  const std::string& config_path() const { return config_path_; }
  const ClusterConfig& Config() const { return config_; }
  // The broker's HTTP port (cluster.toml [http] listen on 127.0.0.1) and its
  // bearer token (keys/http.token, which the broker creates on first start).
  int BrokerHttpPort() const { return http_port_; }
  // The port of `node`'s agent HTTP API on 127.0.0.1 (its --http-listen);
  // 0 when it is off or `node` is no agent of this cluster.
  int AgentHttpPort(const std::string& node) const;
  // The --http-listen value `node`'s agent is started with.
  std::string AgentHttpListen(const std::string& node) const;
  Result<std::string> BrokerHttpToken() const;
  std::string KeyPath(const std::string& name) const;   // keys/<name>.key
  const CurveKeyPair& Key(const std::string& name) const;  // any key made by Create()
  std::string DataDir(const std::string& node) const;     // data/<node>
  std::string LogPath(const std::string& node) const;     // logs/<node>.log
  // with_ledger: nodes/<node>.toml, the replica's DB and control socket.
  std::string NodeConfigPath(const std::string& node) const;
  std::string LedgerDb(const std::string& node) const;
  std::string LedgerControl(const std::string& node) const;
  // Agent node ids, replicas first: r1.., c1..
  const std::vector<std::string>& AgentNodes() const { return agents_; }
  // Clone agent node ids: clone1..
  const std::vector<std::string>& Clones() const { return clones_; }
  wire::Role RoleOf(const std::string& node) const;

  // ---------------------------------------------------------- processes
  // Starts ledgerkeep-broker and waits (10 s) until it answers ListNodes.
  Status StartBroker();
  // SIGKILL (or `sig`) the broker and reap it.
  Status KillBroker(int sig = SIGKILL);
  // Starts one agent; does not wait for it to be alive (see WaitNodeState).
  Status StartAgent(const std::string& node);
  // Signals an agent and reaps it.
  Status KillAgent(const std::string& node, int sig = SIGKILL);
  // SIGKILLs the agent if it still runs, then starts it again (same journal).
  Status RestartAgent(const std::string& node);
  // Broker, every agent and clone, then waits until all are alive.
  Status StartAll(milliseconds timeout = milliseconds(15'000));
  // The processes (nullptr if never started).
  ChildProcess* broker_process() { return broker_.get(); }
  ChildProcess* agent_process(const std::string& node);

  // ---------------------------------------------------------- operator side
  ClientOptions OperatorOptions(int64_t timeout_ms = 5000) const;
  ClientOptions ClientOptionsFor(const std::string& key_name, int64_t timeout_ms = 5000) const;
  Result<std::unique_ptr<BrokerClient>> ConnectOperator(int64_t timeout_ms = 5000) const;
  // Options for running the broker in the test process (Broker::Start): the
  // cluster's config, broker key and data dir. For knobs no flag exposes.
  BrokerOptions InProcessBrokerOptions() const;

  // Polls ListNodes until `node` is in `state` ("alive", "suspect", "lost",
  // "unknown"). Timeout says what the node's state was instead.
  Status WaitNodeState(const std::string& node, const std::string& state, milliseconds timeout);
  Status WaitAllAlive(milliseconds timeout);

  // Issues a Ping and waits for it to finish; returns the final status.
  // A command that did not finish within `wait` is an error.
  Result<wire::CommandStatusT> Ping(const wire::TargetT& target, uint32_t delay_ms = 0,
                                    uint32_t timeout_ms = 30'000, milliseconds wait = milliseconds(30'000));
  // Ping to every agent; OK only if every target answered Ok.
  Status PingAllOk(milliseconds wait = milliseconds(30'000));

  // ---------------------------------------------------------- the CLI
  // Runs `ledgerkeep <args>` with LEDGERKEEP_CONFIG pointing at this
  // cluster (args are passed exactly as given).
  RunResult RunCli(const std::vector<std::string>& args, milliseconds timeout = milliseconds(30'000));
  // Starts `ledgerkeep <args>` in the background (e.g. `events --follow`);
  // its stdout goes to logs/<name>.out, stderr to logs/<name>.err.
  Result<std::unique_ptr<ChildProcess>> StartCli(const std::vector<std::string>& args,
                                                 const std::string& name);

  // ---------------------------------------------------------- diagnosis
  // The last `tail_lines` of every log under logs/, with headers.
  std::string DumpLogs(size_t tail_lines = 80) const;

 private:
  explicit TestCluster(TestClusterOptions options);
  Status Setup();
  Status PrepareNodeDirs();
  void KillComponents();
  Result<std::unique_ptr<ChildProcess>> Spawn(const std::string& node, std::vector<std::string> argv);

  TestClusterOptions opt_;
  TempDir dir_{"lk-it-"};
  std::string config_path_;
  ClusterConfig config_;
  std::map<std::string, CurveKeyPair> keys_;
  std::vector<std::string> agents_;
  std::vector<std::string> clones_;
  std::unique_ptr<ChildProcess> broker_;
  std::map<std::string, std::unique_ptr<ChildProcess>> agent_procs_;
  int ports_[3] = {0, 0, 0};  // cmd, ctl, events
  int http_port_ = 0;         // the broker's HTTP ([http] listen)
  std::map<std::string, std::string> agent_http_;  // node -> --http-listen
  int cli_runs_ = 0;
};

// All events from seq 1 to the head, paged through FetchEvents.
Result<EventDump> FetchAllEvents(BrokerClient& client, const std::string& prefix = "");
// OK if the dump (unfiltered) holds seqs 1..head_seq exactly, strictly
// increasing; otherwise names the first gap, duplicate or reordering.
Status CheckDenseFromOne(const EventDump& dump);
// The Event inside a stored envelope.
inline const wire::Event& EventOf(const DecodedEnvelope& env) { return *env->body_as_Event(); }

// OK if the command finished and every target's result is Ok; otherwise
// says which target did what.
Status AllTargetsOk(const wire::CommandStatusT& status);
std::string DescribeCommandStatus(const wire::CommandStatusT& status);

// Three distinct free TCP ports on 127.0.0.1. They are picked below the
// kernel's ephemeral range when possible: a port from that range can be
// taken by an outgoing connection (even a TCP self-connect of a reconnecting
// agent) while the broker is down, and then the restarted broker cannot bind.
Result<std::vector<int>> PickFreeLoopbackPorts(int count);

}  // namespace ledgerkeep::test
