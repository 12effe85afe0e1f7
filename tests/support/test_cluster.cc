#include "tests/support/test_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "common/clock.h"
#include "common/config_init.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

// Binds 127.0.0.1:port (0 = any); returns the fd and the bound port.
Result<std::pair<int, int>> BindLoopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::FromErrno(err, "bind 127.0.0.1:" + std::to_string(port));
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return std::make_pair(fd, static_cast<int>(ntohs(addr.sin_port)));
}

int EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 32768;
  int high = 60999;
  if (!(in >> low >> high)) return 32768;
  return low;
}

std::string RoleFlag(wire::Role role) { return RoleName(role); }

}  // namespace

Result<std::vector<int>> PickFreeLoopbackPorts(int count) {
  std::vector<int> fds;
  std::vector<int> ports;
  const int low = 20000;
  const int high = EphemeralLow() - 1;
  std::mt19937 rng(static_cast<uint32_t>(::getpid()) * 2654435761u ^
                   static_cast<uint32_t>(MonotonicMs()));
  for (int attempt = 0; attempt < 500 && static_cast<int>(ports.size()) < count; ++attempt) {
    int want = high - low > 1000 ? low + static_cast<int>(rng() % static_cast<uint32_t>(high - low))
                                 : 0;  // no room below the ephemeral range: let the kernel pick
    auto b = BindLoopback(want);
    if (!b.ok()) continue;
    if (std::find(ports.begin(), ports.end(), b->second) != ports.end()) {
      ::close(b->first);
      continue;
    }
    fds.push_back(b->first);
    ports.push_back(b->second);
  }
  for (int fd : fds) ::close(fd);
  if (static_cast<int>(ports.size()) < count) {
    return Status::Unavailable("could not find " + std::to_string(count) + " free loopback ports");
  }
  return ports;
}

// ------------------------------------------------------------------ set-up

TestCluster::TestCluster(TestClusterOptions options) : opt_(std::move(options)) {}

Result<std::unique_ptr<TestCluster>> TestCluster::Create(TestClusterOptions options) {
  auto c = std::unique_ptr<TestCluster>(new TestCluster(std::move(options)));
  LK_RETURN_IF_ERROR(c->Setup());
  return c;
}

Status TestCluster::Setup() {
  if (dir().empty()) return Status::IOError("no temp dir");
  namespace fs = std::filesystem;
  agents_ = ClusterNodeIds(opt_.replicas, opt_.clients, 0);
  clones_ = ClusterNodeIds(0, 0, opt_.clones);
  const int agent_count = static_cast<int>(agents_.size() + clones_.size());
  LK_ASSIGN_OR_RETURN(auto ports, PickFreeLoopbackPorts(4 + agent_count));
  std::copy(ports.begin(), ports.begin() + 3, ports_);
  http_port_ = ports[3];
  {
    std::vector<std::string> all = agents_;
    all.insert(all.end(), clones_.begin(), clones_.end());
    for (size_t i = 0; i < all.size(); ++i) {
      auto given = opt_.agent_http_listen.find(all[i]);
      agent_http_[all[i]] = given != opt_.agent_http_listen.end()
                                ? given->second
                                : "127.0.0.1:" + std::to_string(ports[4 + i]);
    }
  }
  // The keys, cluster.toml and node configs come from the generator every
  // cluster uses (`ledgerkeep config init`), with the harness's knobs.
  ConfigInitOptions o;
  o.out_dir = dir();
  o.replicas = opt_.replicas;
  o.clients = opt_.clients;
  o.clones = opt_.clones;
  for (const auto& e : opt_.extra_keys) o.extra_keys.push_back({e.name, e.role});
  o.cluster_id = "itest";
  o.broker_host = "127.0.0.1";
  o.bind_host = "127.0.0.1";
  o.cmd_port = ports_[0];
  o.ctl_port = ports_[1];
  o.events_port = ports_[2];
  o.heartbeat_ms = opt_.heartbeat_ms;
  o.suspect_after = opt_.suspect_after;
  o.lost_after = opt_.lost_after;
  o.data_root = dir_ / "data";
  o.bin_dir = fs::path(BinPath("ledgerd")).parent_path().string();
  o.blocks_per_sec = opt_.ledger_blocks_per_sec;
  o.payload_bytes = opt_.ledger_payload_bytes;
  o.st_blocks_per_sec = opt_.ledger_st_blocks_per_sec;
  // Small memtables: the tests' DBs flush and make SSTs within seconds.
  o.ledgerd_extra_args = {"--write-buffer-bytes", "262144"};
  o.ledgerd_stop_timeout_s = 20;
  o.client_activity_interval_ms = 200;
  o.cluster_config_extra = opt_.cluster_config_extra;
  o.http_listen = "127.0.0.1:" + std::to_string(http_port_);
  o.node_config_extra = opt_.node_config_extra;
  LK_ASSIGN_OR_RETURN(ConfigInitResult generated, InitClusterConfig(o));
  config_path_ = dir_ / "cluster.toml";
  config_ = std::move(generated.cluster);

  std::vector<std::string> names = {"broker", "operator"};
  names.insert(names.end(), agents_.begin(), agents_.end());
  names.insert(names.end(), clones_.begin(), clones_.end());
  for (const auto& e : opt_.extra_keys) names.push_back(e.name);
  for (const auto& name : names) {
    LK_ASSIGN_OR_RETURN(keys_[name], LoadKeyFile(KeyPath(name), /*need_secret=*/true));
  }
  for (const auto& name : opt_.unlisted_keys) {
    LK_ASSIGN_OR_RETURN(CurveKeyPair pair, GenerateCurveKeyPair(name));
    LK_RETURN_IF_ERROR(WriteKeyFiles(dir_ / "keys", pair, /*overwrite=*/false));
    keys_[name] = std::move(pair);
  }
  std::error_code ec;
  for (const char* sub : {"data", "logs"}) {
    fs::create_directories(dir_ / sub, ec);
    if (ec) return Status::IOError("mkdir " + (dir_ / sub) + ": " + ec.message());
  }
  if (opt_.with_ledger) LK_RETURN_IF_ERROR(PrepareNodeDirs());
  return Status::OK();
}

std::string TestCluster::NodeConfigPath(const std::string& node) const { return dir_ / ("nodes/" + node + ".toml"); }
std::string TestCluster::LedgerDb(const std::string& node) const { return dir_ / ("data/" + node + "/db"); }
std::string TestCluster::LedgerControl(const std::string& node) const {
  return dir_ / ("data/" + node + "/ledgerd.sock");
}

// What a node's host has before its agent starts: its directory and, on a
// client, the files `backup client` archives (as `./run cluster` does).
Status TestCluster::PrepareNodeDirs() {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> nodes = agents_;
  nodes.insert(nodes.end(), clones_.begin(), clones_.end());
  for (const auto& node : nodes) {
    fs::create_directories(DataDir(node), ec);
    if (ec) return Status::IOError("mkdir " + DataDir(node) + ": " + ec.message());
    if (RoleOf(node) != wire::Role::Client) continue;
    const std::string cfg = DataDir(node) + "/client/config";
    for (const std::string& d : {DataDir(node) + "/client/db", cfg}) {
      fs::create_directories(d, ec);
      if (ec) return Status::IOError("mkdir " + d + ": " + ec.message());
    }
    std::ofstream out(cfg + "/environment-vars");
    out << "LEDGER_API_PORT=6865\n";
    if (!out) return Status::IOError("cannot write " + cfg + "/environment-vars");
  }
  return Status::OK();
}

// Components (ledgerd, stand-ins) are daemons the agents started; they do
// not die with the test process, so the harness kills them.
void TestCluster::KillComponents() {
  namespace fs = std::filesystem;
  std::vector<std::string> nodes = agents_;
  nodes.insert(nodes.end(), clones_.begin(), clones_.end());
  for (const auto& node : nodes) {
    std::error_code ec;
    for (fs::directory_iterator it(DataDir(node) + "/components", ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() != ".pid") continue;
      std::ifstream in(it->path());
      pid_t pid = 0;
      in >> pid;
      if (pid > 0) ::kill(pid, SIGKILL);
    }
  }
}

TestCluster::~TestCluster() {
  if (opt_.dump_logs_on_failure && ::testing::Test::HasFailure()) {
    std::fprintf(stderr, "%s", DumpLogs().c_str());
  }
  // Agents first, so the broker does not log their loss for nothing.
  agent_procs_.clear();
  broker_.reset();
  KillComponents();
}

std::string TestCluster::AgentHttpListen(const std::string& node) const {
  auto it = agent_http_.find(node);
  return it == agent_http_.end() ? "off" : it->second;
}

int TestCluster::AgentHttpPort(const std::string& node) const {
  const std::string listen = AgentHttpListen(node);
  const auto colon = listen.rfind(':');
  if (listen == "off" || colon == std::string::npos) return 0;
  return std::atoi(listen.c_str() + colon + 1);
}

std::string TestCluster::KeyPath(const std::string& name) const { return dir_ / ("keys/" + name + ".key"); }

const CurveKeyPair& TestCluster::Key(const std::string& name) const { return keys_.at(name); }

std::string TestCluster::DataDir(const std::string& node) const { return dir_ / ("data/" + node); }

std::string TestCluster::LogPath(const std::string& node) const { return dir_ / ("logs/" + node + ".log"); }

wire::Role TestCluster::RoleOf(const std::string& node) const {
  if (std::find(clones_.begin(), clones_.end(), node) != clones_.end()) return wire::Role::Replica;
  if (std::find(agents_.begin(), agents_.end(), node) != agents_.end()) {
    return node[0] == 'r' ? wire::Role::Replica : wire::Role::Client;
  }
  for (const auto& e : opt_.extra_keys)
    if (e.name == node) return e.role;
  if (node == "operator") return wire::Role::Operator;
  return wire::Role::Unknown;
}

// ------------------------------------------------------------------ processes

Result<std::unique_ptr<ChildProcess>> TestCluster::Spawn(const std::string& node,
                                                         std::vector<std::string> argv) {
  {
    // A marker between lives of the same node in its (appended) log.
    std::ofstream log(LogPath(node), std::ios::app);
    log << "===== [harness] starting " << node << " at " << Clock::System()->NowMs() << " ms =====\n";
  }
  ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.stdout_path = LogPath(node);
  return ChildProcess::Start(std::move(spec));
}

Status TestCluster::StartBroker() {
  if (broker_ && broker_->IsRunning()) return Status::FailedPrecondition("the broker already runs");
  std::vector<std::string> argv = {BinPath("ledgerkeep-broker"), "--config", config_path_,
                                   "--key", KeyPath("broker"), "--data-dir", DataDir("broker"),
                                   "--log-level", opt_.log_level};
  argv.insert(argv.end(), opt_.broker_args.begin(), opt_.broker_args.end());
  LK_ASSIGN_OR_RETURN(broker_, Spawn("broker", std::move(argv)));
  // Serving = answering an operator request.
  Status last;
  bool up = WaitUntil(
      [&] {
        if (!broker_->IsRunning()) return true;
        auto client = ConnectOperator(300);
        if (!client.ok()) {
          last = client.status();
          return false;
        }
        auto nodes = (*client)->ListNodes();
        last = nodes.status();
        return nodes.ok();
      },
      milliseconds(10'000), milliseconds(20));
  if (!broker_->IsRunning()) {
    return Status::Internal("ledgerkeep-broker exited with code " +
                            std::to_string(broker_->exit_code().value_or(-1)) + ":\n" +
                            broker_->StdoutTail(30));
  }
  if (!up) return Status::Timeout("the broker does not answer: " + last.ToString());
  return Status::OK();
}

Status TestCluster::KillBroker(int sig) {
  if (!broker_) return Status::FailedPrecondition("the broker was never started");
  broker_->Kill(sig);
  if (!broker_->WaitExit(milliseconds(15'000))) {
    return Status::Timeout("the broker did not exit after signal " + std::to_string(sig));
  }
  return Status::OK();
}

Result<std::string> TestCluster::BrokerHttpToken() const {
  std::ifstream in(dir() + "/keys/http.token");
  std::string token;
  if (!std::getline(in, token) || token.empty()) {
    return Status::NotFound("no keys/http.token yet (the broker writes it when it starts)");
  }
  return token;
}

Status TestCluster::StartAgent(const std::string& node) {
  const wire::Role role = RoleOf(node);
  if (role != wire::Role::Replica && role != wire::Role::Client) {
    return Status::InvalidArgument("'" + node + "' is not an agent node of this cluster");
  }
  auto& slot = agent_procs_[node];
  if (slot && slot->IsRunning()) return Status::FailedPrecondition("agent " + node + " already runs");
  std::vector<std::string> argv = {BinPath("ledgerkeep-agent"), "--config", config_path_,
                                   "--key", KeyPath(node), "--role", RoleFlag(role),
                                   "--node-id", node, "--data-dir", DataDir(node),
                                   "--log-level", opt_.log_level, "--http-listen", AgentHttpListen(node)};
  if (opt_.with_ledger) {
    argv.push_back("--node-config");
    argv.push_back(NodeConfigPath(node));
  }
  if (std::find(clones_.begin(), clones_.end(), node) != clones_.end()) argv.push_back("--clone");
  LK_ASSIGN_OR_RETURN(slot, Spawn(node, std::move(argv)));
  return Status::OK();
}

Status TestCluster::KillAgent(const std::string& node, int sig) {
  ChildProcess* p = agent_process(node);
  if (p == nullptr) return Status::FailedPrecondition("agent " + node + " was never started");
  p->Kill(sig);
  if (!p->WaitExit(milliseconds(15'000))) {
    return Status::Timeout("agent " + node + " did not exit after signal " + std::to_string(sig));
  }
  return Status::OK();
}

Status TestCluster::RestartAgent(const std::string& node) {
  if (ChildProcess* p = agent_process(node); p != nullptr && p->IsRunning()) {
    LK_RETURN_IF_ERROR(KillAgent(node, SIGKILL));
  }
  return StartAgent(node);
}

Status TestCluster::StartAll(milliseconds timeout) {
  LK_RETURN_IF_ERROR(StartBroker());
  for (const auto& n : agents_) LK_RETURN_IF_ERROR(StartAgent(n));
  for (const auto& n : clones_) LK_RETURN_IF_ERROR(StartAgent(n));
  LK_RETURN_IF_ERROR(WaitAllAlive(timeout));
  for (const auto& n : clones_) LK_RETURN_IF_ERROR(WaitNodeState(n, "alive", timeout));
  return Status::OK();
}

ChildProcess* TestCluster::agent_process(const std::string& node) {
  auto it = agent_procs_.find(node);
  return it == agent_procs_.end() ? nullptr : it->second.get();
}

// ------------------------------------------------------------------ operator

ClientOptions TestCluster::ClientOptionsFor(const std::string& key_name, int64_t timeout_ms) const {
  ClientOptions o;
  o.config = config_;
  o.key = Key(key_name);
  o.timeout_ms = timeout_ms;
  return o;
}

ClientOptions TestCluster::OperatorOptions(int64_t timeout_ms) const {
  return ClientOptionsFor("operator", timeout_ms);
}

Result<std::unique_ptr<BrokerClient>> TestCluster::ConnectOperator(int64_t timeout_ms) const {
  return BrokerClient::Connect(OperatorOptions(timeout_ms));
}

BrokerOptions TestCluster::InProcessBrokerOptions() const {
  BrokerOptions o;
  o.config = config_;
  o.key = Key("broker");
  o.data_dir = DataDir("broker");
  return o;
}

Status TestCluster::WaitNodeState(const std::string& node, const std::string& state,
                                  milliseconds timeout) {
  std::string seen = "(no answer from the broker)";
  std::unique_ptr<BrokerClient> client;
  bool ok = WaitUntil(
      [&] {
        if (!client) {
          auto c = ConnectOperator(1000);
          if (!c.ok()) return false;
          client = std::move(*c);
        }
        auto list = client->ListNodes();
        if (!list.ok()) {
          seen = list.status().ToString();
          client.reset();  // a fresh connection after a broker restart
          return false;
        }
        for (const auto& n : list->nodes) {
          if (n->node_id != node) continue;
          seen = NodeStateName(n->state);
          return seen == state;
        }
        seen = "(not listed)";
        return false;
      },
      timeout, milliseconds(20));
  if (ok) return Status::OK();
  return Status::Timeout("node " + node + " did not become " + state + " within " +
                         std::to_string(timeout.count()) + " ms (last seen: " + seen + ")");
}

Status TestCluster::WaitAllAlive(milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& n : agents_) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    LK_RETURN_IF_ERROR(WaitNodeState(n, "alive", std::max(left, milliseconds(1))));
  }
  return Status::OK();
}

Result<wire::CommandStatusT> TestCluster::Ping(const wire::TargetT& target, uint32_t delay_ms,
                                               uint32_t timeout_ms, milliseconds wait) {
  LK_ASSIGN_OR_RETURN(auto client, ConnectOperator());
  wire::PingT ping;
  ping.delay_ms = delay_ms;
  ping.note = "harness";
  wire::CommandBodyUnion body;
  body.Set(std::move(ping));
  LK_ASSIGN_OR_RETURN(auto issued, client->Issue(target, std::move(body), timeout_ms));
  LK_ASSIGN_OR_RETURN(auto st, client->Wait(issued.cmd_id, wait.count(), nullptr));
  if (!st.finished) {
    return Status::Timeout("ping " + std::to_string(st.cmd_id) + " did not finish within " +
                           std::to_string(wait.count()) + " ms: " + DescribeCommandStatus(st));
  }
  return st;
}

Status TestCluster::PingAllOk(milliseconds wait) {
  wire::TargetT all;
  all.all = true;
  LK_ASSIGN_OR_RETURN(auto st, Ping(all, 0, static_cast<uint32_t>(wait.count()), wait));
  LK_RETURN_IF_ERROR(AllTargetsOk(st));
  if (st.targets.size() != agents_.size()) {
    return Status::Internal("ping to all reached " + std::to_string(st.targets.size()) +
                            " targets, the cluster has " + std::to_string(agents_.size()));
  }
  return Status::OK();
}

// ------------------------------------------------------------------ CLI

RunResult TestCluster::RunCli(const std::vector<std::string>& args, milliseconds timeout) {
  const std::string base = dir_ / ("logs/cli-" + std::to_string(++cli_runs_));
  ProcessSpec spec;
  spec.argv = {BinPath("ledgerkeep")};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.stdout_path = base + ".out";
  spec.stderr_path = base + ".err";
  spec.env = {{"LEDGERKEEP_CONFIG", config_path_}};
  return RunToCompletion(std::move(spec), timeout);
}

Result<std::unique_ptr<ChildProcess>> TestCluster::StartCli(const std::vector<std::string>& args,
                                                            const std::string& name) {
  ProcessSpec spec;
  spec.argv = {BinPath("ledgerkeep")};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.stdout_path = dir_ / ("logs/" + name + ".out");
  spec.stderr_path = dir_ / ("logs/" + name + ".err");
  spec.env = {{"LEDGERKEEP_CONFIG", config_path_}};
  return ChildProcess::Start(std::move(spec));
}

// ------------------------------------------------------------------ logs

std::string TestCluster::DumpLogs(size_t tail_lines) const {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_ / "logs", ec)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::ostringstream out;
  out << "\n========== [harness] logs of the test cluster in " << dir() << " ==========\n";
  for (const auto& f : files) {
    const std::string text = ReadFile(f.string());
    if (text.empty()) continue;
    out << "---------- " << f.filename().string() << " (last " << tail_lines
        << " lines) ----------\n"
        << TailLines(text, tail_lines);
    if (text.back() != '\n') out << "\n";
  }
  out << "========== [harness] end of logs ==========\n";
  return out.str();
}

// ------------------------------------------------------------------ helpers

Result<EventDump> FetchAllEvents(BrokerClient& client, const std::string& prefix) {
  EventDump dump;
  uint64_t from = 1;
  for (int pages = 0; pages < 100'000; ++pages) {
    LK_ASSIGN_OR_RETURN(auto page, client.FetchEvents(from, 1000, prefix));
    dump.head_seq = page.head_seq;
    for (auto& ev : page.events) dump.events.push_back(std::move(ev));
    if (page.next_seq <= from) return Status::Internal("FetchEvents made no progress at seq " + std::to_string(from));
    from = page.next_seq;
    if (from > page.head_seq) return dump;
  }
  return Status::Internal("FetchEvents never reached the head");
}

Status CheckDenseFromOne(const EventDump& dump) {
  uint64_t want = 1;
  for (const auto& env : dump.events) {
    const uint64_t seq = EventOf(env).seq();
    if (seq != want) {
      return Status::Corruption("event log is not dense: expected seq " + std::to_string(want) +
                                ", got " + std::to_string(seq));
    }
    ++want;
  }
  if (want - 1 != dump.head_seq) {
    return Status::Corruption("event log ends at seq " + std::to_string(want - 1) +
                              " but the head is " + std::to_string(dump.head_seq));
  }
  return Status::OK();
}

std::string DescribeCommandStatus(const wire::CommandStatusT& st) {
  std::ostringstream out;
  out << "command " << st.cmd_id << " (" << st.kind << ") finished=" << st.finished;
  for (const auto& t : st.targets) {
    out << "; " << t->node_id << ": " << wire::EnumNameTargetState(t->state);
    if (t->result) {
      out << " " << wire::EnumNameResultStatus(t->result->status);
      if (!t->result->message.empty()) out << " (" << t->result->message << ")";
    }
  }
  return out.str();
}

Status AllTargetsOk(const wire::CommandStatusT& st) {
  bool ok = st.finished && !st.targets.empty();
  for (const auto& t : st.targets) {
    ok = ok && t->result && t->result->status == wire::ResultStatus::Ok;
  }
  if (ok) return Status::OK();
  return Status::Internal("not every target answered Ok: " + DescribeCommandStatus(st));
}

}  // namespace ledgerkeep::test
