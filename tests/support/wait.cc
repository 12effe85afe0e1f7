#include "tests/support/wait.h"

#include <thread>

namespace ledgerkeep::test {

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout,
               std::chrono::milliseconds poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(poll);
  }
}

std::string BinPath(const std::string& name) { return std::string(LEDGERKEEP_BIN_DIR) + "/" + name; }

}  // namespace ledgerkeep::test
