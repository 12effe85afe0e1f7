// Envelope codec: the only way bytes from a socket become a wire::Envelope.
//
// DecodeEnvelope copies the buffer into 8-byte-aligned memory it owns, runs
// the FlatBuffers Verifier (depth/table limits on), checks the
// file_identifier, the size cap, that every union member is one this build
// knows, and that every enum is in range. A failure is a Status with a
// message fit for a log line or an ErrorReply; it never throws or crashes.
// Thread-safety: free functions; a DecodedEnvelope is a value owned by one
// thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "schemas/ledgerkeep_generated.h"

namespace ledgerkeep {

namespace wire = ::ledgerkeep::wire;

// Largest envelope any endpoint accepts (also set as ZMQ_MAXMSGSIZE).
constexpr size_t kMaxMessageBytes = 1u << 20;
constexpr uint16_t kWireVersion = 1;

class DecodedEnvelope {
 public:
  const wire::Envelope& operator*() const { return *env_; }
  const wire::Envelope* operator->() const { return env_; }
  const wire::Envelope* get() const { return env_; }
  const uint8_t* data() const { return reinterpret_cast<const uint8_t*>(storage_.get()); }
  size_t size() const { return size_; }
  std::string_view bytes() const { return {reinterpret_cast<const char*>(data()), size_}; }

 private:
  friend Result<DecodedEnvelope> DecodeEnvelope(const void*, size_t, size_t);
  std::unique_ptr<uint64_t[]> storage_;
  size_t size_ = 0;
  const wire::Envelope* env_ = nullptr;
};

Result<DecodedEnvelope> DecodeEnvelope(const void* data, size_t size,
                                       size_t max_bytes = kMaxMessageBytes);
inline Result<DecodedEnvelope> DecodeEnvelope(std::string_view bytes) {
  return DecodeEnvelope(bytes.data(), bytes.size());
}

// Fields of the envelope header besides the body.
struct EnvelopeHeader {
  std::string sender;
  uint64_t msg_id = 0;
  uint64_t seq = 0;
  uint64_t reply_to = 0;
  int64_t sent_at_ms = 0;
};

// Finishes `fbb` with an Envelope around an already built body.
void FinishEnvelope(flatbuffers::FlatBufferBuilder& fbb, const EnvelopeHeader& header,
                    wire::Body body_type, flatbuffers::Offset<void> body);

// Builds a whole envelope from an object-API body (control-plane convenience).
std::string BuildEnvelope(const EnvelopeHeader& header, wire::BodyUnion body);

// Human name of a body type ("Hello", "Command", ...), for logs and errors.
std::string_view BodyName(wire::Body type);
// The command kind as used in events and the CLI ("ping", ...).
std::string_view CommandKindName(wire::CommandBody type);

// Enum range checks applied by DecodeEnvelope, exposed for tests.
Status CheckEnvelopeEnums(const wire::Envelope& env);

// Big-endian u64 keys, so RocksDB's byte order is numeric order.
std::string EncodeU64BE(uint64_t v);
uint64_t DecodeU64BE(std::string_view s);  // requires s.size() >= 8

}  // namespace ledgerkeep
