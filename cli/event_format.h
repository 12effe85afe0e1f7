// How the CLI shows events: one human line, or one JSON object.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/codec.h"

namespace ledgerkeep {

// "what happened" for an event body, e.g. "r1 alive -> suspect (no heartbeat for 3100 ms)".
std::string DescribeEvent(const wire::Event& ev);
nlohmann::json EventToJson(const wire::Event& ev);
// "2026-11-25T09:12:03.120Z"
std::string FormatTimeMs(int64_t ms);

}  // namespace ledgerkeep
