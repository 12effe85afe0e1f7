#include "cli/output.h"

#include <algorithm>

namespace ledgerkeep {

void Table::Print(std::FILE* out) const {
  std::vector<size_t> width;
  for (const auto& r : rows_) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows_) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::fprintf(out, "%s\n", line.c_str());
  }
}

void PrintJson(const nlohmann::json& j) { std::printf("%s\n", j.dump().c_str()); }

void PrintTableOrJson(const GlobalFlags& g, const Table& table, const nlohmann::json& j) {
  if (g.json) {
    PrintJson(j);
  } else {
    table.Print(stdout);
  }
}

std::string HumanBytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

std::string HumanAge(int64_t ms) {
  if (ms < 0) return "-";
  char buf[32];
  if (ms < 120'000)
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(ms / 1000));
  else if (ms < 7'200'000)
    std::snprintf(buf, sizeof buf, "%lldm", static_cast<long long>(ms / 60'000));
  else
    std::snprintf(buf, sizeof buf, "%.1fh", static_cast<double>(ms) / 3'600'000);
  return buf;
}

std::string Ago(int64_t now, int64_t then) {
  if (then <= 0) return "never";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs ago", static_cast<double>(now - then) / 1000.0);
  return buf;
}

nlohmann::json PlacesJson(const std::vector<std::unique_ptr<wire::SnapshotPlaceT>>& places) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& p : places) {
    if (!p || !p->target) continue;
    arr.push_back({{"destination", p->target->destination},
                   {"home", p->home},
                   {"newest_snapshot_id", p->newest_snapshot_id}});
  }
  return arr;
}

}  // namespace ledgerkeep
