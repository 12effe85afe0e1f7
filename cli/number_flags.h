// Numeric command-line values of the `ledgerkeep` CLI: whole decimal numbers
// in a documented range, and nothing else.
//
// "12" and "0012" are 12. A sign, spaces, an exponent, a fraction, hex, other
// digits than 0-9, an empty value and anything beyond the range (overflow
// included) are refused, so "-3" never wraps to 2^64-3 and "1e3" is not 1.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ledgerkeep {

// The value of `text` if it is a whole number in [min, max]; otherwise
// InvalidArgument "must be a whole number from <min> to <max>, got '<text>'"
// (the text shortened and its control characters shown as '?'), for the
// caller to prefix with the option's name.
Result<uint64_t> ParseWholeNumber(std::string_view text, uint64_t min, uint64_t max);

}  // namespace ledgerkeep
