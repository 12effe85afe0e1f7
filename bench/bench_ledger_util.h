// Helpers shared by the benchmarks that need a big ledger (bench_backup,
// bench_restore): wall time, directory sizes, growing a ledger with a real
// ledgerd, timing a command. Header-only; benchmarks only.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/process.h"

namespace ledgerkeep::bench {

inline double Now() { return static_cast<double>(MonotonicMs()) / 1000.0; }

inline uint64_t DirBytes(const std::string& dir) {
  namespace fs = std::filesystem;
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;  // files come and go while ledgerd compacts
    if (it->is_regular_file(size_ec)) {
      const uint64_t size = it->file_size(size_ec);
      if (!size_ec) total += size;
    }
  }
  return total;
}

[[noreturn]] inline void Die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

// Runs ledgerd as fast as it goes until the DB holds `target` bytes. The
// child dies with the benchmark (PR_SET_PDEATHSIG): a crashed run must not
// leave a ledgerd filling the disk.
inline void GrowLedger(const std::string& db, const std::string& sock, uint64_t target) {
  const std::string bin = std::string(LEDGERKEEP_BIN_DIR) + "/ledgerd";
  const std::string log = db + ".ledgerd.log";
  pid_t pid = ::fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execl(bin.c_str(), "ledgerd", "--db", db.c_str(), "--control", sock.c_str(), "--blocks-per-sec", "0",
            "--payload-bytes", "32768", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Compaction shrinks the DB now and then: overshoot a little so the
  // finished ledger still holds at least `target` bytes.
  const uint64_t want = target + target / 8;
  while (DirBytes(db) < want) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) Die("ledgerd exited; see " + log);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

// Wall time of a command that must succeed.
inline double Timed(const std::vector<std::string>& argv) {
  const double t0 = Now();
  auto r = ProcessRunner::Real()->Run(argv, 3'600'000);
  if (!r.ok() || r->exit_code != 0) {
    Die(argv[0] + " failed: " + (r.ok() ? r->output : r.status().ToString()));
  }
  return Now() - t0;
}

}  // namespace ledgerkeep::bench
