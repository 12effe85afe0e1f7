#include "agents/ping_handler.h"

#include <chrono>
#include <thread>

namespace ledgerkeep {

std::string PingHandler::Lane(const wire::Command& cmd) const {
  const auto* ping = cmd.body_as_Ping();
  return ping != nullptr && ping->delay_ms() == 0 ? "" : "control";
}

CommandOutcome PingHandler::Execute(const CommandContext& ctx) {
  const auto* ping = ctx.command().body_as_Ping();
  const int64_t received = ctx.clock()->NowMs();
  if (ping != nullptr && ping->delay_ms() > 0) {
    const int64_t until = MonotonicMs() + ping->delay_ms();
    int64_t next_progress = MonotonicMs();
    while (MonotonicMs() < until) {
      if (ctx.cancelled()) return {Status::Aborted("agent stopping"), {}};
      if (MonotonicMs() >= next_progress) {
        wire::ProgressT p;
        p.phase = "waiting";
        p.percent = 100.0 * static_cast<double>(ping->delay_ms() - (until - MonotonicMs())) /
                    ping->delay_ms();
        ctx.ReportProgress(std::move(p));
        next_progress += 1000;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  wire::PongT pong;
  pong.received_at_ms = received;
  pong.note = ping && ping->note() ? ping->note()->str() : "";
  CommandOutcome out;
  out.detail.Set(std::move(pong));
  return out;
}

HandlerMap DefaultHandlers(wire::Role /*role*/) {
  HandlerMap m;
  m[wire::CommandBody::Ping] = std::make_shared<PingHandler>();
  return m;
}

}  // namespace ledgerkeep
