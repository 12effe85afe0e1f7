// How events read: one human line (the CLI), or one JSON object (the CLI's
// --json and the broker's /api/events stream, the same object).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/codec.h"

namespace ledgerkeep {

// "what happened" for an event body, e.g. "r1 alive -> suspect (no heartbeat for 3100 ms)".
std::string DescribeEvent(const wire::Event& ev);
nlohmann::json EventToJson(const wire::Event& ev);
// A backup run's result: {"snapshot_id", "destination", "ok", "error",
// "error_code", "bytes_sent", "bytes_total", "files_total", "duration_s",
// "consistent", "last_block_id", "scheduled", "attempts", "set_run", "set_block"}.
nlohmann::json BackupResultToJson(const wire::BackupResult& b);
// "2026-11-25T09:12:03.120Z"
std::string FormatTimeMs(int64_t ms);

}  // namespace ledgerkeep
