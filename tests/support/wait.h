// Polling with a deadline: the only way the harness and the integration
// tests wait for something (no sleep-and-hope).
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace ledgerkeep::test {

// Calls `done` every `poll` until it returns true or `timeout` has passed;
// returns whether it became true. `done` is always called at least once, and
// once more after the deadline, so a condition that turns true while the
// poller sleeps is not reported as a timeout.
bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout,
               std::chrono::milliseconds poll = std::chrono::milliseconds(10));

// Absolute path of a product binary (ledgerkeep-broker, ledgerkeep-agent,
// ledgerkeep, ...) in this build.
std::string BinPath(const std::string& name);

}  // namespace ledgerkeep::test
