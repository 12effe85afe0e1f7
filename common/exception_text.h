// CurrentExceptionText(): for the boundaries where exceptions from libraries
// (std::filesystem, nlohmann::json, ZeroMQ, the standard library) are turned
// into a Status: command handlers, the agent's and the broker's threads, the
// scheduler and workflow threads. Exceptions never cross those boundaries
// (status.h); this says what was caught, for the message and the log.
#pragma once

#include <exception>
#include <string>

namespace ledgerkeep {

// Call only inside a catch block: what() of the exception being handled, or
// a note that it was not a std::exception.
inline std::string CurrentExceptionText() {
  try {
    throw;
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

}  // namespace ledgerkeep
