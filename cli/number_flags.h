// Numeric command-line values of the `ledgerkeep` CLI: whole decimal numbers
// in a documented range, and nothing else.
//
// "12" and "0012" are 12. A sign, spaces, an exponent, a fraction, hex, other
// digits than 0-9, an empty value and anything beyond the range (overflow
// included) are refused, so "-3" never wraps to 2^64-3 and "1e3" is not 1.
// Thread-safety: pure functions; ApplyNumberLimits changes only the app it is given.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace CLI {
class App;
}

namespace ledgerkeep {

// The value of `text` if it is a whole number in [min, max]; otherwise
// InvalidArgument "must be a whole number from <min> to <max>, got '<text>'"
// (the text shortened and its control characters shown as '?'), for the
// caller to prefix with the option's name.
Result<uint64_t> ParseWholeNumber(std::string_view text, uint64_t min, uint64_t max);

// Puts its range on every numeric option of `app` and its subcommands: the
// validator (ParseWholeNumber) and " (<min>..<max>)" after its help text.
// The ranges are a table by option name in number_flags.cc, the same range
// wherever the name appears. Call once, after every command group has
// registered. An Internal error names a numeric option without a range, so a
// new option cannot skip the check.
Status ApplyNumberLimits(CLI::App* app);

}  // namespace ledgerkeep
