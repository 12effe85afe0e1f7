#include "common/byte_size.h"

#include <charconv>
#include <limits>
#include <string>

namespace ledgerkeep {

Result<uint64_t> ParseByteSize(std::string_view what, std::string_view text) {
  const Status bad = Status::InvalidArgument(std::string(what) +
                                             " must be a positive size such as 1073741824, 512M or 1G, got '" +
                                             std::string(text.substr(0, 40)) + "'");
  uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr == text.data() || v == 0) return bad;
  const std::string_view suffix(ptr, static_cast<size_t>(text.data() + text.size() - ptr));
  int shift = 0;
  if (suffix.empty()) {
    shift = 0;
  } else if (suffix == "K" || suffix == "k") {
    shift = 10;
  } else if (suffix == "M" || suffix == "m") {
    shift = 20;
  } else if (suffix == "G" || suffix == "g") {
    shift = 30;
  } else if (suffix == "T" || suffix == "t") {
    shift = 40;
  } else {
    return bad;
  }
  if (v > (std::numeric_limits<uint64_t>::max() >> shift)) return bad;
  return v << shift;
}

}  // namespace ledgerkeep
