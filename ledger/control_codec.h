// Encoding and checked decoding of the ledgerd control protocol
// (schemas/ledger_control.fbs). Internal to ledger/: pure functions,
// thread-safe. Decoders never trust their input: every buffer is copied to
// aligned memory, verified, and its union type range-checked.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "common/status.h"
#include "ledger/ledger_types.h"

namespace ledgerkeep::ledger {

// Requests are capped (ZMQ_MAXMSGSIZE on the server socket).
inline constexpr int64_t kMaxControlRequestBytes = 64 * 1024;

enum class ControlOp : uint8_t {
  kStatus,
  kWedge,
  kUnwedge,
  kCheckpoint,
  kSetFault,
  kGetBlock,
  kGetKey,
};

struct ControlRequestMsg {
  uint64_t request_id = 0;
  ControlOp op = ControlOp::kStatus;
  uint64_t number = 0;  // Wedge: stop point; GetBlock: id; GetKey: at_block
  bool flag = false;    // SetFault: slow path; GetBlock: include raw
  std::string text;     // Checkpoint: path; GetKey: key
};

using ControlResult = std::variant<std::monostate, LedgerStatus, CheckpointInfo, BlockInfo, KeyLookup>;

struct ControlReplyMsg {
  uint64_t request_id = 0;
  Status status;
  ControlResult result;
};

std::string EncodeControlRequest(const ControlRequestMsg& request);
// InvalidArgument when the bytes are not a valid request.
Result<ControlRequestMsg> DecodeControlRequest(std::string_view bytes);

std::string EncodeControlReply(const ControlReplyMsg& reply);
// Corruption when the bytes are not a valid reply.
Result<ControlReplyMsg> DecodeControlReply(std::string_view bytes);

}  // namespace ledgerkeep::ledger
