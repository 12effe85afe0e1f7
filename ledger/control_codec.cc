#include "ledger/control_codec.h"

#include <cstring>
#include <vector>

#include "schemas/ledger_control_generated.h"

namespace ledgerkeep::ledger {
namespace fb = ledgerkeep::ledgerctl;

namespace {

// FlatBuffers needs aligned input; ZeroMQ frames give no guarantee.
class AlignedCopy {
 public:
  explicit AlignedCopy(std::string_view bytes) : words_((bytes.size() + 7) / 8 + 1) {
    if (!bytes.empty()) std::memcpy(words_.data(), bytes.data(), bytes.size());
    size_ = bytes.size();
  }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(words_.data()); }
  size_t size() const { return size_; }

 private:
  std::vector<uint64_t> words_;
  size_t size_ = 0;
};

std::string Finish(flatbuffers::FlatBufferBuilder& fbb) {
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

flatbuffers::Verifier::Options VerifierOptions() {
  flatbuffers::Verifier::Options o;
  o.max_depth = 16;
  o.max_tables = 1000;
  return o;
}

std::string BytesOf(const flatbuffers::Vector<uint8_t>* v) {
  return v == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(v->data()), v->size());
}

std::string StringOf(const flatbuffers::String* s) { return s == nullptr ? std::string() : s->str(); }

std::string HexOf(const flatbuffers::Vector<uint8_t>* v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  if (v == nullptr) return out;
  for (uint8_t c : *v) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

std::vector<uint8_t> UnHex(const std::string& hex) {
  std::vector<uint8_t> out;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return 0;
  };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  }
  return out;
}

}  // namespace

std::string EncodeControlRequest(const ControlRequestMsg& r) {
  flatbuffers::FlatBufferBuilder fbb(256);
  fb::RequestBody type = fb::RequestBody::NONE;
  flatbuffers::Offset<void> body;
  switch (r.op) {
    case ControlOp::kStatus:
      type = fb::RequestBody::StatusRequest;
      body = fb::CreateStatusRequest(fbb).Union();
      break;
    case ControlOp::kWedge:
      type = fb::RequestBody::WedgeRequest;
      body = fb::CreateWedgeRequest(fbb, r.number).Union();
      break;
    case ControlOp::kUnwedge:
      type = fb::RequestBody::UnwedgeRequest;
      body = fb::CreateUnwedgeRequest(fbb).Union();
      break;
    case ControlOp::kCheckpoint:
      type = fb::RequestBody::CheckpointRequest;
      body = fb::CreateCheckpointRequestDirect(fbb, r.text.c_str()).Union();
      break;
    case ControlOp::kSetFault:
      type = fb::RequestBody::SetFaultRequest;
      body = fb::CreateSetFaultRequest(fbb, r.flag).Union();
      break;
    case ControlOp::kGetBlock:
      type = fb::RequestBody::GetBlockRequest;
      body = fb::CreateGetBlockRequest(fbb, r.number, r.flag).Union();
      break;
    case ControlOp::kGetKey:
      type = fb::RequestBody::GetKeyRequest;
      body = fb::CreateGetKeyRequestDirect(fbb, r.text.c_str(), r.number).Union();
      break;
  }
  fbb.Finish(fb::CreateControlRequest(fbb, r.request_id, type, body), fb::ControlRequestIdentifier());
  return Finish(fbb);
}

Result<ControlRequestMsg> DecodeControlRequest(std::string_view bytes) {
  const AlignedCopy buf(bytes);
  flatbuffers::Verifier verifier(buf.data(), buf.size(), VerifierOptions());
  if (!fb::VerifyControlRequestBuffer(verifier)) {
    return Status::InvalidArgument("malformed control request (" + std::to_string(bytes.size()) +
                                   " bytes failed FlatBuffers verification)");
  }
  const fb::ControlRequest* req = fb::GetControlRequest(buf.data());
  ControlRequestMsg msg;
  msg.request_id = req->request_id();
  const auto type = req->body_type();
  if (type == fb::RequestBody::NONE || static_cast<uint8_t>(type) > static_cast<uint8_t>(fb::RequestBody::MAX) ||
      req->body() == nullptr) {
    return Status::InvalidArgument("control request " + std::to_string(msg.request_id) + " has unknown body type " +
                                   std::to_string(static_cast<unsigned>(type)));
  }
  switch (type) {
    case fb::RequestBody::StatusRequest:
      msg.op = ControlOp::kStatus;
      break;
    case fb::RequestBody::WedgeRequest:
      msg.op = ControlOp::kWedge;
      msg.number = req->body_as_WedgeRequest()->stop_point();
      break;
    case fb::RequestBody::UnwedgeRequest:
      msg.op = ControlOp::kUnwedge;
      break;
    case fb::RequestBody::CheckpointRequest:
      msg.op = ControlOp::kCheckpoint;
      msg.text = StringOf(req->body_as_CheckpointRequest()->path());
      break;
    case fb::RequestBody::SetFaultRequest:
      msg.op = ControlOp::kSetFault;
      msg.flag = req->body_as_SetFaultRequest()->slow_path();
      break;
    case fb::RequestBody::GetBlockRequest:
      msg.op = ControlOp::kGetBlock;
      msg.number = req->body_as_GetBlockRequest()->id();
      msg.flag = req->body_as_GetBlockRequest()->include_raw();
      break;
    case fb::RequestBody::GetKeyRequest:
      msg.op = ControlOp::kGetKey;
      msg.text = StringOf(req->body_as_GetKeyRequest()->key());
      msg.number = req->body_as_GetKeyRequest()->at_block();
      break;
    default:
      return Status::InvalidArgument("control request has unknown body type");
  }
  return msg;
}

std::string EncodeControlReply(const ControlReplyMsg& r) {
  flatbuffers::FlatBufferBuilder fbb(512);
  fb::ReplyBody type = fb::ReplyBody::NONE;
  flatbuffers::Offset<void> body;
  if (const auto* s = std::get_if<LedgerStatus>(&r.result)) {
    type = fb::ReplyBody::StatusResult;
    body = fb::CreateStatusResult(fbb, s->genesis, s->last_reachable, s->last, s->wedged, s->stop_point,
                                  s->state_transfer_active, s->blocks_per_sec, s->fast_paths, s->slow_paths,
                                  s->read_only, s->pid, s->slow_path_fault, s->lag_blocks,
                                  s->catch_up_blocks_per_sec, s->catching_up, s->wedged_since_ms)
               .Union();
  } else if (const auto* c = std::get_if<CheckpointInfo>(&r.result)) {
    type = fb::ReplyBody::CheckpointResult;
    body = fb::CreateCheckpointResultDirect(fbb, c->path.c_str(), c->genesis, c->last_reachable, c->last).Union();
  } else if (const auto* b = std::get_if<BlockInfo>(&r.result)) {
    type = fb::ReplyBody::BlockResult;
    const auto parent = UnHex(b->parent_digest_hex);
    const auto digest = UnHex(b->digest_hex);
    auto parent_off = fbb.CreateVector(parent);
    auto digest_off = fbb.CreateVector(digest);
    flatbuffers::Offset<flatbuffers::Vector<uint8_t>> raw_off;
    if (!b->raw.empty()) raw_off = fbb.CreateVector(reinterpret_cast<const uint8_t*>(b->raw.data()), b->raw.size());
    body = fb::CreateBlockResult(fbb, b->id, parent_off, digest_off, b->num_updates, b->size, raw_off).Union();
  } else if (const auto* k = std::get_if<KeyLookup>(&r.result)) {
    type = fb::ReplyBody::KeyResult;
    auto key_off = fbb.CreateString(k->key);
    auto value_off = fbb.CreateVector(reinterpret_cast<const uint8_t*>(k->value.data()), k->value.size());
    body = fb::CreateKeyResult(fbb, key_off, value_off, k->block_id).Union();
  }
  auto message = fbb.CreateString(r.status.message());
  fbb.Finish(fb::CreateControlReply(fbb, r.request_id, r.status.ok(), static_cast<uint16_t>(r.status.code()),
                                    message, type, body),
             fb::ControlRequestIdentifier());
  return Finish(fbb);
}

Result<ControlReplyMsg> DecodeControlReply(std::string_view bytes) {
  const AlignedCopy buf(bytes);
  flatbuffers::Verifier verifier(buf.data(), buf.size(), VerifierOptions());
  if (!verifier.VerifyBuffer<fb::ControlReply>(fb::ControlRequestIdentifier())) {
    return Status::Corruption("malformed control reply (" + std::to_string(bytes.size()) + " bytes)");
  }
  const auto* rep = flatbuffers::GetRoot<fb::ControlReply>(buf.data());
  ControlReplyMsg msg;
  msg.request_id = rep->request_id();
  if (!rep->ok()) {
    const uint16_t code = rep->error_code();
    const StatusCode sc = (code == 0 || code > kMaxStatusCode) ? StatusCode::kInternal : static_cast<StatusCode>(code);
    msg.status = Status(sc, StringOf(rep->message()));
    return msg;
  }
  const auto type = rep->result_type();
  if (static_cast<uint8_t>(type) > static_cast<uint8_t>(fb::ReplyBody::MAX)) {
    return Status::Corruption("control reply has unknown result type " + std::to_string(static_cast<unsigned>(type)));
  }
  switch (type) {
    case fb::ReplyBody::StatusResult: {
      const auto* s = rep->result_as_StatusResult();
      if (s == nullptr) break;
      LedgerStatus st;
      st.genesis = s->genesis();
      st.last_reachable = s->last_reachable();
      st.last = s->last();
      st.wedged = s->wedged();
      st.stop_point = s->stop_point();
      st.state_transfer_active = s->state_transfer_active();
      st.blocks_per_sec = s->blocks_per_sec();
      st.fast_paths = s->fast_paths();
      st.slow_paths = s->slow_paths();
      st.read_only = s->read_only();
      st.pid = s->pid();
      st.slow_path_fault = s->slow_path_fault();
      st.lag_blocks = s->lag_blocks();
      st.catch_up_blocks_per_sec = s->catch_up_blocks_per_sec();
      st.catching_up = s->catching_up();
      st.wedged_since_ms = s->wedged_since_ms();
      msg.result = st;
      break;
    }
    case fb::ReplyBody::CheckpointResult: {
      const auto* c = rep->result_as_CheckpointResult();
      if (c == nullptr) break;
      msg.result = CheckpointInfo{StringOf(c->path()), c->genesis(), c->last_reachable(), c->last()};
      break;
    }
    case fb::ReplyBody::BlockResult: {
      const auto* b = rep->result_as_BlockResult();
      if (b == nullptr) break;
      BlockInfo info;
      info.id = b->id();
      info.parent_digest_hex = HexOf(b->parent_digest());
      info.digest_hex = HexOf(b->digest());
      info.num_updates = b->num_updates();
      info.size = b->size();
      info.raw = BytesOf(b->raw());
      msg.result = std::move(info);
      break;
    }
    case fb::ReplyBody::KeyResult: {
      const auto* k = rep->result_as_KeyResult();
      if (k == nullptr) break;
      msg.result = KeyLookup{StringOf(k->key()), BytesOf(k->value()), k->block_id()};
      break;
    }
    default:
      break;
  }
  return msg;
}

}  // namespace ledgerkeep::ledger
