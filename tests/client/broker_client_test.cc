// BrokerClient against a real in-process Broker on loopback (CURVE on),
// whose event log the test writes first, so every expectation is computed
// from a log whose contents the test knows.
#include "client/broker_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "broker/broker.h"
#include "broker/event_log.h"
#include "common/clock.h"
#include "common/kv_store.h"
#include "tests/support/status_macros.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_cluster.h"

namespace ledgerkeep {
namespace {

// The broker's column families (broker/broker.cc); events are the fifth.
const std::vector<std::string> kBrokerCfs = {"meta", "nodes", "commands", "targets", "events", "workflows"};
constexpr int kEventsCf = 4;
constexpr uint64_t kEvents = 40;
// The events about node "keep" (the rest are about "other"), by position.
constexpr uint64_t kKeepAt[] = {5, 17, 30};

class BrokerClientTest : public ::testing::Test {
 protected:
  // Writes the log, then starts a broker on it whose answers to FetchEvents
  // hold at most `page_bytes` of events (at least one event).
  void StartBroker(size_t page_bytes) {
    {
      LK_ASSERT_OK_AND_ASSIGN(auto store, KvStore::Open(dir_ / "state", kBrokerCfs));
      EventLog log(store.get(), kEventsCf, EventLogOptions{}, Clock::System(), "broker");
      LK_ASSERT_OK(log.Load());
      KvStore::Batch batch;
      for (uint64_t i = 0; i < kEvents; ++i) {
        const bool keep = std::find(std::begin(kKeepAt), std::end(kKeepAt), i) != std::end(kKeepAt);
        wire::NoteT note;
        note.level = "info";
        note.text = "event " + std::to_string(i);
        wire::EventBodyUnion body;
        body.Set(std::move(note));
        (void)log.Stage(batch, "note", keep ? "keep" : "other", std::move(body));
      }
      LK_ASSERT_OK(store->Write(batch, /*sync=*/true));
      log.Commit();
    }
    LK_ASSERT_OK_AND_ASSIGN(auto ports, test::PickFreeLoopbackPorts(3));
    LK_ASSERT_OK_AND_ASSIGN(CurveKeyPair broker_key, GenerateCurveKeyPair("broker"));
    LK_ASSERT_OK_AND_ASSIGN(CurveKeyPair operator_key, GenerateCurveKeyPair("operator"));
    ClusterConfig config;
    config.path = "(in memory)";
    config.cluster_id = "client-test";
    config.connect_host = "127.0.0.1";
    config.bind_host = "127.0.0.1";
    config.ctl_port = ports[0];
    config.cmd_port = ports[1];
    config.events_port = ports[2];
    config.broker_public_key = broker_key.public_z85;
    config.allow.push_back({"operator", wire::Role::Operator, operator_key.public_z85});
    BrokerOptions bo;
    bo.config = config;
    bo.key = broker_key;
    bo.data_dir = dir_.path();
    bo.max_event_page_bytes = page_bytes;
    LK_ASSERT_OK_AND_ASSIGN(broker_, Broker::Start(std::move(bo)));
    ClientOptions co;
    co.config = config;
    co.key = operator_key;
    co.timeout_ms = 10'000;
    LK_ASSERT_OK_AND_ASSIGN(client_, BrokerClient::Connect(std::move(co)));
  }

  // Every event matching `prefix`, oldest first, read forwards page by page.
  std::vector<uint64_t> MatchingSeqs(const std::string& prefix) {
    std::vector<uint64_t> seqs;
    uint64_t from = 1;
    while (true) {
      auto page = client_->FetchEvents(from, 1000, prefix);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok() || page->events.empty()) break;
      for (const auto& env : page->events) seqs.push_back(env->body_as_Event()->seq());
      from = page->next_seq;
      if (from > page->head_seq) break;
    }
    return seqs;
  }

  uint64_t Head() {
    auto page = client_->FetchEvents(UINT64_MAX, 1, "");
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    return page.ok() ? page->head_seq : 0;
  }

  test::TempDir dir_{"lk-client-"};
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<BrokerClient> client_;
};

TEST_F(BrokerClientTest, NewestEventsWithoutPrefixCountBackFromTheHead) {
  ASSERT_NO_FATAL_FAILURE(StartBroker(768 * 1024));
  const uint64_t head = Head();
  ASSERT_GE(head, kEvents);
  LK_ASSERT_OK_AND_ASSIGN(uint64_t ten, client_->StartOfNewestEvents(10, ""));
  EXPECT_EQ(ten, head - 9);
  LK_ASSERT_OK_AND_ASSIGN(uint64_t all, client_->StartOfNewestEvents(head + 5, ""));
  EXPECT_EQ(all, 1u);
}

// One event per page: finding the newest matches takes one request per match.
TEST_F(BrokerClientTest, NewestMatchingEventsAreFoundAcrossBackwardPages) {
  ASSERT_NO_FATAL_FAILURE(StartBroker(1));
  const std::vector<uint64_t> keep = MatchingSeqs("note.keep");
  ASSERT_EQ(keep.size(), std::size(kKeepAt));
  LK_ASSERT_OK_AND_ASSIGN(uint64_t one, client_->StartOfNewestEvents(1, "note.keep"));
  EXPECT_EQ(one, keep[2]);
  LK_ASSERT_OK_AND_ASSIGN(uint64_t two, client_->StartOfNewestEvents(2, "note.keep"));
  EXPECT_EQ(two, keep[1]);
  LK_ASSERT_OK_AND_ASSIGN(uint64_t more, client_->StartOfNewestEvents(50, "note.keep"));
  EXPECT_EQ(more, keep[0]);
}

TEST_F(BrokerClientTest, NoMatchingEventStartsAfterTheHead) {
  ASSERT_NO_FATAL_FAILURE(StartBroker(768 * 1024));
  const uint64_t head = Head();
  LK_ASSERT_OK_AND_ASSIGN(uint64_t start, client_->StartOfNewestEvents(5, "note.nobody"));
  EXPECT_EQ(start, head + 1);
}

}  // namespace
}  // namespace ledgerkeep
