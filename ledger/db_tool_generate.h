// `ledgerkeep-db <new-db> generate`: builds a ledger holding a chain of a
// given length (LedgerStore::BulkLoad) before a replica first starts, so a
// benchmark's DB size does not wait on the production rate. The one
// ledgerkeep-db command that writes; it only ever creates a new DB.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "ledger/block.h"
#include "ledger/db_tool.h"

namespace ledgerkeep::ledger {

struct GenerateArgs {
  ChainParams params;
  uint64_t blocks = 0;  // from --blocks, or from --bytes / payload bytes
};

// Parses `generate`'s arguments: exactly one of --blocks N (1..1e9) and
// --bytes SIZE (a whole number with an optional K, M, G or T suffix, powers
// of 1024; the chain is ceil(SIZE / payload) blocks), and optionally
// --payload-bytes B (1..256 MiB, default ledgerd's), --seed S, --keyspace K
// (1..2^32-1). Flags must match ledgerd's for the cluster (ledgerd keeps the
// DB's own params and warns). InvalidArgument naming the bad flag and value.
Result<GenerateArgs> ParseGenerateArgs(const std::vector<std::string>& args);

// The command, for RunDbTool's dispatch.
DbToolDirCommand GenerateCommand();

}  // namespace ledgerkeep::ledger
