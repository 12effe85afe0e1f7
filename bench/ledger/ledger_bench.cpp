// ledger_bench: ledgerd-style block production (generate + serialize +
// digest + atomic RocksDB write batch) into a fresh ledger, unlimited rate.
// Prints a table, then one JSON line of headline figures.
//
// Usage: ledger_bench [SECONDS_PER_CASE] (default 3)
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "ledger/block.h"
#include "ledger/ledger_store.h"

namespace {

using namespace ledgerkeep::ledger;
using Clock = std::chrono::steady_clock;

struct Row {
  const char* name;
  uint32_t payload;
  uint64_t blocks;
  double seconds;
};

Row GenerateOnly(uint32_t payload, double budget) {
  const ChainParams params{1, payload, 1000};
  Digest parent{};
  uint64_t n = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < budget) {
    for (int i = 0; i < 64; ++i) {
      ++n;
      parent = ComputeBlockDigest(n, SerializeBlock(GenerateBlock(params, n, parent)));
    }
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return {"generate+digest", payload, n, elapsed};
}

Row Produce(uint32_t payload, double budget, const std::string& dir) {
  StoreOptions o;
  o.create_if_missing = true;
  o.params = ChainParams{1, payload, 1000};
  auto store = LedgerStore::Open(dir, o);
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().ToString().c_str());
    std::exit(1);
  }
  auto& s = **store;
  uint64_t n = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < budget) {
    for (int i = 0; i < 64; ++i) {
      ++n;
      auto st = s.AppendBlock(GenerateBlock(o.params, n, s.LastReachableDigest()), false);
      if (!st.ok()) {
        std::fprintf(stderr, "append: %s\n", st.ToString().c_str());
        std::exit(1);
      }
    }
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  auto flushed = s.Flush();
  if (!flushed.ok()) std::fprintf(stderr, "flush: %s\n", flushed.ToString().c_str());
  elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  return {"produce (RocksDB)", payload, n, elapsed};
}

}  // namespace

int main(int argc, char** argv) {
  const double budget = argc > 1 ? std::atof(argv[1]) : 3.0;
  std::string tmpl = (std::filesystem::temp_directory_path() / "ledger-bench-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) return 1;
  const std::string root = tmpl;

  Row rows[] = {GenerateOnly(4096, budget), Produce(4096, budget, root + "/4k"),
                Produce(32768, budget, root + "/32k")};
  std::error_code ec;
  std::filesystem::remove_all(root, ec);

  std::printf("%-20s %10s %12s %12s %10s\n", "case", "payload", "blocks", "blocks/s", "MiB/s");
  for (const Row& r : rows) {
    const double bps = static_cast<double>(r.blocks) / r.seconds;
    std::printf("%-20s %10u %12llu %12.0f %10.1f\n", r.name, r.payload, static_cast<unsigned long long>(r.blocks),
                bps, bps * r.payload / (1024.0 * 1024.0));
  }
  std::printf("{\"bench\":\"ledger\",\"produce_4k_blocks_per_sec\":%.0f,\"produce_32k_blocks_per_sec\":%.0f,"
              "\"generate_4k_blocks_per_sec\":%.0f}\n",
              static_cast<double>(rows[1].blocks) / rows[1].seconds,
              static_cast<double>(rows[2].blocks) / rows[2].seconds,
              static_cast<double>(rows[0].blocks) / rows[0].seconds);
  return 0;
}
