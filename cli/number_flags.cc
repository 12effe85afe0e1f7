#include "cli/number_flags.h"

#include <limits>

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

}  // namespace ledgerkeep
