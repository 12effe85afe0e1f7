#include "client/event_format.h"

#include <ctime>

#include "common/config.h"

namespace ledgerkeep {
namespace {

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

std::string ResultText(const wire::CommandResult& r) {
  std::string s = "command " + std::to_string(r.cmd_id()) + " " +
                  std::string(wire::EnumNameResultStatus(r.status()));
  if (!Str(r.message()).empty()) s += ": " + Str(r.message());
  return s;
}

}  // namespace

nlohmann::json BackupResultToJson(const wire::BackupResult& b) {
  return {{"snapshot_id", Str(b.snapshot_id())},
          {"destination", Str(b.destination())},
          {"ok", b.ok()},
          {"error", Str(b.error())},
          {"error_code", std::string(StatusCodeName(static_cast<StatusCode>(b.error_code())))},
          {"bytes_sent", b.bytes_transferred()},
          {"bytes_total", b.bytes_total()},
          {"files_total", b.files_total()},
          {"duration_s", static_cast<double>(b.duration_ms()) / 1000.0},
          {"consistent", b.consistent()},
          {"last_block_id", b.last_block_id()},
          {"scheduled", b.scheduled()},
          {"attempts", b.attempts()},
          {"set_run", b.set_run()},
          {"set_block", b.set_block()}};
}

std::string FormatTimeMs(int64_t ms) {
  if (ms <= 0) return "-";
  time_t secs = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

std::string DescribeEvent(const wire::Event& ev) {
  switch (ev.body_type()) {
    case wire::EventBody::NodeStateChange: {
      const auto* c = ev.body_as_NodeStateChange();
      return Str(c->node_id()) + " " + NodeStateName(c->from()) + " -> " + NodeStateName(c->to()) +
             " (" + Str(c->reason()) + ")";
    }
    case wire::EventBody::CommandIssued: {
      const auto* c = ev.body_as_CommandIssued();
      std::string targets;
      if (c->targets()) {
        for (const auto* t : *c->targets()) targets += (targets.empty() ? "" : ",") + t->str();
      }
      return "command " + std::to_string(c->cmd_id()) + " (" + Str(c->kind()) + ") issued by " +
             Str(c->issuer()) + " to " + targets;
    }
    case wire::EventBody::Ack: {
      const auto* a = ev.body_as_Ack();
      return "command " + std::to_string(a->cmd_id()) +
             (a->accepted() ? " accepted" : " refused: " + Str(a->reason()));
    }
    case wire::EventBody::Progress: {
      const auto* p = ev.body_as_Progress();
      char buf[160];
      std::snprintf(buf, sizeof buf, "command %llu %s %.1f%% %llu/%llu bytes",
                    static_cast<unsigned long long>(p->cmd_id()), Str(p->phase()).c_str(),
                    p->percent(), static_cast<unsigned long long>(p->bytes_done()),
                    static_cast<unsigned long long>(p->bytes_total()));
      return buf;
    }
    case wire::EventBody::CommandResult: return ResultText(*ev.body_as_CommandResult());
    case wire::EventBody::Note: {
      const auto* n = ev.body_as_Note();
      return Str(n->level()) + ": " + Str(n->text());
    }
    case wire::EventBody::CommandFinished: {
      const auto* f = ev.body_as_CommandFinished();
      return "command " + std::to_string(f->cmd_id()) + " (" + Str(f->kind()) + ") finished: " +
             std::to_string(f->ok_count()) + " ok, " + std::to_string(f->failed_count()) + " failed";
    }
    case wire::EventBody::BackupResult: {
      const auto* b = ev.body_as_BackupResult();
      std::string s = std::string(b->scheduled() ? "scheduled " : "") + "backup ";
      if (!b->ok()) return s + "FAILED: " + Str(b->error());
      return s + Str(b->snapshot_id()) + " to " + Str(b->destination()) + ": " +
             std::to_string(b->bytes_transferred()) + " of " + std::to_string(b->bytes_total()) +
             " bytes sent, last block " + std::to_string(b->last_block_id()) +
             (b->consistent() ? "" : " (NOT consistent: live copy)");
    }
    case wire::EventBody::RunbookStep: {
      const auto* r = ev.body_as_RunbookStep();
      return Str(r->kind()) + " run " + std::to_string(r->run_id()) + " " + Str(r->step()) + " " +
             Str(r->state()) + (Str(r->detail()).empty() ? "" : ": " + Str(r->detail()));
    }
    default: break;
  }
  return "(empty event)";
}

nlohmann::json EventToJson(const wire::Event& ev) {
  nlohmann::json j = {{"seq", ev.seq()},
                      {"at", FormatTimeMs(ev.at_ms())},
                      {"at_ms", ev.at_ms()},
                      {"kind", Str(ev.kind())},
                      {"node", Str(ev.node())},
                      {"type", wire::EnumNameEventBody(ev.body_type())},
                      {"text", DescribeEvent(ev)}};
  switch (ev.body_type()) {
    case wire::EventBody::NodeStateChange: {
      const auto* c = ev.body_as_NodeStateChange();
      j["from"] = NodeStateName(c->from());
      j["to"] = NodeStateName(c->to());
      break;
    }
    case wire::EventBody::CommandIssued: {
      const auto* c = ev.body_as_CommandIssued();
      j["cmd_id"] = c->cmd_id();
      j["command"] = Str(c->kind());
      j["issuer"] = Str(c->issuer());
      nlohmann::json targets = nlohmann::json::array();
      if (c->targets()) {
        for (const auto* t : *c->targets()) targets.push_back(t->str());
      }
      j["targets"] = std::move(targets);
      break;
    }
    case wire::EventBody::Ack:
      j["cmd_id"] = ev.body_as_Ack()->cmd_id();
      j["accepted"] = ev.body_as_Ack()->accepted();
      break;
    case wire::EventBody::Progress: {
      const auto* p = ev.body_as_Progress();
      j["cmd_id"] = p->cmd_id();
      j["percent"] = p->percent();
      j["bytes_done"] = p->bytes_done();
      j["bytes_total"] = p->bytes_total();
      break;
    }
    case wire::EventBody::CommandResult: {
      const auto* r = ev.body_as_CommandResult();
      j["cmd_id"] = r->cmd_id();
      j["status"] = wire::EnumNameResultStatus(r->status());
      j["message"] = Str(r->message());
      j["detail_type"] = wire::EnumNameResultDetail(r->detail_type());
      if (const auto* b = r->detail_as_BackupResult()) j["backup"] = BackupResultToJson(*b);
      break;
    }
    case wire::EventBody::CommandFinished: {
      const auto* f = ev.body_as_CommandFinished();
      j["cmd_id"] = f->cmd_id();
      j["command"] = Str(f->kind());
      j["ok_count"] = f->ok_count();
      j["failed_count"] = f->failed_count();
      break;
    }
    case wire::EventBody::BackupResult: {
      const auto* b = ev.body_as_BackupResult();
      j["snapshot_id"] = Str(b->snapshot_id());
      j["ok"] = b->ok();
      j["consistent"] = b->consistent();
      j["last_block_id"] = b->last_block_id();
      j["backup"] = BackupResultToJson(*b);
      break;
    }
    case wire::EventBody::RunbookStep: {
      const auto* r = ev.body_as_RunbookStep();
      j["run_id"] = r->run_id();
      j["workflow"] = Str(r->kind());
      j["step"] = Str(r->step());
      j["state"] = Str(r->state());
      j["detail"] = Str(r->detail());
      break;
    }
    default: break;
  }
  return j;
}

}  // namespace ledgerkeep
