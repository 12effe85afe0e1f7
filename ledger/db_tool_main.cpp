// ledgerkeep-db of a ledger-only build (LEDGERKEEP_LEDGER_ONLY): the DB
// commands of ledger/db_tool.h. The full build's ledgerkeep-db
// (backup/db_tool_main.cpp) adds verifySnapshot.
#include <string>
#include <vector>

#include "ledger/db_tool.h"

int main(int argc, char** argv) {
  return ledgerkeep::ledger::RunDbTool(std::vector<std::string>(argv + 1, argv + argc), {});
}
