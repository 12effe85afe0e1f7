// bench_bus: the bus benchmark of issue 2, item 10.
//
// (a) fan-out: one in-process Broker (real TCP on loopback, RocksDB state in a
//     temp dir) and K in-process Agents sharing one ZeroMQ context, each with
//     its own SUB + DEALER sockets. One round = BrokerClient::Issue(Ping to
//     all) -> Wait until the command is finished (every target has its
//     result stored durably by the broker and the final status was pushed).
//     Run with CURVE (real keys, ZAP allowlist of K agents + an operator) and
//     without (curve=false on broker, agents and client). 100 measured
//     rounds by default: the nearest-rank p99 is then the second slowest
//     round (over 30 rounds it would be the slowest). --verbose prints every
//     round and keeps the broker's data directory.
// (b) event log: durable appends/s (EventLog::Stage into a batch, one
//     KvStore::Write(sync=true) per batch, Commit: the broker's group
//     commit) for several batch sizes, and replay events/s (EventLog::Read
//     pages from seq 1, every envelope decoded and verified as a client does).
//
// The table comes first; the LAST line is one JSON object of headline figures.
// Usage: bench_bus [--quick] [--rounds N] [--warmup N] [--ks 10,100,1000]
//                  [--events N] [--batch N] [--heartbeat-ms N] [--dir PATH]
//                  [--skip-fanout] [--skip-eventlog] [--only-curve|--only-plain]
//                  [--verbose]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "agents/agent.h"
#include "agents/agent_journal.h"
#include "agents/ping_handler.h"
#include "broker/broker.h"
#include "broker/event_log.h"
#include "client/broker_client.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/config.h"
#include "common/curve_keys.h"
#include "common/kv_store.h"

namespace lk = ledgerkeep;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// ------------------------------------------------------------------ utils

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "bench_bus: %s\n", what.c_str());
  std::fflush(stdout);
  std::exit(1);
}

void Check(const lk::Status& s, const std::string& what) {
  if (!s.ok()) Die(what + ": " + s.ToString());
}

template <typename T>
T Take(lk::Result<T> r, const std::string& what) {
  if (!r.ok()) Die(what + ": " + r.status().ToString());
  return std::move(r).value();
}

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Nearest-rank percentile (p in [0,100]) of a copy of v.
double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}

double Mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) Die("socket: " + std::string(std::strerror(errno)));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) Die("bind port 0");
  socklen_t len = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) Die("getsockname");
  ::close(fd);
  return ntohs(a.sin_port);
}

void RaiseFdLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rl.rlim_cur = rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    std::fprintf(stderr, "bench_bus: cannot raise RLIMIT_NOFILE: %s\n", std::strerror(errno));
  }
}

rlim_t FdLimit() {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

std::vector<size_t> ParseList(const std::string& s) {
  std::vector<size_t> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    if (comma > pos) out.push_back(std::stoul(s.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return out;
}

std::string LoadAvg() {
  std::string out;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    char buf[128] = {0};
    if (std::fgets(buf, sizeof buf, f)) out = buf;
    std::fclose(f);
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

struct Options {
  std::vector<size_t> ks = {10, 100, 1000};
  int rounds = 100;  // a p99 of 30 rounds would be their maximum
  int warmup = 3;
  uint64_t events = 1'000'000;
  uint32_t headline_batch = 256;
  int heartbeat_ms = 1000;
  std::string dir;
  bool fanout = true;
  bool eventlog = true;
  bool curve = true;
  bool plain = true;
  bool verbose = false;
};

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--quick") {
      o.rounds = 10;
      o.warmup = 2;
      o.events = 300'000;
    } else if (a == "--rounds") {
      o.rounds = std::stoi(next());
    } else if (a == "--warmup") {
      o.warmup = std::stoi(next());
    } else if (a == "--ks") {
      o.ks = ParseList(next());
    } else if (a == "--events") {
      o.events = std::stoull(next());
    } else if (a == "--batch") {
      o.headline_batch = static_cast<uint32_t>(std::stoul(next()));
    } else if (a == "--heartbeat-ms") {
      o.heartbeat_ms = std::stoi(next());
    } else if (a == "--dir") {
      o.dir = next();
    } else if (a == "--skip-fanout") {
      o.fanout = false;
    } else if (a == "--skip-eventlog") {
      o.eventlog = false;
    } else if (a == "--only-curve") {
      o.plain = false;
    } else if (a == "--only-plain") {
      o.curve = false;
    } else if (a == "--verbose") {
      o.verbose = true;
    } else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: bench_bus [--quick] [--rounds N] [--warmup N] [--ks 10,100,1000]\n"
          "                 [--events N] [--batch N] [--heartbeat-ms N] [--dir PATH]\n"
          "                 [--skip-fanout] [--skip-eventlog] [--only-curve|--only-plain]\n"
          "                 [--verbose]\n");
      std::exit(0);
    } else {
      Die("unknown argument '" + a + "' (see --help)");
    }
  }
  if (o.rounds < 1) Die("--rounds must be >= 1");
  return o;
}

// ------------------------------------------------------------------ thread CPU

// On-CPU time per thread from /proc/self/task/<tid>/schedstat (ns, exact),
// so a round's CPU can be split between the broker, the agents and ZeroMQ.
struct ThreadSample {
  std::string comm;
  uint64_t cpu_ns = 0;
};

std::map<int, ThreadSample> SampleThreads() {
  std::map<int, ThreadSample> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/self/task", ec)) {
    const std::string name = e.path().filename().string();
    int tid = std::atoi(name.c_str());
    if (tid <= 0) continue;
    ThreadSample t;
    if (FILE* f = std::fopen((e.path() / "schedstat").c_str(), "r")) {
      unsigned long long ns = 0;
      if (std::fscanf(f, "%llu", &ns) == 1) t.cpu_ns = ns;
      std::fclose(f);
    } else {
      continue;  // thread exited meanwhile
    }
    if (FILE* f = std::fopen((e.path() / "comm").c_str(), "r")) {
      char buf[64] = {0};
      if (std::fgets(buf, sizeof buf, f)) t.comm = buf;
      std::fclose(f);
      while (!t.comm.empty() && (t.comm.back() == '\n')) t.comm.pop_back();
    }
    out[tid] = std::move(t);
  }
  return out;
}

// Classifies threads by when they appeared: every thread not yet known when
// Tag() is called gets `label` (ZeroMQ's own threads get `zmq_label`).
class ThreadTags {
 public:
  void Tag(const std::string& label, const std::string& zmq_label) {
    for (const auto& [tid, t] : SampleThreads()) {
      if (!tags_.count(tid)) tags_[tid] = {label, zmq_label};
    }
  }
  // CPU ms per label between two samples. A thread is put in the ZeroMQ
  // group by its name as of the later sample (naming races thread start).
  std::map<std::string, double> Diff(const std::map<int, ThreadSample>& a,
                                     const std::map<int, ThreadSample>& b) const {
    std::map<std::string, double> out;
    for (const auto& [tid, tb] : b) {
      auto ta = a.find(tid);
      const uint64_t before = ta == a.end() ? 0 : ta->second.cpu_ns;
      auto tag = tags_.find(tid);
      std::string label = "other";
      if (tag != tags_.end()) {
        label = tb.comm.rfind("ZMQbg", 0) == 0 ? tag->second.second : tag->second.first;
      }
      out[label] += static_cast<double>(tb.cpu_ns - std::min(before, tb.cpu_ns)) / 1e6;
    }
    return out;
  }

 private:
  std::map<int, std::pair<std::string, std::string>> tags_;
};

struct Rusage {
  double user_ms = 0, sys_ms = 0;
  long vcsw = 0, ivcsw = 0;
};

Rusage GetRusage() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  Rusage r;
  r.user_ms = static_cast<double>(ru.ru_utime.tv_sec) * 1e3 + static_cast<double>(ru.ru_utime.tv_usec) / 1e3;
  r.sys_ms = static_cast<double>(ru.ru_stime.tv_sec) * 1e3 + static_cast<double>(ru.ru_stime.tv_usec) / 1e3;
  r.vcsw = ru.ru_nvcsw;
  r.ivcsw = ru.ru_nivcsw;
  return r;
}

// ------------------------------------------------------------------ fan-out

struct FanoutRow {
  size_t k = 0;
  bool curve = false;
  int rounds = 0;
  double setup_s = 0;  // start broker + K agents until all alive
  double p50 = 0, p99 = 0, max = 0, mean = 0;
  double issue_p50 = 0;  // Issue() round trip (command durable + reply)
  double ack_p50 = 0;    // broker clock: issued -> last ack stored
  double done_p50 = 0;   // broker clock: issued -> last result stored
  int failures = 0;      // targets whose result was not Ok
  // Per measured round: CPU ms by thread group, and process-wide figures.
  std::map<std::string, double> cpu_ms;
  std::map<std::string, double> idle_cpu_ms_per_s;  // all agents alive, no command
  double idle_wakeups_per_s = 0;                    // voluntary context switches
  double user_ms = 0, sys_ms = 0, vcsw = 0, ivcsw = 0;
};

struct Keys {
  lk::CurveKeyPair broker;
  lk::CurveKeyPair op;
  std::vector<lk::CurveKeyPair> agents;
};

std::string NodeName(size_t i) {
  std::string n = std::to_string(i);
  return "a" + std::string(n.size() < 4 ? 4 - n.size() : 0, '0') + n;
}

Keys MakeKeys(size_t max_k) {
  Keys k;
  k.broker = Take(lk::GenerateCurveKeyPair("broker"), "broker key");
  k.op = Take(lk::GenerateCurveKeyPair("operator"), "operator key");
  for (size_t i = 0; i < max_k; ++i) {
    k.agents.push_back(Take(lk::GenerateCurveKeyPair(NodeName(i)), "agent key"));
  }
  return k;
}

lk::ClusterConfig MakeConfig(const Keys& keys, size_t k, int heartbeat_ms) {
  lk::ClusterConfig c;
  c.path = "(in memory)";
  c.cluster_id = "bench";
  c.connect_host = "127.0.0.1";
  c.bind_host = "127.0.0.1";
  c.cmd_port = FreePort();
  do {
    c.ctl_port = FreePort();
  } while (c.ctl_port == c.cmd_port);
  do {
    c.events_port = FreePort();
  } while (c.events_port == c.cmd_port || c.events_port == c.ctl_port);
  c.broker_public_key = keys.broker.public_z85;
  c.heartbeat_ms = heartbeat_ms;
  c.suspect_after = 3;
  c.lost_after = 10;
  c.allow.push_back({"operator", lk::wire::Role::Operator, keys.op.public_z85});
  for (size_t i = 0; i < k; ++i) {
    c.allow.push_back({keys.agents[i].name, lk::wire::Role::Replica, keys.agents[i].public_z85});
  }
  return c;
}

// Polls ListNodes until all k agents are alive and have said Hello.
void WaitAllAlive(lk::BrokerClient& client, size_t k, int64_t timeout_ms) {
  const auto t0 = Clock::now();
  size_t last_alive = 0;
  while (true) {
    auto list = client.ListNodes();
    size_t alive = 0;
    if (list.ok()) {
      for (const auto& n : list->nodes) {
        if (n->state == lk::wire::NodeState::Alive && n->connected_since_ms > 0) ++alive;
      }
      last_alive = alive;
      if (alive == k) return;
    }
    if (MsSince(t0) > static_cast<double>(timeout_ms)) {
      Die("only " + std::to_string(last_alive) + " of " + std::to_string(k) + " agents alive after " +
          std::to_string(timeout_ms) + " ms" + (list.ok() ? "" : " (" + list.status().ToString() + ")"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

FanoutRow RunFanout(const Options& opt, const Keys& keys, size_t k, bool curve, const fs::path& base) {
  FanoutRow row;
  row.k = k;
  row.curve = curve;
  const fs::path data = base / ("fanout-k" + std::to_string(k) + (curve ? "-curve" : "-plain"));
  fs::remove_all(data);
  fs::create_directories(data);

  ThreadTags tags;
  tags.Tag("main (client)", "other zmq");
  const auto t_setup = Clock::now();
  lk::ClusterConfig config = MakeConfig(keys, k, opt.heartbeat_ms);

  lk::BrokerOptions bo;
  bo.config = config;
  bo.key = keys.broker;
  bo.data_dir = data.string();
  bo.curve = curve;
  auto broker = Take(lk::Broker::Start(std::move(bo)), "start broker");
  tags.Tag("broker thread", "broker zmq io");

  // One context for all agents: 2 I/O threads, room for ~8 sockets per agent
  // (SUB, DEALER, 2 monitors x 2 PAIR, control pipe x 2).
  zmq::context_t ctx(2);
  ctx.set(zmq::ctxopt::max_sockets, static_cast<int>(std::max<size_t>(1024, 12 * k + 64)));
  std::vector<std::unique_ptr<lk::Agent>> agents;
  agents.reserve(k);
  for (size_t i = 0; i < k; ++i) {
    lk::AgentOptions ao;
    ao.config = config;
    ao.key = keys.agents[i];
    ao.node_id = keys.agents[i].name;
    ao.role = lk::wire::Role::Replica;
    ao.journal = lk::AgentJournal::InMemory();
    ao.context = &ctx;
    ao.curve = curve;
    agents.push_back(Take(lk::Agent::Start(std::move(ao), lk::DefaultHandlers(lk::wire::Role::Replica)),
                          "start agent " + keys.agents[i].name));
  }
  tags.Tag("agent threads", "agents zmq io (shared ctx)");

  lk::ClientOptions co;
  co.config = config;
  co.key = keys.op;
  co.timeout_ms = 30'000;
  co.curve = curve;
  auto client = Take(lk::BrokerClient::Connect(std::move(co)), "connect client");
  tags.Tag("other", "client zmq io");
  WaitAllAlive(*client, k, 120'000);
  row.setup_s = MsSince(t_setup) / 1000.0;

  // Idle load: everything connected and heartbeating, no command running.
  tags.Tag("agent lane workers", "other zmq");
  {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto a = SampleThreads();
    const Rusage ra = GetRusage();
    const auto ti = Clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    const double secs = MsSince(ti) / 1000.0;
    const Rusage rb = GetRusage();
    for (auto& [label, ms] : tags.Diff(a, SampleThreads())) row.idle_cpu_ms_per_s[label] = ms / secs;
    row.idle_wakeups_per_s = static_cast<double>(rb.vcsw - ra.vcsw) / secs;
  }

  lk::wire::TargetT all;
  all.all = true;
  std::vector<double> total, issue, ack, done;
  std::map<int, ThreadSample> cpu_before;
  Rusage ru_before;
  for (int r = 0; r < opt.warmup + opt.rounds; ++r) {
    if (r == opt.warmup) {
      tags.Tag("agent lane workers", "other zmq");  // lanes start on the first command
      cpu_before = SampleThreads();
      ru_before = GetRusage();
    }
    lk::wire::PingT ping;
    ping.note = "bench round " + std::to_string(r);
    lk::wire::CommandBodyUnion body;
    body.Set(std::move(ping));
    const auto t0 = Clock::now();
    auto st = Take(client->Issue(all, std::move(body), 60'000), "issue ping");
    const double t_issue = MsSince(t0);
    auto fin = Take(client->Wait(st.cmd_id, 60'000, nullptr), "wait for ping");
    const double t_total = MsSince(t0);
    if (!fin.finished) Die("ping " + std::to_string(st.cmd_id) + " did not finish in 60 s");
    if (fin.targets.size() != k) {
      Die("ping reached " + std::to_string(fin.targets.size()) + " targets, expected " + std::to_string(k));
    }
    int64_t last_ack = fin.issued_at_ms, last_done = fin.issued_at_ms;
    int failures = 0;
    for (const auto& t : fin.targets) {
      last_ack = std::max(last_ack, t->acked_at_ms);
      last_done = std::max(last_done, t->done_at_ms);
      if (!t->result || t->result->status != lk::wire::ResultStatus::Ok) ++failures;
    }
    if (r < opt.warmup) continue;
    if (opt.verbose) {
      std::fprintf(stderr, "round %d: %.1f ms (issue %.1f ms) at %lld\n", r - opt.warmup + 1, t_total,
                   t_issue,
                   static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count()));
    }
    row.failures += failures;
    total.push_back(t_total);
    issue.push_back(t_issue);
    ack.push_back(static_cast<double>(last_ack - fin.issued_at_ms));
    done.push_back(static_cast<double>(last_done - fin.issued_at_ms));
    // A short gap so that trailing ReportAcks of one round do not overlap
    // the next one.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  {
    const Rusage ru_after = GetRusage();
    const auto cpu_after = SampleThreads();
    const double n = opt.rounds;
    for (auto& [label, ms] : tags.Diff(cpu_before, cpu_after)) row.cpu_ms[label] = ms / n;
    row.user_ms = (ru_after.user_ms - ru_before.user_ms) / n;
    row.sys_ms = (ru_after.sys_ms - ru_before.sys_ms) / n;
    row.vcsw = static_cast<double>(ru_after.vcsw - ru_before.vcsw) / n;
    row.ivcsw = static_cast<double>(ru_after.ivcsw - ru_before.ivcsw) / n;
  }
  row.rounds = opt.rounds;
  row.p50 = Percentile(total, 50);
  row.p99 = Percentile(total, 99);
  row.max = Percentile(total, 100);
  row.mean = Mean(total);
  row.issue_p50 = Percentile(issue, 50);
  row.ack_p50 = Percentile(ack, 50);
  row.done_p50 = Percentile(done, 50);

  client.reset();
  // Stop all agents first (they all signal, then join), then the broker.
  agents.clear();
  broker->Stop();
  broker.reset();
  std::error_code ec;
  if (!opt.verbose) fs::remove_all(data, ec);
  return row;
}

// ------------------------------------------------------------------ event log

struct AppendRow {
  uint32_t batch = 0;
  uint64_t events = 0;
  double seconds = 0;
  double per_s = 0;
  double commit_p50_ms = 0;  // one Write(sync=true) of a batch
  double commit_p99_ms = 0;
};

struct ReplayRow {
  uint64_t events = 0;
  uint64_t pages = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  double per_s = 0;
  double read_only_per_s = 0;  // EventLog::Read without decoding
};

// The events a ping round produces, alternating: Ack, CommandResult{Pong}.
lk::wire::EventBodyUnion SampleEvent(uint64_t i, const char** kind) {
  lk::wire::EventBodyUnion body;
  if (i % 2 == 0) {
    lk::wire::AckT a;
    a.cmd_id = i / 2 + 1;
    a.accepted = true;
    body.Set(std::move(a));
  } else {
    lk::wire::CommandResultT r;
    r.cmd_id = i / 2 + 1;
    r.status = lk::wire::ResultStatus::Ok;
    r.started_at_ms = 1'700'000'000'000;
    r.finished_at_ms = 1'700'000'000'001;
    lk::wire::PongT p;
    p.received_at_ms = 1'700'000'000'000;
    p.note = "bench";
    r.detail.Set(std::move(p));
    body.Set(std::move(r));
  }
  *kind = "command";
  return body;
}

AppendRow AppendBatches(lk::KvStore& store, lk::EventLog& log, uint32_t batch_size, uint64_t count,
                        uint64_t* counter) {
  AppendRow row;
  row.batch = batch_size;
  std::vector<double> commits;
  lk::KvStore::Batch batch;
  const auto t0 = Clock::now();
  uint64_t done = 0;
  while (done < count) {
    const uint64_t n = std::min<uint64_t>(batch_size, count - done);
    for (uint64_t j = 0; j < n; ++j) {
      const char* kind = nullptr;
      const uint64_t i = (*counter)++;
      auto body = SampleEvent(i, &kind);
      (void)log.Stage(batch, kind, NodeName(i % 1000), std::move(body));
    }
    const auto tc = Clock::now();
    Check(store.Write(batch, /*sync=*/true), "event log write");
    commits.push_back(MsSince(tc));
    batch.Clear();
    log.Commit();
    done += n;
  }
  row.seconds = MsSince(t0) / 1000.0;
  row.events = count;
  row.per_s = static_cast<double>(count) / row.seconds;
  row.commit_p50_ms = Percentile(commits, 50);
  row.commit_p99_ms = Percentile(commits, 99);
  return row;
}

// Pages of the size the broker serves (HandleFetch: <= 10000 events, 768 KiB).
constexpr uint32_t kPageEvents = 10'000;
constexpr size_t kPageBytes = 768 * 1024;

constexpr int kEventsCf = 4;

// Replays the whole log through a real Broker over ctl (CURVE on), with
// BrokerClient::FetchEvents, which decodes and verifies every event.
ReplayRow ReplayViaBroker(const fs::path& data_dir, uint64_t retain) {
  Keys keys = MakeKeys(0);
  lk::ClusterConfig config = MakeConfig(keys, 0, 1000);
  lk::BrokerOptions bo;
  bo.config = config;
  bo.key = keys.broker;
  bo.data_dir = data_dir.string();
  bo.events.retain_count = retain;
  auto broker = Take(lk::Broker::Start(std::move(bo)), "start broker on the event log");
  lk::ClientOptions co;
  co.config = config;
  co.key = keys.op;
  co.timeout_ms = 30'000;
  auto client = Take(lk::BrokerClient::Connect(std::move(co)), "connect client");
  ReplayRow row;
  const auto t0 = Clock::now();
  uint64_t next = 1, expect = 1;
  while (true) {
    auto page = Take(client->FetchEvents(next, kPageEvents, ""), "FetchEvents");
    if (page.events.empty()) break;
    ++row.pages;
    for (const auto& env : page.events) {
      row.bytes += env.size();
      if (env->body_as_Event()->seq() != expect) Die("replay via broker: gap at " + std::to_string(expect));
      ++expect;
      ++row.events;
    }
    next = page.next_seq;
    if (next > page.head_seq) break;
  }
  row.seconds = MsSince(t0) / 1000.0;
  row.per_s = static_cast<double>(row.events) / row.seconds;
  client.reset();
  broker->Stop();
  return row;
}

ReplayRow Replay(const lk::EventLog& log, bool decode) {
  ReplayRow row;
  const auto t0 = Clock::now();
  uint64_t next = 1;
  uint64_t expect = log.first_seq();
  uint64_t checksum = 0;
  while (next <= log.head_seq()) {
    auto page = Take(log.Read(next, kPageEvents, "", kPageBytes), "event log read");
    if (page.events.empty()) Die("event log read returned an empty page at " + std::to_string(next));
    ++row.pages;
    for (const auto& bytes : page.events) {
      row.bytes += bytes.size();
      if (decode) {
        auto env = Take(lk::DecodeEnvelope(bytes), "decode event");
        const auto* ev = env->body_as_Event();
        if (ev == nullptr || ev->seq() != expect) {
          Die("replay: expected event seq " + std::to_string(expect));
        }
        checksum += ev->seq() + static_cast<uint64_t>(ev->body_type());
      }
      ++expect;
      ++row.events;
    }
    next = page.next_seq;
  }
  row.seconds = MsSince(t0) / 1000.0;
  row.per_s = static_cast<double>(row.events) / row.seconds;
  if (decode && checksum == 0) Die("replay decoded nothing");
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = ParseArgs(argc, argv);
  spdlog::set_level(opt.verbose ? spdlog::level::info : spdlog::level::warn);
  RaiseFdLimit();

  fs::path base = opt.dir.empty() ? fs::temp_directory_path() / ("bench_bus." + std::to_string(::getpid()))
                                  : fs::path(opt.dir);
  fs::create_directories(base);
  std::printf("bench_bus: data under %s, RLIMIT_NOFILE %llu, %u hardware threads\n", base.c_str(),
              static_cast<unsigned long long>(FdLimit()), std::thread::hardware_concurrency());
  std::printf("load average at start: %s\n", LoadAvg().c_str());
  std::fflush(stdout);

  std::map<std::pair<size_t, bool>, FanoutRow> fan;
  if (opt.fanout && !opt.ks.empty()) {
    const size_t max_k = *std::max_element(opt.ks.begin(), opt.ks.end());
    const auto tk = Clock::now();
    Keys keys = MakeKeys(max_k);
    std::printf("generated %zu CURVE key pairs in %.0f ms\n", max_k + 2, MsSince(tk));
    std::printf("\n## (a) fan-out: Ping to all K agents, Issue -> Wait(finished)\n");
    std::printf(
        "heartbeat %d ms, %d warm-up + %d measured rounds per row; percentiles are "
        "nearest-rank\n\n",
        opt.heartbeat_ms, opt.warmup, opt.rounds);
    std::printf(
        "| K | CURVE | rounds | setup s | p50 ms | p99 ms | max ms | mean ms | issue p50 ms "
        "| last ack p50 ms | last result p50 ms | failed |\n");
    std::printf("|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    std::fflush(stdout);
    for (size_t k : opt.ks) {
      for (bool curve : {true, false}) {
        if ((curve && !opt.curve) || (!curve && !opt.plain)) continue;
        FanoutRow r = RunFanout(opt, keys, k, curve, base);
        fan[{k, curve}] = r;
        std::printf("| %zu | %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %d |\n", r.k,
                    r.curve ? "on" : "off", r.rounds, r.setup_s, r.p50, r.p99, r.max, r.mean, r.issue_p50,
                    r.ack_p50, r.done_p50, r.failures);
        std::fflush(stdout);
      }
    }
    std::printf("\n### CPU per measured round (ms, includes the 20 ms gap between rounds)\n\n");
    std::vector<std::string> labels = {"broker thread",
                                       "broker zmq io",
                                       "agent threads",
                                       "agent lane workers",
                                       "agents zmq io (shared ctx)",
                                       "main (client)",
                                       "client zmq io",
                                       "other zmq",
                                       "other"};
    std::printf("| K | CURVE |");
    for (const auto& l : labels) std::printf(" %s |", l.c_str());
    std::printf(" total user | total sys | vol. ctx sw | invol. ctx sw |\n|---:|:---:|");
    for (size_t i = 0; i < labels.size() + 4; ++i) std::printf("---:|");
    std::printf("\n");
    for (const auto& [key, r] : fan) {
      std::printf("| %zu | %s |", r.k, r.curve ? "on" : "off");
      for (const auto& l : labels) {
        auto it = r.cpu_ms.find(l);
        std::printf(" %.1f |", it == r.cpu_ms.end() ? 0.0 : it->second);
      }
      std::printf(" %.1f | %.1f | %.0f | %.0f |\n", r.user_ms, r.sys_ms, r.vcsw, r.ivcsw);
    }
    std::printf("\n### Idle load: CPU ms per second with all K agents connected, no command\n\n");
    std::printf("| K | CURVE |");
    for (const auto& l : labels) std::printf(" %s |", l.c_str());
    std::printf(" total | vol. ctx sw/s |\n|---:|:---:|");
    for (size_t i = 0; i < labels.size() + 2; ++i) std::printf("---:|");
    std::printf("\n");
    for (const auto& [key, r] : fan) {
      std::printf("| %zu | %s |", r.k, r.curve ? "on" : "off");
      double sum = 0;
      for (const auto& l : labels) {
        auto it = r.idle_cpu_ms_per_s.find(l);
        const double v = it == r.idle_cpu_ms_per_s.end() ? 0.0 : it->second;
        sum += v;
        std::printf(" %.1f |", v);
      }
      std::printf(" %.1f | %.0f |\n", sum, r.idle_wakeups_per_s);
    }
    std::printf(
        "\n(issue = IssueCommand round trip, i.e. command stored with fsync and "
        "answered; last ack / last result = broker clock from issue to the last "
        "target's ack / result being stored, ms resolution)\n");
  }

  std::optional<AppendRow> headline_append;
  std::optional<ReplayRow> replay;
  if (opt.eventlog) {
    const fs::path dir = base / "eventlog";
    fs::remove_all(dir);
    // The broker's column-family layout (events = index 4), so that a Broker
    // can serve this log afterwards (replay over ctl, as the CLI does).
    auto store =
        Take(lk::KvStore::Open((dir / "state").string(), {"meta", "nodes", "commands", "targets", "events"}),
             "open event store");
    lk::EventLogOptions eo;
    eo.retain_count = std::max<uint64_t>(opt.events + 100'000, eo.retain_count);
    lk::EventLog log(store.get(), kEventsCf, eo, lk::Clock::System(), "broker");
    Check(log.Load(), "load event log");

    std::printf(
        "\n## (b) event log: durable group-commit appends (Stage x B, Write sync=true, "
        "Commit)\n\n");
    std::printf("| batch B | events | seconds | events/s | fsync'd write p50 ms | p99 ms |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|\n");
    std::fflush(stdout);
    uint64_t counter = 0;
    // Small phases first (they show the per-fsync cost), then the headline
    // batch size, then fill the log up to opt.events with B = 1000.
    std::vector<std::pair<uint32_t, uint64_t>> phases = {
        {1, 1000}, {64, 32'000}, {opt.headline_batch, std::min<uint64_t>(opt.events / 4, 256'000)}};
    uint64_t planned = 0;
    for (const auto& p : phases) planned += p.second;
    if (opt.events > planned) phases.push_back({1000, opt.events - planned});
    for (const auto& [b, n] : phases) {
      if (n == 0) continue;
      AppendRow r = AppendBatches(*store, log, b, n, &counter);
      if (b == opt.headline_batch && !headline_append) headline_append = r;
      std::printf("| %u | %" PRIu64 " | %.2f | %.0f | %.2f | %.2f |\n", r.batch, r.events, r.seconds, r.per_s,
                  r.commit_p50_ms, r.commit_p99_ms);
      std::fflush(stdout);
    }

    std::printf(
        "\n## (b) event log: replay from seq 1 (EventLog::Read pages of <= %u events / "
        "%zu KiB)\n\n",
        kPageEvents, kPageBytes / 1024);
    std::printf("| mode | events | pages | MiB | seconds | events/s |\n");
    std::printf("|---|---:|---:|---:|---:|---:|\n");
    ReplayRow raw = Replay(log, /*decode=*/false);
    std::printf("| Read only | %" PRIu64 " | %" PRIu64 " | %.1f | %.2f | %.0f |\n", raw.events, raw.pages,
                static_cast<double>(raw.bytes) / (1 << 20), raw.seconds, raw.per_s);
    ReplayRow dec = Replay(log, /*decode=*/true);
    std::printf("| Read + DecodeEnvelope (verify) | %" PRIu64 " | %" PRIu64 " | %.1f | %.2f | %.0f |\n",
                dec.events, dec.pages, static_cast<double>(dec.bytes) / (1 << 20), dec.seconds, dec.per_s);
    replay = dec;
    std::fflush(stdout);
    store.reset();
    ReplayRow via = ReplayViaBroker(dir, eo.retain_count);
    std::printf("| BrokerClient::FetchEvents over ctl (CURVE, TCP) | %" PRIu64 " | %" PRIu64
                " | %.1f | %.2f | %.0f |\n",
                via.events, via.pages, static_cast<double>(via.bytes) / (1 << 20), via.seconds, via.per_s);
    std::printf(
        "\n(mean event size %.0f bytes; the headline replay figure is Read + "
        "DecodeEnvelope; the broker row includes the broker's own start-up note)\n",
        dec.events ? static_cast<double>(dec.bytes) / static_cast<double>(dec.events) : 0.0);
    std::fflush(stdout);
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  if (opt.dir.empty()) {
    std::error_code ec;
    fs::remove_all(base, ec);
  }

  std::printf("\nload average at end: %s\n", LoadAvg().c_str());
  auto num = [](std::optional<double> v) -> std::string {
    if (!v) return "null";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f", *v);
    return buf;
  };
  auto fan_p99 = [&](size_t k, bool curve) -> std::optional<double> {
    auto it = fan.find({k, curve});
    if (it == fan.end()) return std::nullopt;
    return it->second.p99;
  };
  std::optional<double> appends, replays;
  if (headline_append) appends = headline_append->per_s;
  if (replay) replays = replay->per_s;
  std::printf(
      "\n{\"fanout_p99_ms_k1000_curve\": %s, \"fanout_p99_ms_k1000_plain\": %s, "
      "\"eventlog_appends_per_s\": %s, \"eventlog_replay_per_s\": %s}\n",
      num(fan_p99(1000, true)).c_str(), num(fan_p99(1000, false)).c_str(), num(appends).c_str(),
      num(replays).c_str());
  return 0;
}
