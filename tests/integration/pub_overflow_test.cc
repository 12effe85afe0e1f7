// PUB loses messages when its send queue is full; reliable delivery must not
// (DESIGN.md §2): every command dropped on `cmd` reaches its target through
// ctl redelivery. The binary has no flag for the PUB high-water mark, so the
// broker runs in this process (real TCP + CURVE) with pub_hwm = 1, and the
// agents are the real ledgerkeep-agent processes.
#include <gtest/gtest.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>

#include "broker/broker.h"
#include "tests/support/raw_peer.h"
#include "tests/support/status_macros.h"
#include "tests/support/test_cluster.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {
namespace {

using namespace std::chrono_literals;

// Counts broker log lines that contain a phrase: the evidence that the
// overflow really happened (otherwise this test would prove nothing).
class PhraseCounter final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit PhraseCounter(std::string phrase) : phrase_(std::move(phrase)) {}
  int count() const { return count_.load(); }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    if (text.find(phrase_) != std::string_view::npos) ++count_;
  }
  void flush_() override {}

 private:
  std::string phrase_;
  std::atomic<int> count_{0};
};

class PubOverflowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    redeliveries_ = std::make_shared<PhraseCounter>("redelivering command");
    redeliveries_->set_level(spdlog::level::debug);
    auto console = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    console->set_level(spdlog::level::warn);
    previous_ = spdlog::default_logger();
    auto logger = std::make_shared<spdlog::logger>(
        "itest-broker", spdlog::sinks_init_list{redeliveries_, console});
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
  }
  void TearDown() override {
    broker_.reset();  // before the logger it logs to
    spdlog::set_default_logger(previous_);
  }

  std::shared_ptr<PhraseCounter> redeliveries_;
  std::shared_ptr<spdlog::logger> previous_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(PubOverflowTest, CommandsDroppedByAFullPubQueueAreRedeliveredOverCtl) {
  constexpr int kCommands = 300;
  LK_ASSERT_OK_AND_ASSIGN(auto cluster, TestCluster::Create({}));
  BrokerOptions bo = cluster->InProcessBrokerOptions();
  bo.pub_hwm = 1;
  bo.tracker.ack_timeout_ms = 300;
  LK_ASSERT_OK_AND_ASSIGN(broker_, Broker::Start(std::move(bo)));
  for (const auto& n : cluster->AgentNodes()) LK_ASSERT_OK(cluster->StartAgent(n));
  LK_ASSERT_OK(cluster->WaitAllAlive(15s));
  const size_t agents = cluster->AgentNodes().size();

  // One operator connection fires every IssueCommand without waiting, so the
  // broker takes many in one loop turn and publishes them back to back into
  // a PUB queue of one message: most are dropped there.
  RawPeerOptions po;
  po.endpoint = cluster->Config().ConnectEndpoint(cluster->Config().ctl_port);
  po.key = cluster->Key("operator");
  po.server_public_z85 = cluster->Config().broker_public_key;
  LK_ASSERT_OK_AND_ASSIGN(auto op, RawPeer::Connect(po));
  LK_ASSERT_OK(op->WaitHandshake(5s));
  for (uint64_t msg_id = 1; msg_id <= kCommands; ++msg_id) {
    wire::IssueCommandT ic;
    ic.target = std::make_unique<wire::TargetT>();
    ic.target->all = true;
    ic.timeout_ms = 60'000;
    wire::PingT ping;
    ping.note = "overflow";
    ic.body.Set(std::move(ping));
    wire::BodyUnion b;
    b.Set(std::move(ic));
    ASSERT_TRUE(op->Send(MakeEnvelope("operator", msg_id, std::move(b)))) << "send " << msg_id;
  }

  // The broker answers each IssueCommand (reply_to = its msg_id) and pushes
  // the final status of each command to its issuer.
  std::map<uint64_t, uint64_t> cmd_of_request;
  std::map<uint64_t, wire::CommandStatusT> finished;
  std::vector<std::string> errors;
  const bool all_done = WaitUntil(
      [&] {
        while (true) {
          auto env = op->ReceiveEnvelope(0ms);
          if (!env.ok()) break;
          if (const auto* err = (*env)->body_as_ErrorReply()) {
            errors.push_back(err->message() ? err->message()->str() : "?");
            continue;
          }
          const auto* st = (*env)->body_as_CommandStatus();
          if (st == nullptr) continue;
          if ((*env)->reply_to() != 0) cmd_of_request[(*env)->reply_to()] = st->cmd_id();
          if (st->finished()) st->UnPackTo(&finished[st->cmd_id()]);
        }
        return finished.size() >= kCommands || !errors.empty();
      },
      60s, 5ms);
  ASSERT_TRUE(errors.empty()) << "broker refused a command: " << errors.front();
  ASSERT_TRUE(all_done) << finished.size() << " of " << kCommands << " commands finished";
  ASSERT_EQ(cmd_of_request.size(), static_cast<size_t>(kCommands));

  int not_ok = 0;
  for (const auto& [req, cmd_id] : cmd_of_request) {
    auto it = finished.find(cmd_id);
    ASSERT_NE(it, finished.end()) << "no final status for command " << cmd_id;
    EXPECT_EQ(it->second.targets.size(), agents);
    if (!AllTargetsOk(it->second).ok() && ++not_ok <= 5) {
      ADD_FAILURE() << AllTargetsOk(it->second).message();
    }
  }
  EXPECT_EQ(not_ok, 0) << "commands lost to the PUB overflow";
  EXPECT_GT(redeliveries_->count(), 0)
      << "no command was redelivered: the PUB queue never overflowed, so this run proved nothing";
  std::printf("[pub-overflow] %d redeliveries over ctl for %d commands x %zu agents\n",
              redeliveries_->count(), kCommands, agents);
}

}  // namespace
}  // namespace ledgerkeep::test
