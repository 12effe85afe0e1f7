// ledgerkeep-db <db> COMMAND [ARGS]: offline inspection of a ledger DB, like
// Concord's kv_blockchain_db_editor. Opens the DB read-only and never writes
// to it; `generate` (db_tool_generate.h) only creates a new DB. Output: one
// JSON object on stdout (ids as decimal strings).
// Exit codes: 0 success; 1 negative answer or error (verification failed,
// mismatch found, block/key not found, unreadable DB); 2 usage error, missing
// directory, or a directory that is not a ledgerkeep ledger.
//
// The tool's commands on a DB live here; commands on a directory that is not
// a DB (`verifySnapshot`, which needs the backup library) are given by the
// main that links them (backup/db_tool_main.cpp), so ledger/ depends on
// nothing above it.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace ledgerkeep::ledger {

inline constexpr int kDbToolExitOk = 0;
inline constexpr int kDbToolExitFailed = 1;
inline constexpr int kDbToolExitUsage = 2;

// A command on a directory that is not opened as a DB: `ledgerkeep-db DIR
// NAME ARGS...` runs `run(DIR, ARGS)` and exits with what it returns.
struct DbToolDirCommand {
  std::string name;
  std::string usage;  // its lines of the usage text, each ending in '\n'
  std::function<int(const std::string& dir, const std::vector<std::string>& args)> run;
};

// Runs ledgerkeep-db with `args` (argv without the program name): --help,
// the DB commands and `dir_commands`; returns the exit code.
int RunDbTool(const std::vector<std::string>& args, const std::vector<DbToolDirCommand>& dir_commands);

}  // namespace ledgerkeep::ledger
