// The status page (broker/status_page/index.html, compiled in by
// cmake/EmbedText.cmake): one self-contained HTML file the broker serves at
// `/`. It asks for the bearer token and reads /api/* and /api/events.
#pragma once

#include <string_view>

namespace ledgerkeep {

std::string_view StatusPageHtml();

}  // namespace ledgerkeep
