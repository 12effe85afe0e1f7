// ledgerd as a real process, driven through LedgerControlClient and checked
// with the real ledgerkeep-db.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <zmq.hpp>

#include "ledger/control_client.h"
#include "ledger/control_codec.h"
#include "schemas/ledger_control_generated.h"
#include "tests/ledger/ledger_test_util.h"

namespace ledgerkeep::ledger {
namespace {

using nlohmann::json;
using testing::BinPath;
using testing::ChildProcess;
using testing::NowMs;
using testing::RunDbTool;
using testing::TempDir;
using testing::WaitUntil;
using namespace std::chrono_literals;

class LedgerdProcessTest : public ::testing::Test {
 protected:
  struct Replica {
    std::string db;
    std::string socket;
    std::unique_ptr<ChildProcess> process;
  };

  Replica MakeReplica(const std::string& name) { return {dir_ / name, dir_ / (name + ".sock"), nullptr}; }

  // Starts ledgerd for `r` with the cluster's common flags plus `extra`.
  void Start(Replica& r, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{BinPath("ledgerd"),   "--db",           r.db,
                                  "--control",          r.socket,         "--genesis-time-ms",
                                  std::to_string(genesis_ms_), "--blocks-per-sec", std::to_string(rate_),
                                  "--payload-bytes",    "128",            "--keyspace",
                                  "64",                 "--st-blocks-per-sec", std::to_string(st_rate_),
                                  "--write-buffer-bytes", "262144"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    r.process = std::make_unique<ChildProcess>(argv, r.db + ".log");
    ASSERT_GT(r.process->pid(), 0);
    LedgerControlClient client(r.socket, Fast());
    ASSERT_TRUE(WaitUntil([&] { return client.GetStatus().ok() || !r.process->running(); }, 15s))
        << r.process->Log();
    ASSERT_TRUE(r.process->running()) << r.process->Log();
  }

  // SIGTERM and expect a clean exit 0.
  void Stop(Replica& r) {
    r.process->Signal(SIGTERM);
    auto rc = r.process->Wait(20s);
    ASSERT_TRUE(rc.has_value()) << "ledgerd did not exit on SIGTERM\n" << r.process->Log();
    EXPECT_EQ(*rc, 0) << r.process->Log();
  }

  static ControlClientOptions Fast() {
    ControlClientOptions o;
    o.timeout = 2s;
    return o;
  }

  LedgerStatus MustStatus(LedgerControlClient& client) {
    auto s = client.GetStatus();
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : LedgerStatus{};
  }

  bool WaitForStatus(LedgerControlClient& client, const std::function<bool(const LedgerStatus&)>& pred,
                     std::chrono::milliseconds timeout = 20s) {
    return WaitUntil(
        [&] {
          auto s = client.GetStatus();
          return s.ok() && pred(*s);
        },
        timeout);
  }

  uint64_t ClusterHeightNow() const {
    return static_cast<uint64_t>(std::floor(static_cast<double>(NowMs() - genesis_ms_) * rate_ / 1000.0));
  }

  TempDir dir_;
  int64_t genesis_ms_ = NowMs();
  double rate_ = 300;
  double st_rate_ = 600;
};

TEST_F(LedgerdProcessTest, RestartedReplicaCatchesUpByStateTransferAndMatchesItsPeer) {
  Replica a = MakeReplica("a");
  Replica b = MakeReplica("b");
  Start(a);
  Start(b);
  LedgerControlClient ca(a.socket, Fast());
  ASSERT_TRUE(WaitForStatus(ca, [](const LedgerStatus& s) { return s.last_reachable >= 60; }));
  Stop(a);
  const uint64_t stopped_at = std::stoull(
      json::parse(RunDbTool({a.db, "getLastReachableBlockID"}, dir_.path()).out)["lastReachableBlockID"]
          .get<std::string>());
  // Wait (on the cluster clock, not a guess) until the replica is far behind.
  ASSERT_TRUE(WaitUntil([&] { return ClusterHeightNow() >= stopped_at + 450; }, 20s));

  Start(a);
  bool saw_gap = false;
  LedgerStatus gap{};
  ASSERT_TRUE(WaitForStatus(
      ca,
      [&](const LedgerStatus& s) {
        if (s.last > s.last_reachable && s.state_transfer_active) {
          if (!saw_gap) gap = s;
          saw_gap = true;
        }
        return saw_gap && !s.state_transfer_active && s.last == s.last_reachable &&
               s.last_reachable + 20 >= ClusterHeightNow();
      },
      30s))
      << a.process->Log();
  EXPECT_TRUE(saw_gap);
  EXPECT_GT(gap.last, gap.last_reachable);
  EXPECT_GE(gap.last, stopped_at + 450);
  EXPECT_NE(a.process->Log().find("state transfer: begin"), std::string::npos);

  Stop(a);
  Stop(b);
  auto cmp = RunDbTool({a.db, "compareTo", b.db}, dir_.path());
  ASSERT_EQ(cmp.exit_code, 0) << cmp.out << cmp.err;
  const json j = json::parse(cmp.out);
  EXPECT_EQ(j["result"], "match");
  EXPECT_GE(std::stoull(j["commonTo"].get<std::string>()), stopped_at + 450);
  auto verify = RunDbTool({a.db, "verifyChain"}, dir_.path());
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

TEST_F(LedgerdProcessTest, WedgeStopsAtTheNextButOneCheckpointSurvivesRestartAndUnwedgeResumes) {
  rate_ = 400;
  Replica a = MakeReplica("a");
  Start(a);
  LedgerControlClient client(a.socket, Fast());
  ASSERT_TRUE(WaitForStatus(client, [](const LedgerStatus& s) { return s.last_reachable >= 20; }));
  const uint64_t seq = MustStatus(client).last_reachable;
  const uint64_t stop = (seq + 300) - ((seq + 300) % 150);

  auto bad = client.Wedge(stop + 1);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  auto accepted = client.Wedge(stop);
  ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
  EXPECT_EQ(accepted->stop_point, stop);
  ASSERT_TRUE(WaitForStatus(client, [](const LedgerStatus& s) { return s.wedged; })) << a.process->Log();
  LedgerStatus s = MustStatus(client);
  EXPECT_EQ(s.last_reachable, stop);
  EXPECT_EQ(s.last, stop);

  auto passed = client.Wedge(stop - 150);
  EXPECT_EQ(passed.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(passed.status().message().find("already past stop point"), std::string::npos);

  Stop(a);
  Start(a);
  s = MustStatus(client);
  EXPECT_TRUE(s.wedged);
  EXPECT_EQ(s.stop_point, stop);
  EXPECT_EQ(s.last_reachable, stop);

  ASSERT_TRUE(client.Unwedge().ok());
  ASSERT_TRUE(WaitForStatus(client, [&](const LedgerStatus& st) { return st.last_reachable > stop; }));
  s = MustStatus(client);
  EXPECT_FALSE(s.wedged);
  EXPECT_EQ(s.stop_point, 0u);
  // Resumed from the stop point at the configured rate, not at the clock's height.
  EXPECT_LT(s.last_reachable, stop + 150);
  EXPECT_FALSE(s.state_transfer_active);
  Stop(a);
}

TEST_F(LedgerdProcessTest, ReadOnlyLedgerdServesQueriesAndRefusesWrites) {
  rate_ = 0;  // as fast as possible, to fill the DB
  Replica a = MakeReplica("a");
  Start(a);
  LedgerControlClient client(a.socket, Fast());
  ASSERT_TRUE(WaitForStatus(client, [](const LedgerStatus& s) { return s.last_reachable >= 300; }));
  Stop(a);

  Start(a, {"--read-only"});
  LedgerStatus s = MustStatus(client);
  EXPECT_TRUE(s.read_only);
  const uint64_t height = s.last_reachable;
  ASSERT_GE(height, 300u);

  auto block = client.GetBlock(5, true);
  ASSERT_TRUE(block.ok()) << block.status().ToString();
  EXPECT_EQ(block->id, 5u);
  EXPECT_EQ(block->num_updates, 2u);
  EXPECT_EQ(block->digest_hex.size(), 64u);
  EXPECT_EQ(block->raw.size(), block->size);
  auto key = client.GetKey("time");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->value, std::to_string(height));
  EXPECT_EQ(client.GetKey("key-5", 100)->block_id, 69u);
  EXPECT_EQ(client.GetBlock(height + 1).status().code(), StatusCode::kNotFound);

  auto wedge = client.Wedge(((height / 150) + 2) * 150);
  EXPECT_EQ(wedge.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(wedge.status().message().find("read-only"), std::string::npos) << wedge.status().message();
  EXPECT_EQ(client.Unwedge().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(client.SetFault(true).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(client.Checkpoint(dir_ / "cp").status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(MustStatus(client).last_reachable, height);
  Stop(a);
}

TEST_F(LedgerdProcessTest, SigtermExitsZeroRemovesTheSocketAndLeavesAVerifiableDb) {
  rate_ = 500;
  Replica a = MakeReplica("a");
  Start(a);
  LedgerControlClient client(a.socket, Fast());
  ASSERT_TRUE(WaitForStatus(client, [](const LedgerStatus& s) { return s.last_reachable >= 100; }));
  const uint64_t seen = MustStatus(client).last_reachable;
  Stop(a);
  EXPECT_FALSE(std::filesystem::exists(a.socket));
  EXPECT_NE(a.process->Log().find("received SIGTERM"), std::string::npos);
  auto verify = RunDbTool({a.db, "verifyChain"}, dir_.path());
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  auto last = RunDbTool({a.db, "getLastBlockID"}, dir_.path());
  ASSERT_EQ(last.exit_code, 0);
  EXPECT_GE(std::stoull(json::parse(last.out)["lastBlockID"].get<std::string>()), seen);
}

TEST_F(LedgerdProcessTest, CheckpointCreatesAVerifiableCopyWithTheReportedBlocks) {
  Replica a = MakeReplica("a");
  Start(a);
  LedgerControlClient client(a.socket, Fast());
  ASSERT_TRUE(WaitForStatus(client, [](const LedgerStatus& s) { return s.last_reachable >= 50; }));
  auto cp = client.Checkpoint(dir_ / "cp");
  ASSERT_TRUE(cp.ok()) << cp.status().ToString();
  EXPECT_GE(cp->last_reachable, 50u);
  EXPECT_EQ(client.Checkpoint(dir_ / "cp").status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(client.Checkpoint("relative/cp").status().code(), StatusCode::kInvalidArgument);
  auto last = RunDbTool({dir_ / "cp", "getLastReachableBlockID"}, dir_.path());
  ASSERT_EQ(last.exit_code, 0) << last.err;
  EXPECT_EQ(json::parse(last.out)["lastReachableBlockID"], std::to_string(cp->last_reachable));
  EXPECT_EQ(RunDbTool({dir_ / "cp", "verifyChain"}, dir_.path()).exit_code, 0);
  Stop(a);
}

TEST_F(LedgerdProcessTest, FaultFlagSwitchesProductionToSlowPath) {
  Replica a = MakeReplica("a");
  Start(a, {"--fault-slow-path"});
  LedgerControlClient client(a.socket, Fast());
  ASSERT_TRUE(WaitForStatus(client, [](const LedgerStatus& s) { return s.slow_paths >= 10; }));
  LedgerStatus s = MustStatus(client);
  EXPECT_TRUE(s.slow_path_fault);
  EXPECT_EQ(s.fast_paths, 0u);
  ASSERT_TRUE(client.SetFault(false).ok());
  const uint64_t fast_before = MustStatus(client).fast_paths;
  ASSERT_TRUE(WaitForStatus(client, [&](const LedgerStatus& st) { return st.fast_paths >= fast_before + 10; }));
  EXPECT_TRUE(WaitForStatus(client, [](const LedgerStatus& st) { return st.blocks_per_sec > 100; }));
  Stop(a);
}

TEST_F(LedgerdProcessTest, MalformedBytesOnTheControlSocketGetErrorRepliesAndServingContinues) {
  Replica a = MakeReplica("a");
  Start(a);
  zmq::context_t ctx(1);
  auto exchange = [&](const std::string& bytes) -> std::optional<ControlReplyMsg> {
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect("ipc://" + a.socket);
    req.send(zmq::buffer(bytes), zmq::send_flags::none);
    zmq::pollitem_t item{req.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(5000)) <= 0) return std::nullopt;
    zmq::message_t reply;
    if (!req.recv(reply)) return std::nullopt;
    auto decoded = DecodeControlReply(std::string_view(static_cast<const char*>(reply.data()), reply.size()));
    if (!decoded.ok()) return std::nullopt;
    return std::move(decoded).value();
  };

  // A well-formed buffer whose union type is out of range.
  flatbuffers::FlatBufferBuilder fbb;
  auto body = ledgerctl::CreateStatusRequest(fbb);
  ledgerctl::ControlRequestBuilder rb(fbb);
  rb.add_request_id(5);
  rb.add_body_type(static_cast<ledgerctl::RequestBody>(99));
  rb.add_body(body.Union());
  fbb.Finish(rb.Finish(), ledgerctl::ControlRequestIdentifier());
  const std::string bad_union(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());

  for (const std::string& garbage : {std::string(), std::string("not a flatbuffer"), std::string(4096, '\x7f'),
                                     bad_union}) {
    auto reply = exchange(garbage);
    ASSERT_TRUE(reply.has_value()) << "no reply to " << garbage.size() << " garbage bytes\n" << a.process->Log();
    EXPECT_FALSE(reply->status.ok());
    EXPECT_EQ(reply->status.code(), StatusCode::kInvalidArgument);
  }
  // An oversized message is dropped by ZMQ_MAXMSGSIZE; the server survives.
  {
    zmq::socket_t req(ctx, zmq::socket_type::req);
    req.set(zmq::sockopt::linger, 0);
    req.connect("ipc://" + a.socket);
    req.send(zmq::buffer(std::string(200000, 'x')), zmq::send_flags::none);
  }
  LedgerControlClient client(a.socket, Fast());
  auto s = client.GetStatus();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(a.process->running());
  Stop(a);
}

TEST_F(LedgerdProcessTest, ClientTimesOutWithoutServerThenRecovers) {
  Replica a = MakeReplica("a");
  ControlClientOptions o;
  o.timeout = 200ms;
  LedgerControlClient client(a.socket, o);
  EXPECT_EQ(client.GetStatus().status().code(), StatusCode::kTimeout);
  Start(a);
  ASSERT_TRUE(WaitUntil([&] { return client.GetStatus().ok(); }, 10s));
  Stop(a);
}

TEST_F(LedgerdProcessTest, SecondLedgerdOnALiveSocketIsRefused) {
  Replica a = MakeReplica("a");
  Start(a);
  Replica b = MakeReplica("b");
  b.socket = a.socket;
  ChildProcess second({BinPath("ledgerd"), "--db", b.db, "--control", b.socket}, b.db + ".log");
  auto rc = second.Wait(15s);
  ASSERT_TRUE(rc.has_value());
  EXPECT_EQ(*rc, 1);
  EXPECT_NE(second.Log().find("another ledgerd"), std::string::npos) << second.Log();
  LedgerControlClient client(a.socket, Fast());
  EXPECT_TRUE(client.GetStatus().ok());
  Stop(a);
}

}  // namespace
}  // namespace ledgerkeep::ledger
