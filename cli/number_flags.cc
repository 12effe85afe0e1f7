#include "cli/number_flags.h"

#include <CLI/CLI.hpp>
#include <cstdint>
#include <limits>
#include <string>

#include "backup/backup_schedule.h"
#include "backup/retention.h"

namespace ledgerkeep {
namespace {

// `text` as it may appear in a one-line message: at most 40 bytes, control
// characters as '?'.
std::string Echo(std::string_view text) {
  constexpr size_t kMax = 40;
  std::string out;
  for (size_t i = 0; i < text.size() && i < kMax; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    out += c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c);
  }
  if (text.size() > kMax) out += "...";
  return out;
}

// The range of every numeric option, by name (the same range wherever the
// name appears). A value outside it, or not a whole number, is a usage error
// before anything is sent. Agents check the backup schedule's numbers again.
struct NumberLimit {
  const char* name;
  uint64_t min;
  uint64_t max;
};
constexpr NumberLimit kNumberLimits[] = {
    {"--timeout-ms", 1, 3'600'000},
    {"--delay-ms", 0, 3'600'000},
    {"--wait-s", 1, 604'800},  // 7 days
    {"--timeout-s", 1, 86'400},
    {"--wedge-timeout-s", 1, 86'400},
    {"--backup-timeout-s", 1, 604'800},
    {"--ship-timeout-s", 1, 2'592'000},  // 30 days
    {"--run", 1, UINT64_MAX},
    {"--set", 1, UINT64_MAX},
    {"--ssh-port", 1, 65'535},
    {"--keep", 0, kMaxKeepLast},
    {"--max-age-days", 0, kMaxRetentionDays},
    {"--min-free-mb", 0, kMaxMinFreeBytes >> 20},
    {"--since", 1, static_cast<uint64_t>(INT64_MAX)},
    {"--last", 1, 1'000'000},
    // config init
    {"--replicas", 0, 999},
    {"--clients", 0, 999},
    {"--clones", 0, 999},
    {"--port-base", 1, 65'533},
    {"--heartbeat-ms", 10, 3'600'000},
    {"--blocks-per-sec", 0, 1'000'000},
    {"--payload-bytes", 0, 64u << 20},
    {"--genesis-ms", 1, static_cast<uint64_t>(INT64_MAX)},
};

}  // namespace

Result<uint64_t> ParseWholeNumber(std::string_view text, uint64_t min, uint64_t max) {
  auto refuse = [&] {
    return Status::InvalidArgument("must be a whole number from " + std::to_string(min) + " to " +
                                   std::to_string(max) + ", got '" + Echo(text) + "'");
  };
  if (text.empty()) return refuse();
  uint64_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return refuse();
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) return refuse();  // overflow
    v = v * 10 + digit;
  }
  if (v < min || v > max) return refuse();
  return v;
}

Status ApplyNumberLimits(CLI::App* app) {
  for (CLI::Option* opt : app->get_options()) {
    const std::string type = opt->get_type_name();
    if (type != "INT" && type != "UINT" && type != "FLOAT") continue;
    const NumberLimit* limit = nullptr;
    for (const auto& l : kNumberLimits) {
      if (opt->check_name(l.name)) limit = &l;
    }
    if (limit == nullptr) {
      return Status::Internal("option " + opt->get_name() + " of `" + app->get_name() + "` has no range");
    }
    const uint64_t min = limit->min, max = limit->max;
    opt->description(opt->get_description() + " (" + std::to_string(min) + ".." + std::to_string(max) + ")");
    opt->check(CLI::Validator(
        [min, max](std::string& text) {
          auto v = ParseWholeNumber(text, min, max);
          return v.ok() ? std::string() : v.status().message();
        },
        "", "whole number"));
  }
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) {
    LK_RETURN_IF_ERROR(ApplyNumberLimits(sub));
  }
  return Status::OK();
}

}  // namespace ledgerkeep
