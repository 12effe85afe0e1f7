// The runbook's HTTP requests (docs/http-and-metrics.md, "The agent: the
// runbook's API"), read and checked before anything is issued:
//
//   POST /api/backup?action=schedule|run_now|unschedule[&wait_s=N]
//        {"backup_destination": "...", "schedule_frequency": "HOURLY",
//         "rsync_user_name": "vmbc", "backup_time_zone": "time_zone"}
//   POST /api/node/management?action=stop|start[&wait_s=N]      (no body, or {})
//
// Every error is InvalidArgument with a message for the operator (the HTTP
// side answers 400): malformed JSON names the byte offset, an unknown or
// repeated field or query parameter is named, a value of the wrong type or
// out of range says what is accepted. Nothing here does I/O.
//
// Two things the runbook prints are accepted with a warning (returned in
// `warnings`, for the reply and the log):
//   - a typographic quote U+201C/U+201D standing where JSON needs a quote
//     (its step 2 reads {"backup_destination”: ...}) is read as a plain one.
//     Only when the body is not valid JSON as sent, and only quotes that make
//     it valid: outside a string, or inside one where the string must end
//     (the next non-blank byte is ':', ',', '}' or ']'). Anywhere else it
//     stays what it is, and the destination check refuses it.
//   - "backup_time_zone": "time_zone" (its placeholder) is UTC.
//
// Destinations are checked twice: by the backup library's parser (the one
// the CLI and the agent use: syntax, host, user, control characters) and
// here, stricter, because they come from a web request: only letters,
// digits and . _ - / : @ + , = (and the {node} placeholder), no ".." path
// component, so shell metacharacters and traversal are refused by name.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ledgerkeep {

// How long an action waits for its result before answering 202. Default:
// 3600 s; at most 86400.
inline constexpr int64_t kDefaultWaitS = 3600;
inline constexpr int64_t kMaxWaitS = 86'400;

// Query parameters as the HTTP server parsed them (repeats kept).
using QueryParams = std::multimap<std::string, std::string>;

struct LenientJson {
  nlohmann::json value;
  std::vector<std::string> warnings;  // one per typographic quote read as '"'
};

// `body` as JSON (any value); a typographic quote where JSON needs a quote
// is read as one (see above). A key repeated within an object is refused.
Result<LenientJson> ParseLenientJson(std::string_view body);

struct BackupRequest {
  enum class Action { kSchedule, kRunNow, kUnschedule };
  Action action = Action::kRunNow;
  // The destination as given ({node} allowed); nullopt = not given (run_now:
  // the node's configured one; schedule needs one).
  std::optional<std::string> destination;
  std::string rsync_user;            // "" = none
  std::string frequency;             // schedule: ParseSchedule's form, lower case
  std::string time_zone = "UTC";     // an IANA zone
  int64_t wait_s = kDefaultWaitS;
  std::vector<std::string> warnings;
};

struct NodeManagementRequest {
  bool start = false;  // false: stop
  int64_t wait_s = kDefaultWaitS;
  std::vector<std::string> warnings;
};

// `node_id` expands {node} for the destination's syntax check.
Result<BackupRequest> ParseBackupRequest(const QueryParams& query, std::string_view body,
                                         const std::string& node_id);
Result<NodeManagementRequest> ParseNodeManagementRequest(const QueryParams& query, std::string_view body);

// The stricter destination check described above (before ParseDestination).
Status CheckDestinationText(std::string_view destination);

// "action" in ActionName(...) form, for replies and logs.
std::string_view ActionName(BackupRequest::Action a);

}  // namespace ledgerkeep
