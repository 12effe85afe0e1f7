#include "ledger/db_tool_generate.h"

#include <sys/stat.h>

#include <charconv>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/byte_size.h"
#include "ledger/ledger_store.h"

namespace ledgerkeep::ledger {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMaxBlocks = 1'000'000'000;
constexpr uint64_t kMaxPayloadBytes = 256ULL << 20;

Result<uint64_t> ParseCount(const std::string& flag, const std::string& text, uint64_t min, uint64_t max) {
  uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || v < min || v > max) {
    return Status::InvalidArgument(flag + " must be a whole number from " + std::to_string(min) + " to " +
                                   std::to_string(max) + ", got '" + text + "'");
  }
  return v;
}


int Usage(const Status& s) {
  std::cerr
      << "ledgerkeep-db: " << s.message() << "\n"
      << "usage: ledgerkeep-db <new-db> generate (--blocks N | --bytes SIZE) [--payload-bytes B] [--seed S] "
         "[--keyspace K]\n";
  return kDbToolExitUsage;
}

int RunGenerate(const std::string& dir, const std::vector<std::string>& argv) {
  auto args = ParseGenerateArgs(argv);
  if (!args.ok()) return Usage(args.status());
  std::error_code ec;
  if (fs::exists(dir, ec) && (!fs::is_directory(dir, ec) || !fs::is_empty(dir, ec))) {
    return Usage(Status::InvalidArgument("refusing to generate into " + dir +
                                         ": it exists and is not an empty directory (generate only "
                                         "creates a new ledger)"));
  }
  ::umask(077);  // ledger data is private to its owner, as ledgerd's
  StoreOptions options;
  options.create_if_missing = true;
  options.params = args->params;
  const auto start = std::chrono::steady_clock::now();
  auto store = LedgerStore::Open(dir, options);
  if (!store.ok()) {
    std::cerr << "ledgerkeep-db: " << store.status().ToString() << "\n";
    return kDbToolExitFailed;
  }
  auto bytes = (*store)->BulkLoad(args->blocks, nullptr);
  if (!bytes.ok()) {
    std::cerr << "ledgerkeep-db: generate: " << bytes.status().ToString() << "\n";
    return kDbToolExitFailed;
  }
  const Digest last = (*store)->LastReachableDigest();
  store->reset();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t db_bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec)) db_bytes += entry.file_size(ec);
  }
  nlohmann::json out = {
      {"result", "ok"},
      {"blocks", std::to_string(args->blocks)},
      {"lastBlockID", std::to_string(args->blocks)},
      {"lastDigest", DigestToHex(last)},
      {"payloadBytes", std::to_string(args->params.payload_bytes)},
      {"blockBytes", std::to_string(*bytes)},
      {"dbBytes", std::to_string(db_bytes)},
      {"seconds", seconds},
      {"mibPerSec", seconds > 0 ? static_cast<double>(db_bytes) / seconds / (1 << 20) : 0.0}};
  std::cout << out.dump() << "\n";
  return kDbToolExitOk;
}

}  // namespace

Result<GenerateArgs> ParseGenerateArgs(const std::vector<std::string>& args) {
  GenerateArgs out;
  std::optional<uint64_t> blocks, bytes;
  for (size_t i = 0; i < args.size(); i += 2) {
    const std::string& flag = args[i];
    if (i + 1 >= args.size()) return Status::InvalidArgument(flag + " needs a value");
    const std::string& value = args[i + 1];
    if (flag == "--blocks") {
      LK_ASSIGN_OR_RETURN(blocks, ParseCount(flag, value, 1, kMaxBlocks));
    } else if (flag == "--bytes") {
      LK_ASSIGN_OR_RETURN(bytes, ParseByteSize(flag, value));
    } else if (flag == "--payload-bytes") {
      LK_ASSIGN_OR_RETURN(uint64_t p, ParseCount(flag, value, 1, kMaxPayloadBytes));
      out.params.payload_bytes = static_cast<uint32_t>(p);
    } else if (flag == "--seed") {
      LK_ASSIGN_OR_RETURN(out.params.seed, ParseCount(flag, value, 0, std::numeric_limits<uint64_t>::max()));
    } else if (flag == "--keyspace") {
      LK_ASSIGN_OR_RETURN(uint64_t k, ParseCount(flag, value, 1, std::numeric_limits<uint32_t>::max()));
      out.params.keyspace = static_cast<uint32_t>(k);
    } else {
      return Status::InvalidArgument("unknown flag '" + flag + "'");
    }
  }
  if (blocks.has_value() == bytes.has_value()) {
    return Status::InvalidArgument("give exactly one of --blocks N and --bytes SIZE");
  }
  if (bytes) {
    const uint64_t n = (*bytes + out.params.payload_bytes - 1) / out.params.payload_bytes;
    if (n > kMaxBlocks) {
      return Status::InvalidArgument("--bytes " + std::to_string(*bytes) + " is " + std::to_string(n) +
                                     " blocks of " + std::to_string(out.params.payload_bytes) +
                                     " payload bytes; at most " + std::to_string(kMaxBlocks));
    }
    blocks = n;
  }
  out.blocks = *blocks;
  return out;
}

DbToolDirCommand GenerateCommand() {
  return {
      "generate",
      "  <new-db> generate (--blocks N | --bytes SIZE) [--payload-bytes B] [--seed S] [--keyspace K]\n"
      "                                       write a new ledger holding blocks 1..N of the chain, before\n"
      "                                       its replica first starts (SIZE: 1G, 512M ...; the clock\n"
      "                                       starts at ledgerd's --genesis-time-ms); refuses a non-empty\n"
      "                                       directory\n",
      RunGenerate};
}

}  // namespace ledgerkeep::ledger
