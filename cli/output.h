// How CLI commands print: an aligned plain-text table for people, or one
// line of JSON with --json, and the human forms of sizes and ages they use.
// Everything goes to stdout. Thread-safety: one thread (the CLI's).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command_group.h"
#include "common/codec.h"

namespace ledgerkeep {

// A plain-text table with aligned columns, for human CLI output.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::FILE* out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// `j` on one line, then a newline.
void PrintJson(const nlohmann::json& j);
// With --json, `j` on one line; otherwise the table. The command's single
// answer: both are built, one is printed.
void PrintTableOrJson(const GlobalFlags& g, const Table& table, const nlohmann::json& j);

// "512 B", "1.5 KiB" ... "2.0 TiB".
std::string HumanBytes(double bytes);
// "42s", "17m", "3.5h"; "-" for a negative age.
std::string HumanAge(int64_t ms);
// "1.5s ago" for `then` seen at `now` (ms); "never" for then <= 0.
std::string Ago(int64_t now, int64_t then);
// Where a node's snapshots are, home first (common/snapshot_places.h), as a
// JSON array of {destination, home, newest_snapshot_id}.
nlohmann::json PlacesJson(const std::vector<std::unique_ptr<wire::SnapshotPlaceT>>& places);

}  // namespace ledgerkeep
