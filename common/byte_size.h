// Sizes as operators write them: "1073741824", "64K", "512M", "1G", "2T"
// (powers of 1024; the suffix in either case).
// Thread-safety: free function.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace ledgerkeep {

// InvalidArgument naming `what` (a flag or config key) for anything else:
// zero, a sign, spaces, another suffix, a value over 2^64.
Result<uint64_t> ParseByteSize(std::string_view what, std::string_view text);

}  // namespace ledgerkeep
