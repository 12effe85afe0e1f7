// PingHandler: answers Ping through the full dispatch path. `delay_ms` makes
// it take that long (cancellable), which tests use to interrupt a command.
#pragma once

#include "agents/command_handler.h"

namespace ledgerkeep {

class PingHandler final : public CommandHandler {
 public:
  // A plain ping is instant; one with a delay runs on a worker lane.
  std::string Lane(const wire::Command& cmd) const override;
  CommandOutcome Execute(const CommandContext& ctx) override;
};

// The handlers that need no node services (Ping only): for agents without a
// node config, such as the many in-process agents of the bus benchmark.
HandlerMap DefaultHandlers(wire::Role role);

}  // namespace ledgerkeep
