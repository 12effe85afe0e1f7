#include "common/codec.h"

#include <cstring>

namespace ledgerkeep {
namespace {

template <typename E>
bool InRange(E v) {
  using U = std::underlying_type_t<E>;
  return static_cast<U>(v) <= static_cast<U>(E::MAX);
}

Status BadEnum(std::string_view what, unsigned value) {
  return Status::InvalidArgument("message field " + std::string(what) + " has unknown value " +
                                 std::to_string(value));
}

#define LK_CHECK_ENUM(name, expr)                                   \
  do {                                                              \
    auto v_ = (expr);                                               \
    if (!InRange(v_)) return BadEnum(name, static_cast<unsigned>(v_)); \
  } while (0)

// The Verifier accepts a union whose type is set but whose value is absent;
// every reader would then dereference null, so that is rejected here.
template <typename E>
Status CheckUnion(std::string_view what, E type, const void* value) {
  LK_CHECK_ENUM(what, type);
  if (type != E::NONE && value == nullptr) {
    return Status::InvalidArgument("message field " + std::string(what) + " names a " +
                                   "member but carries no value");
  }
  return Status::OK();
}

Status CheckResult(const wire::CommandResult* r) {
  if (r == nullptr) return Status::OK();
  LK_CHECK_ENUM("CommandResult.status", r->status());
  return CheckUnion("CommandResult.detail", r->detail_type(), r->detail());
}

Status CheckCommandBody(wire::CommandBody type, const void* value) {
  LK_RETURN_IF_ERROR(CheckUnion("command body", type, value));
  if (type == wire::CommandBody::NodeManagement) {
    LK_CHECK_ENUM("NodeManagement.action",
                  static_cast<const wire::NodeManagement*>(value)->action());
  } else if (type == wire::CommandBody::Wedge) {
    LK_CHECK_ENUM("Wedge.action", static_cast<const wire::Wedge*>(value)->action());
  } else if (type == wire::CommandBody::ScheduleBackup) {
    LK_CHECK_ENUM("ScheduleBackup.mode", static_cast<const wire::ScheduleBackup*>(value)->mode());
  }
  return Status::OK();
}

}  // namespace

Status CheckEnvelopeEnums(const wire::Envelope& env) {
  LK_RETURN_IF_ERROR(CheckUnion("Envelope.body", env.body_type(), env.body()));
  switch (env.body_type()) {
    case wire::Body::Hello:
      LK_CHECK_ENUM("Hello.role", env.body_as_Hello()->role());
      break;
    case wire::Body::Command:
      return CheckCommandBody(env.body_as_Command()->body_type(), env.body_as_Command()->body());
    case wire::Body::Report: {
      const auto* r = env.body_as_Report();
      LK_RETURN_IF_ERROR(CheckUnion("Report.body", r->body_type(), r->body()));
      if (r->body_type() == wire::ReportBody::CommandResult)
        return CheckResult(r->body_as_CommandResult());
      break;
    }
    case wire::Body::Event: {
      const auto* e = env.body_as_Event();
      LK_RETURN_IF_ERROR(CheckUnion("Event.body", e->body_type(), e->body()));
      if (const auto* c = e->body_as_NodeStateChange()) {
        LK_CHECK_ENUM("NodeStateChange.role", c->role());
        LK_CHECK_ENUM("NodeStateChange.from", c->from());
        LK_CHECK_ENUM("NodeStateChange.to", c->to());
      }
      return CheckResult(e->body_as_CommandResult());
    }
    case wire::Body::NodeList:
      if (const auto* nodes = env.body_as_NodeList()->nodes()) {
        for (const auto* n : *nodes) {
          LK_CHECK_ENUM("NodeInfo.role", n->role());
          LK_CHECK_ENUM("NodeInfo.state", n->state());
        }
      }
      break;
    case wire::Body::IssueCommand: {
      const auto* ic = env.body_as_IssueCommand();
      if (ic->target() != nullptr) LK_CHECK_ENUM("Target.role", ic->target()->role());
      return CheckCommandBody(ic->body_type(), ic->body());
    }
    case wire::Body::AppendEvent: {
      const auto* a = env.body_as_AppendEvent();
      return CheckUnion("AppendEvent.body", a->body_type(), a->body());
    }
    case wire::Body::CommandStatus:
      if (const auto* ts = env.body_as_CommandStatus()->targets()) {
        for (const auto* t : *ts) {
          LK_CHECK_ENUM("TargetStatus.state", t->state());
          LK_RETURN_IF_ERROR(CheckResult(t->result()));
        }
      }
      break;
    default:
      break;
  }
  return Status::OK();
}

Result<DecodedEnvelope> DecodeEnvelope(const void* data, size_t size, size_t max_bytes) {
  if (size > max_bytes) {
    return Status::InvalidArgument("message of " + std::to_string(size) +
                                   " bytes exceeds the limit of " + std::to_string(max_bytes));
  }
  if (size < 8) {
    return Status::InvalidArgument("message of " + std::to_string(size) +
                                   " bytes is too short to be an envelope");
  }
  DecodedEnvelope out;
  out.storage_ = std::make_unique<uint64_t[]>((size + 7) / 8);
  std::memcpy(out.storage_.get(), data, size);
  out.size_ = size;
  const auto* bytes = reinterpret_cast<const uint8_t*>(out.storage_.get());
  if (!wire::EnvelopeBufferHasIdentifier(bytes)) {
    return Status::InvalidArgument("not a ledgerkeep envelope (file identifier is not LKW1)");
  }
  flatbuffers::Verifier::Options opts;
  opts.max_depth = 32;
  opts.max_tables = 100000;
  flatbuffers::Verifier verifier(bytes, size, opts);
  if (!wire::VerifyEnvelopeBuffer(verifier)) {
    return Status::Corruption("envelope failed FlatBuffers verification (truncated or malformed)");
  }
  out.env_ = wire::GetEnvelope(bytes);
  if (out.env_->version() != kWireVersion) {
    return Status::InvalidArgument("unsupported wire version " +
                                   std::to_string(out.env_->version()));
  }
  if (out.env_->body_type() == wire::Body::NONE) {
    return Status::InvalidArgument("envelope has no body");
  }
  LK_RETURN_IF_ERROR(CheckEnvelopeEnums(*out.env_));
  return out;
}

void FinishEnvelope(flatbuffers::FlatBufferBuilder& fbb, const EnvelopeHeader& header,
                    wire::Body body_type, flatbuffers::Offset<void> body) {
  auto sender = fbb.CreateString(header.sender);
  wire::EnvelopeBuilder b(fbb);
  b.add_version(kWireVersion);
  b.add_msg_id(header.msg_id);
  b.add_sender(sender);
  b.add_sent_at_ms(header.sent_at_ms);
  b.add_seq(header.seq);
  b.add_reply_to(header.reply_to);
  b.add_body_type(body_type);
  b.add_body(body);
  fbb.Finish(b.Finish(), wire::EnvelopeIdentifier());
}

std::string BuildEnvelope(const EnvelopeHeader& header, wire::BodyUnion body) {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto off = body.Pack(fbb);
  FinishEnvelope(fbb, header, body.type, off);
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

std::string_view BodyName(wire::Body type) {
  if (!InRange(type)) return "unknown";
  return wire::EnumNameBody(type);
}

std::string_view CommandKindName(wire::CommandBody type) {
  switch (type) {
    case wire::CommandBody::Ping: return "ping";
    case wire::CommandBody::NodeManagement: return "node";
    case wire::CommandBody::GetBlockIds: return "blocks";
    case wire::CommandBody::Wedge: return "wedge";
    case wire::CommandBody::Unwedge: return "unwedge";
    case wire::CommandBody::GetHealth: return "health";
    case wire::CommandBody::ScheduleBackup: return "backup-schedule";
    case wire::CommandBody::UnscheduleBackup: return "backup-unschedule";
    case wire::CommandBody::RunBackupNow: return "backup-run";
    case wire::CommandBody::ConfigureBackup: return "backup-configure";
    case wire::CommandBody::GetBackupStatus: return "backup-status";
    case wire::CommandBody::ListSnapshots: return "backup-list";
    case wire::CommandBody::ClientBackup: return "backup-client";
    case wire::CommandBody::RestoreSnapshot: return "restore";
    case wire::CommandBody::VerifyBackup: return "backup-verify";
    case wire::CommandBody::RestoreClientArchive: return "restore-client";
    case wire::CommandBody::MaintenanceCheckpoint: return "maintenance-checkpoint";
    case wire::CommandBody::NONE: return "none";
  }
  return "unknown";
}

std::string EncodeU64BE(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i) {
    s[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return s;
}

uint64_t DecodeU64BE(std::string_view s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(s[i]);
  return v;
}

}  // namespace ledgerkeep
