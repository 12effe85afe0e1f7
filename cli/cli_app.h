// The `ledgerkeep` command line: parses argv, runs one subcommand, returns
// the process exit code.
#pragma once

namespace ledgerkeep {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;       // a target failed
inline constexpr int kExitUsage = 2;        // bad flags, config or arguments
inline constexpr int kExitUnreachable = 3;  // no answer from the broker / key refused

int RunCli(int argc, char** argv);

}  // namespace ledgerkeep
