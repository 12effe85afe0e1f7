#include "agents/agent_journal.h"

#include <map>

#include "common/codec.h"
#include "common/kv_store.h"

namespace ledgerkeep {
namespace {

enum JournalCf : int { kCfCommands = 0, kCfOutbox = 1, kCfMeta = 2 };
constexpr const char* kLastSeqKey = "last_seq";
// Completed commands remembered for dedupe. Older ones are forgotten: the
// broker never redelivers a command whose result it stored.
constexpr uint64_t kKeepCommands = 10'000;

// Value of a command record: 'A' (accepted) or 'D' + packed result.
class DurableJournal final : public AgentJournal {
 public:
  explicit DurableJournal(std::unique_ptr<KvStore> store) : store_(std::move(store)) {}

  Status Load() {
    LK_ASSIGN_OR_RETURN(auto v, store_->Get(kCfMeta, kLastSeqKey));
    if (v && v->size() == 8) last_seq_ = DecodeU64BE(*v);
    return Status::OK();
  }

  Result<std::optional<JournaledCommand>> GetCommand(uint64_t cmd_id) override {
    LK_ASSIGN_OR_RETURN(auto v, store_->Get(kCfCommands, EncodeU64BE(cmd_id)));
    if (!v || v->empty()) return std::optional<JournaledCommand>();
    JournaledCommand c;
    c.done = (*v)[0] == 'D';
    if (c.done) c.result = v->substr(1);
    return std::optional<JournaledCommand>(std::move(c));
  }

  Status Accept(uint64_t cmd_id, const OutboxEntry& ack) override {
    KvStore::Batch b;
    b.Put(kCfCommands, EncodeU64BE(cmd_id), "A");
    StageReport(b, ack);
    return store_->Write(b, false);
  }

  Status Complete(uint64_t cmd_id, const std::string& result, const OutboxEntry& report) override {
    KvStore::Batch b;
    b.Put(kCfCommands, EncodeU64BE(cmd_id), "D" + result);
    if (cmd_id > kKeepCommands) b.DeleteRange(kCfCommands, EncodeU64BE(0), EncodeU64BE(cmd_id - kKeepCommands));
    StageReport(b, report);
    return store_->Write(b, false);
  }

  Status Append(const OutboxEntry& report) override {
    KvStore::Batch b;
    StageReport(b, report);
    return store_->Write(b, false);
  }

  Status AckUpTo(uint64_t upto) override {
    KvStore::Batch b;
    b.DeleteRange(kCfOutbox, EncodeU64BE(0), EncodeU64BE(upto + 1));
    return store_->Write(b, false);
  }

  Result<std::vector<OutboxEntry>> Unacked(uint64_t after) override {
    std::vector<OutboxEntry> out;
    LK_RETURN_IF_ERROR(store_->Scan(kCfOutbox, EncodeU64BE(after + 1), "",
                                    [&](std::string_view k, std::string_view v) {
                                      out.push_back({DecodeU64BE(k), std::string(v)});
                                      return true;
                                    }));
    return out;
  }

  Result<std::vector<uint64_t>> Interrupted() override {
    std::vector<uint64_t> out;
    LK_RETURN_IF_ERROR(store_->Scan(kCfCommands, "", "", [&](std::string_view k, std::string_view v) {
      if (!v.empty() && v[0] == 'A') out.push_back(DecodeU64BE(k));
      return true;
    }));
    return out;
  }

  uint64_t last_seq() const override { return last_seq_; }

 private:
  void StageReport(KvStore::Batch& b, const OutboxEntry& e) {
    b.Put(kCfOutbox, EncodeU64BE(e.seq), e.envelope);
    if (e.seq > last_seq_) {
      last_seq_ = e.seq;
      b.Put(kCfMeta, kLastSeqKey, EncodeU64BE(last_seq_));
    }
  }

  std::unique_ptr<KvStore> store_;
  uint64_t last_seq_ = 0;
};

class MemoryJournal final : public AgentJournal {
 public:
  Result<std::optional<JournaledCommand>> GetCommand(uint64_t cmd_id) override {
    auto it = commands_.find(cmd_id);
    if (it == commands_.end()) return std::optional<JournaledCommand>();
    return std::optional<JournaledCommand>(it->second);
  }
  Status Accept(uint64_t cmd_id, const OutboxEntry& ack) override {
    commands_[cmd_id] = JournaledCommand{};
    return Append(ack);
  }
  Status Complete(uint64_t cmd_id, const std::string& result, const OutboxEntry& report) override {
    commands_[cmd_id] = JournaledCommand{true, result};
    while (commands_.size() > kKeepCommands) commands_.erase(commands_.begin());
    return Append(report);
  }
  Status Append(const OutboxEntry& report) override {
    outbox_[report.seq] = report;
    last_seq_ = std::max(last_seq_, report.seq);
    return Status::OK();
  }
  Status AckUpTo(uint64_t upto) override {
    outbox_.erase(outbox_.begin(), outbox_.upper_bound(upto));
    return Status::OK();
  }
  Result<std::vector<OutboxEntry>> Unacked(uint64_t after) override {
    std::vector<OutboxEntry> out;
    for (auto it = outbox_.upper_bound(after); it != outbox_.end(); ++it) out.push_back(it->second);
    return out;
  }
  Result<std::vector<uint64_t>> Interrupted() override { return std::vector<uint64_t>{}; }
  uint64_t last_seq() const override { return last_seq_; }

 private:
  std::map<uint64_t, JournaledCommand> commands_;
  std::map<uint64_t, OutboxEntry> outbox_;
  uint64_t last_seq_ = 0;
};

}  // namespace

Result<std::unique_ptr<AgentJournal>> AgentJournal::OpenDurable(const std::string& dir) {
  LK_ASSIGN_OR_RETURN(auto store, KvStore::Open(dir, {"commands", "outbox", "meta"}));
  auto j = std::make_unique<DurableJournal>(std::move(store));
  LK_RETURN_IF_ERROR(j->Load());
  return std::unique_ptr<AgentJournal>(std::move(j));
}

std::unique_ptr<AgentJournal> AgentJournal::InMemory() { return std::make_unique<MemoryJournal>(); }

}  // namespace ledgerkeep
