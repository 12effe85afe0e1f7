// CommandHandler: how a command kind plugs into an agent's dispatch path
// (command -> handler -> progress events -> result).
//
// The agent thread journals and acks the command, then runs Execute() on the
// handler's lane (a worker thread per lane name, so a long backup does not
// block a wedge or a ping). Execute() may call ReportProgress/Note from its
// own thread; the outcome becomes the CommandResult. Execute() must return
// promptly once `cancelled()` turns true (the agent is stopping). Errors are
// returned as the outcome's Status; an exception that escapes Execute() is
// caught by the agent and becomes a Failed result "internal error in
// <command>: <what>; the agent keeps serving" (logged), never a crash.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "backup/transfer_progress.h"
#include "common/clock.h"
#include "common/codec.h"

namespace ledgerkeep {

struct CommandOutcome {
  Status status;                 // OK, or why the command failed
  wire::ResultDetailUnion detail;
};

// A failed outcome without a detail.
inline CommandOutcome Fail(Status s) { return CommandOutcome{std::move(s), {}}; }

// A transfer's progress (backup library) as the wire's Progress body.
inline wire::ProgressT ProgressToWire(const TransferProgress& p) {
  wire::ProgressT w;
  w.phase = p.phase;
  w.bytes_done = p.bytes_done;
  w.bytes_total = p.bytes_total;
  w.files_done = p.files_done;
  w.files_total = p.files_total;
  w.rate_bps = p.rate_bps;
  w.eta_s = p.eta_s;
  w.percent = p.percent;
  return w;
}

class CommandContext {
 public:
  using ProgressSink = std::function<void(wire::ProgressT)>;
  using NoteSink = std::function<void(std::string level, std::string text)>;

  CommandContext(DecodedEnvelope envelope, const std::atomic<bool>* cancelled,
                 const Clock* clock, ProgressSink progress, NoteSink note)
      : envelope_(std::move(envelope)), cancelled_(cancelled), clock_(clock),
        progress_(std::move(progress)), note_(std::move(note)) {}

  const wire::Command& command() const { return *envelope_->body_as_Command(); }
  uint64_t cmd_id() const { return command().cmd_id(); }
  bool cancelled() const { return cancelled_->load(); }
  const Clock* clock() const { return clock_; }

  // Thread-safe: hands the progress to the agent thread, which journals and
  // sends it as a Report.
  void ReportProgress(wire::ProgressT p) const {
    p.cmd_id = cmd_id();
    progress_(std::move(p));
  }
  void ReportProgress(const TransferProgress& p) const { ReportProgress(ProgressToWire(p)); }
  void Note(std::string level, std::string text) const { note_(std::move(level), std::move(text)); }

 private:
  DecodedEnvelope envelope_;
  const std::atomic<bool>* cancelled_;
  const Clock* clock_;
  ProgressSink progress_;
  NoteSink note_;
};

class CommandHandler {
 public:
  virtual ~CommandHandler() = default;
  // Commands on the same lane run one at a time, in arrival order. The empty
  // lane means "instant": Execute() runs on the agent thread itself, so it
  // must not block (no I/O, no waiting).
  virtual std::string Lane(const wire::Command&) const { return "control"; }
  virtual CommandOutcome Execute(const CommandContext& ctx) = 0;
};

using HandlerMap = std::map<wire::CommandBody, std::shared_ptr<CommandHandler>>;

}  // namespace ledgerkeep
