#include "broker/event_log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

namespace ledgerkeep {
namespace {

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lk-evlog-XXXXXX";
    dir_ = mkdtemp(tmpl);
    Open();
  }
  void TearDown() override {
    log_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open(EventLogOptions o = {}) {
    log_.reset();
    store_.reset();
    store_ = std::move(*KvStore::Open(dir_, {"events"}));
    log_ = std::make_unique<EventLog>(store_.get(), 0, o, &clock_, "broker");
    ASSERT_TRUE(log_->Load().ok());
  }
  void Append(const std::string& kind, const std::string& node, int n) {
    KvStore::Batch b;
    for (int i = 0; i < n; ++i) {
      wire::NoteT note;
      note.text = kind + "-" + std::to_string(i);
      wire::EventBodyUnion body;
      body.Set(std::move(note));
      log_->Stage(b, kind, node, std::move(body));
    }
    ASSERT_TRUE(store_->Write(b, true).ok());
    log_->Commit();
  }
  std::vector<uint64_t> Seqs(const EventPageData& p) {
    std::vector<uint64_t> out;
    for (const auto& e : p.events) out.push_back((*DecodeEnvelope(e))->body_as_Event()->seq());
    return out;
  }

  ManualClock clock_;
  std::string dir_;
  std::unique_ptr<KvStore> store_;
  std::unique_ptr<EventLog> log_;
};

TEST_F(EventLogTest, SequencesAreDenseAndSurviveReopen) {
  Append("status", "r1", 3);
  Append("command", "r2", 2);
  EXPECT_EQ(log_->head_seq(), 5u);
  Open();
  EXPECT_EQ(log_->head_seq(), 5u);
  Append("status", "r1", 1);
  auto page = log_->Read(1, 100, "", 1 << 20);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(Seqs(*page), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
}

TEST_F(EventLogTest, StagedEventsAreInvisibleUntilCommitAndAbortReusesSeqs) {
  KvStore::Batch b;
  wire::EventBodyUnion body;
  body.Set(wire::NoteT{});
  log_->Stage(b, "note", "x", std::move(body));
  EXPECT_EQ(log_->head_seq(), 0u);
  EXPECT_TRUE(log_->Read(1, 10, "", 1 << 20)->events.empty());
  log_->Abort();  // the write "failed"
  Append("note", "x", 1);
  EXPECT_EQ(log_->head_seq(), 1u);
}

TEST_F(EventLogTest, FilterByKindAndNodePrefixStillAdvancesNextSeq) {
  Append("status", "r1", 2);   // 1,2
  Append("command", "r1", 2);  // 3,4
  Append("status", "r2", 1);   // 5
  auto page = log_->Read(1, 100, "status.r2", 1 << 20);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(Seqs(*page), (std::vector<uint64_t>{5}));
  EXPECT_EQ(page->next_seq, 6u);
  auto cmd = log_->Read(1, 100, "command", 1 << 20);
  EXPECT_EQ(Seqs(*cmd), (std::vector<uint64_t>{3, 4}));
}

TEST_F(EventLogTest, PagesRespectCountAndByteLimits) {
  Append("note", "n", 50);
  auto p = log_->Read(10, 5, "", 1 << 20);
  EXPECT_EQ(Seqs(*p), (std::vector<uint64_t>{10, 11, 12, 13, 14}));
  EXPECT_EQ(p->next_seq, 15u);
  auto small = log_->Read(1, 1000, "", 1);  // tiny byte budget: still one event
  EXPECT_EQ(small->events.size(), 1u);
}

TEST_F(EventLogTest, NewestMatchingEventsAreFoundBehindManyNewerOnesThatDoNotMatch) {
  // `events --filter command.r4` was empty: the filter saw only the last 50.
  Append("command", "r4", 3);    // 1..3
  Append("status", "r1", 2000);  // 4..2003
  Append("command", "r1", 5);    // 2004..2008
  auto page = log_->ReadNewest(UINT64_MAX, 2, "command.r4", 1 << 20, 100'000);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(Seqs(*page), (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(page->next_seq, 1u);  // one more may be older
  auto all = log_->ReadNewest(UINT64_MAX, 50, "command.r4", 1 << 20, 100'000);
  EXPECT_EQ(Seqs(*all), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(all->next_seq, 0u);  // the oldest entry was reached
  auto none = log_->ReadNewest(UINT64_MAX, 50, "command.r9", 1 << 20, 100'000);
  EXPECT_TRUE(none->events.empty());
  EXPECT_EQ(none->next_seq, 0u);
  // No filter: the last N; a start below the head counts from there.
  EXPECT_EQ(Seqs(*log_->ReadNewest(UINT64_MAX, 3, "", 1 << 20, 100'000)),
            (std::vector<uint64_t>{2006, 2007, 2008}));
  EXPECT_EQ(Seqs(*log_->ReadNewest(2004, 2, "command", 1 << 20, 100'000)), (std::vector<uint64_t>{3, 2004}));
}

TEST_F(EventLogTest, NewestPagesWithABoundedScanContinueWhereTheyStopped) {
  Append("command", "r4", 3);    // 1..3
  Append("status", "r1", 2500);  // 4..2503
  std::vector<uint64_t> found;
  uint64_t upto = UINT64_MAX;
  int pages = 0;
  while (found.size() < 2) {
    auto page = log_->ReadNewest(upto, static_cast<uint32_t>(2 - found.size()), "command.r4", 1 << 20, 1000);
    ASSERT_TRUE(page.ok());
    ASSERT_LT(++pages, 10) << "no progress";
    const auto seqs = Seqs(*page);
    found.insert(found.begin(), seqs.begin(), seqs.end());
    if (page->next_seq == 0) break;
    EXPECT_LT(page->next_seq, upto);
    upto = page->next_seq;
  }
  EXPECT_EQ(found, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(pages, 3);  // 2503..1504, 1503..504, 503..2
}

TEST_F(EventLogTest, NewestPagesCutByTheirByteLimitReplayTheWholeLogExactlyOnce) {
  Append("note", "n", 300);
  std::vector<uint64_t> replayed;
  uint64_t upto = UINT64_MAX;
  while (true) {
    auto page = log_->ReadNewest(upto, 1000, "", 700, 100'000);  // a few events per page
    ASSERT_TRUE(page.ok());
    ASSERT_FALSE(page->events.empty());
    const auto seqs = Seqs(*page);
    replayed.insert(replayed.begin(), seqs.begin(), seqs.end());
    if (page->next_seq == 0) break;
    EXPECT_EQ(page->next_seq, seqs.front() - 1) << "a page skipped or repeated an event";
    upto = page->next_seq;
  }
  std::vector<uint64_t> want(300);
  for (uint64_t i = 0; i < 300; ++i) want[i] = i + 1;
  EXPECT_EQ(replayed, want);
}

TEST_F(EventLogTest, NewestStopsAtTheOldestRetainedEvent) {
  EventLogOptions o;
  o.retain_count = 10;
  Open(o);
  Append("command", "r4", 5);  // 1..5, dropped below
  Append("status", "r1", 20);  // 6..25
  KvStore::Batch b;
  ASSERT_TRUE(log_->StageRetention(b).ok());
  ASSERT_TRUE(store_->Write(b, true).ok());
  log_->Commit();
  auto page = log_->ReadNewest(UINT64_MAX, 5, "command.r4", 1 << 20, 100'000);
  ASSERT_TRUE(page.ok());
  EXPECT_TRUE(page->events.empty());
  EXPECT_EQ(page->next_seq, 0u);
  EXPECT_EQ(log_->ReadNewest(3, 5, "", 1 << 20, 100'000)->next_seq, 0u);
}

// Replays [1, head] through pages of at most `max_bytes` (and `prefix`),
// as FetchEvents does; fails the test if a page makes no progress.
std::vector<std::string> ReplayThroughPages(const EventLog& log, size_t max_bytes,
                                            const std::string& prefix) {
  std::vector<std::string> out;
  uint64_t from = 1;
  while (from <= log.head_seq()) {
    auto page = log.Read(from, 1000, prefix, max_bytes);
    EXPECT_TRUE(page.ok()) << page.status().ToString();
    if (!page.ok()) break;
    EXPECT_GT(page->next_seq, from) << "a page at " << from << " made no progress";
    if (page->next_seq <= from) break;
    for (auto& e : page->events) out.push_back(std::move(e));
    from = page->next_seq;
  }
  return out;
}

// A page cut by its byte limit must start the next page with the event that
// did not fit: next_seq one too far skips it, and only a whole-log replay
// through small pages shows that.
TEST_F(EventLogTest, AWholeLogReplayedThroughTinyPagesHasNoGapAndNoDuplicate) {
  std::mt19937 rng(20240613);
  const char* kinds[] = {"status", "command", "note", "backup"};
  KvStore::Batch b;
  for (int i = 0; i < 400; ++i) {
    wire::NoteT note;
    note.text = std::string(rng() % 3000, static_cast<char>('a' + i % 26));  // 0..3 KB
    wire::EventBodyUnion body;
    body.Set(std::move(note));
    log_->Stage(b, kinds[rng() % 4], "r" + std::to_string(1 + rng() % 3), std::move(body));
  }
  ASSERT_TRUE(store_->Write(b, true).ok());
  log_->Commit();
  for (const std::string prefix : {"", "status", "command.r2"}) {
    auto whole = log_->Read(1, 100'000, prefix, size_t{1} << 30);
    ASSERT_TRUE(whole.ok());
    ASSERT_FALSE(whole->events.empty()) << prefix;
    for (size_t max_bytes :
         {size_t{1}, size_t{200}, size_t{1500}, size_t{4000}, size_t{10'000}, size_t{64'000}}) {
      const auto replayed = ReplayThroughPages(*log_, max_bytes, prefix);
      std::vector<uint64_t> got, want;
      for (const auto& e : replayed) got.push_back((*DecodeEnvelope(e))->body_as_Event()->seq());
      for (const auto& e : whole->events) want.push_back((*DecodeEnvelope(e))->body_as_Event()->seq());
      ASSERT_EQ(got, want) << "pages of " << max_bytes << " bytes, filter '" << prefix << "'";
      EXPECT_TRUE(replayed == whole->events) << "pages of " << max_bytes << " bytes: same seqs, other bytes";
    }
  }
}

TEST_F(EventLogTest, RetentionByCountKeepsTheNewest) {
  EventLogOptions o;
  o.retain_count = 10;
  Open(o);
  Append("note", "n", 25);
  KvStore::Batch b;
  ASSERT_TRUE(log_->StageRetention(b).ok());
  ASSERT_TRUE(store_->Write(b, true).ok());
  log_->Commit();
  EXPECT_EQ(log_->first_seq(), 16u);
  auto page = log_->Read(1, 100, "", 1 << 20);
  EXPECT_EQ(page->first_seq, 16u);
  EXPECT_EQ(Seqs(*page).front(), 16u);
  EXPECT_EQ(Seqs(*page).back(), 25u);
}

TEST_F(EventLogTest, RetentionByAgeNeverDropsTheNewestEvent) {
  EventLogOptions o;
  o.retain_age_ms = 1000;
  Open(o);
  Append("note", "n", 5);
  clock_.Advance(5000);
  KvStore::Batch b;
  ASSERT_TRUE(log_->StageRetention(b).ok());
  ASSERT_TRUE(store_->Write(b, true).ok());
  log_->Commit();
  auto page = log_->Read(1, 100, "", 1 << 20);
  EXPECT_EQ(Seqs(*page), (std::vector<uint64_t>{5}));
}

}  // namespace
}  // namespace ledgerkeep
