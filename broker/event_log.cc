#include "broker/event_log.h"

#include <algorithm>

namespace ledgerkeep {

EventLog::EventLog(KvStore* store, int cf, EventLogOptions options, const Clock* clock,
                   std::string sender)
    : store_(store), cf_(cf), options_(options), clock_(clock), sender_(std::move(sender)) {}

Status EventLog::Load() {
  LK_ASSIGN_OR_RETURN(auto last, store_->LastKey(cf_));
  LK_ASSIGN_OR_RETURN(auto first, store_->FirstKey(cf_));
  committed_head_ = last ? DecodeU64BE(*last) : 0;
  first_seq_ = first ? DecodeU64BE(*first) : 0;
  pending_first_ = first_seq_;
  return Status::OK();
}

const StagedEvent& EventLog::Stage(KvStore::Batch& batch, const std::string& kind,
                                   const std::string& node, wire::EventBodyUnion body) {
  StagedEvent ev;
  ev.seq = committed_head_ + staged_.size() + 1;
  ev.topic = Topic(kind, node);
  const int64_t now = clock_->NowMs();
  flatbuffers::FlatBufferBuilder fbb(256);
  auto kind_off = fbb.CreateString(kind);
  auto node_off = fbb.CreateString(node);
  auto body_off = body.Pack(fbb);
  wire::EventBuilder eb(fbb);
  eb.add_seq(ev.seq);
  eb.add_at_ms(now);
  eb.add_kind(kind_off);
  eb.add_node(node_off);
  eb.add_body_type(body.type);
  eb.add_body(body_off);
  auto event_off = eb.Finish();
  EnvelopeHeader h;
  h.sender = sender_;
  h.seq = ev.seq;
  h.msg_id = ev.seq;
  h.sent_at_ms = now;
  FinishEnvelope(fbb, h, wire::Body::Event, event_off.Union());
  ev.bytes.assign(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  batch.Put(cf_, EncodeU64BE(ev.seq), ev.bytes);
  staged_.push_back(std::move(ev));
  return staged_.back();
}

void EventLog::Commit() {
  if (!staged_.empty()) {
    committed_head_ = staged_.back().seq;
    if (first_seq_ == 0) first_seq_ = staged_.front().seq;
  }
  if (pending_first_ > first_seq_) first_seq_ = pending_first_;
  pending_first_ = first_seq_;
  staged_.clear();
}

void EventLog::Abort() {
  staged_.clear();
  pending_first_ = first_seq_;
}

Result<EventPageData> EventLog::Read(uint64_t from_seq, uint32_t max_events,
                                     const std::string& prefix, size_t max_bytes) const {
  EventPageData page;
  page.head_seq = committed_head_;
  page.first_seq = first_seq_;
  uint64_t start = std::max<uint64_t>(from_seq, std::max<uint64_t>(first_seq_, 1));
  page.next_seq = start;
  if (start > committed_head_ || max_events == 0) return page;
  size_t bytes = 0;
  Status inner;
  Status s = store_->Scan(
      cf_, EncodeU64BE(start), EncodeU64BE(committed_head_ + 1),
      [&](std::string_view key, std::string_view value) {
        uint64_t seq = DecodeU64BE(key);
        if (!page.events.empty() && bytes + value.size() > max_bytes) return false;
        page.next_seq = seq + 1;
        auto match = Matches(seq, value, prefix);
        if (!match.ok()) {
          inner = match.status();
          return false;
        }
        if (!*match) return true;
        bytes += value.size();
        page.events.emplace_back(value);
        return page.events.size() < max_events;
      });
  LK_RETURN_IF_ERROR(s);
  LK_RETURN_IF_ERROR(inner);
  return page;
}

Result<bool> EventLog::Matches(uint64_t seq, std::string_view value, const std::string& prefix) {
  if (prefix.empty()) return true;
  auto env = DecodeEnvelope(value);
  if (!env.ok()) {
    return Status::Corruption("event log entry " + std::to_string(seq) +
                              " is unreadable: " + env.status().message());
  }
  const auto* ev = (*env)->body_as_Event();
  if (ev == nullptr) return false;
  std::string name = (ev->kind() ? ev->kind()->str() : "") + "." + (ev->node() ? ev->node()->str() : "");
  return name.compare(0, prefix.size(), prefix) == 0;
}

Result<EventPageData> EventLog::ReadNewest(uint64_t upto_seq, uint32_t max_events, const std::string& prefix,
                                           size_t max_bytes, uint64_t max_scanned) const {
  EventPageData page;
  page.head_seq = committed_head_;
  page.first_seq = first_seq_;
  const uint64_t top = std::min(upto_seq, committed_head_);
  if (first_seq_ == 0 || top < first_seq_) return page;  // next_seq 0: nothing (older) left
  page.next_seq = top;
  if (max_events == 0 || max_scanned == 0) return page;
  size_t bytes = 0;
  uint64_t scanned = 0;
  bool stopped = false;  // before the oldest entry
  auto stop = [&] {
    stopped = true;
    return false;
  };
  Status inner;
  Status s = store_->ScanBackward(cf_, EncodeU64BE(first_seq_), EncodeU64BE(top + 1),
                                  [&](std::string_view key, std::string_view value) {
                                    const uint64_t seq = DecodeU64BE(key);
                                    page.next_seq = seq;  // not examined yet
                                    if (scanned == max_scanned) return stop();
                                    auto match = Matches(seq, value, prefix);
                                    if (!match.ok()) {
                                      inner = match.status();
                                      return stop();
                                    }
                                    if (*match) {
                                      if (!page.events.empty() && bytes + value.size() > max_bytes)
                                        return stop();
                                      bytes += value.size();
                                      page.events.emplace_back(value);
                                    }
                                    ++scanned;
                                    page.next_seq = seq - 1;
                                    if (page.events.size() == max_events) return stop();
                                    return true;
                                  });
  LK_RETURN_IF_ERROR(s);
  LK_RETURN_IF_ERROR(inner);
  if (!stopped || page.next_seq < first_seq_) page.next_seq = 0;  // reached the oldest entry
  std::reverse(page.events.begin(), page.events.end());
  return page;
}

Status EventLog::StageRetention(KvStore::Batch& batch) {
  if (first_seq_ == 0 || committed_head_ == 0) return Status::OK();
  uint64_t cutoff = first_seq_;  // delete [first_seq_, cutoff)
  uint64_t count = committed_head_ - first_seq_ + 1;
  if (count > options_.retain_count) cutoff = committed_head_ - options_.retain_count + 1;
  const int64_t oldest_allowed = clock_->NowMs() - options_.retain_age_ms;
  // Age: walk forward from the cutoff while entries are too old (bounded per
  // pass so a huge backlog is trimmed over several ticks).
  Status inner;
  Status s = store_->Scan(cf_, EncodeU64BE(cutoff), EncodeU64BE(committed_head_),
                          [&](std::string_view key, std::string_view value) {
                            auto env = DecodeEnvelope(value);
                            if (!env.ok()) return false;
                            const auto* ev = (*env)->body_as_Event();
                            if (ev == nullptr || ev->at_ms() >= oldest_allowed) return false;
                            cutoff = DecodeU64BE(key) + 1;
                            return cutoff - first_seq_ < 100000;
                          });
  LK_RETURN_IF_ERROR(s);
  cutoff = std::min(cutoff, committed_head_);  // never the newest entry
  if (cutoff > first_seq_) {
    batch.DeleteRange(cf_, EncodeU64BE(first_seq_), EncodeU64BE(cutoff));
    pending_first_ = cutoff;
  }
  return Status::OK();
}

}  // namespace ledgerkeep
