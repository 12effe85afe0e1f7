#include "agents/runbook_request.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "backup/backup_destination.h"
#include "backup/backup_schedule.h"

namespace ledgerkeep {
namespace {

constexpr std::string_view kLeftQuote = "\xE2\x80\x9C";   // U+201C
constexpr std::string_view kRightQuote = "\xE2\x80\x9D";  // U+201D
// The runbook's own placeholder for the zone (step 2 and 15).
constexpr std::string_view kZonePlaceholder = "time_zone";

bool TypographicQuoteAt(std::string_view s, size_t i) {
  return s.compare(i, 3, kLeftQuote) == 0 || s.compare(i, 3, kRightQuote) == 0;
}

bool Blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// A value for a message: JSON-quoted (so control bytes and quotes show),
// cut to 80 bytes.
std::string Quoted(std::string_view s) {
  std::string cut(s.substr(0, 80));
  // Cutting may split a UTF-8 sequence: replace instead of throwing.
  std::string out = nlohmann::json(cut).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (s.size() > 80) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string ParseErrorText(const nlohmann::json::parse_error& e) {
  std::string what = e.what();
  if (auto end = what.find("] "); what.rfind("[json.exception", 0) == 0 && end != std::string::npos) {
    what = what.substr(end + 2);
  }
  return what;
}

// Strict JSON; a key repeated within one object is refused (a body that
// says two things must not silently mean the last one).
Result<nlohmann::json> ParseStrict(std::string_view text) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  std::string repeated;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    switch (event) {
      case nlohmann::json::parse_event_t::object_start: keys.emplace_back(); break;
      case nlohmann::json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case nlohmann::json::parse_event_t::key:
        if (!keys.empty() && !keys.back().insert(parsed.get<std::string>()).second && repeated.empty()) {
          repeated = parsed.get<std::string>();
        }
        break;
      default: break;
    }
    return true;
  };
  try {
    nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true);
    if (!repeated.empty()) {
      return Status::InvalidArgument("field " + Quoted(repeated) + " appears more than once in the body");
    }
    return j;
  } catch (const nlohmann::json::parse_error& e) {
    // nlohmann counts from 1; offsets here count from 0, like the warnings'.
    const size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    return Status::InvalidArgument("the body is not valid JSON at byte " + std::to_string(offset) + ": " +
                                   ParseErrorText(e));
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(std::string("the body is not valid JSON: ") + e.what());
  }
}

// The body with every typographic quote that stands where JSON syntax needs
// a quote replaced by '"' (see the header), and a warning per replacement.
std::string RepairQuotes(std::string_view body, std::vector<std::string>* warnings) {
  std::string out;
  out.reserve(body.size());
  bool in_string = false;
  for (size_t i = 0; i < body.size();) {
    const char c = body[i];
    if (TypographicQuoteAt(body, i)) {
      bool syntax = !in_string;
      if (in_string) {
        size_t k = i + 3;
        while (k < body.size() && Blank(body[k])) ++k;
        syntax = k == body.size() || body[k] == ':' || body[k] == ',' || body[k] == '}' || body[k] == ']';
      }
      if (syntax) {
        warnings->push_back("read the typographic quote " +
                            std::string(body.compare(i, 3, kLeftQuote) == 0 ? "U+201C" : "U+201D") + " at byte " +
                            std::to_string(i) + " as a plain '\"' (JSON needs ASCII quotes)");
        out.push_back('"');
        in_string = !in_string;
        i += 3;
        continue;
      }
    }
    if (in_string && c == '\\' && i + 1 < body.size()) {
      out.append(body.substr(i, 2));
      i += 2;
      continue;
    }
    if (c == '"') in_string = !in_string;
    out.push_back(c);
    ++i;
  }
  return out;
}

Result<int64_t> WaitSeconds(const QueryParams& query) {
  auto it = query.find("wait_s");
  if (it == query.end()) return kDefaultWaitS;
  const std::string& v = it->second;
  int64_t n = -1;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || v.size() > 6 || ec != std::errc() || end != v.data() + v.size() || n < 0 || n > kMaxWaitS) {
    return Status::InvalidArgument("wait_s=" + Quoted(v) + " is not a number of seconds from 0 to " +
                                   std::to_string(kMaxWaitS));
  }
  return n;
}

// OK if every parameter is one of `known`, each at most once; returns the
// value of "action".
Result<std::string> CheckQuery(const QueryParams& query, const std::vector<std::string>& actions) {
  for (auto it = query.begin(); it != query.end(); it = query.upper_bound(it->first)) {
    if (it->first != "action" && it->first != "wait_s") {
      return Status::InvalidArgument("unknown query parameter " + Quoted(it->first) +
                                     " (the parameters are action and wait_s)");
    }
    if (query.count(it->first) > 1) {
      return Status::InvalidArgument("query parameter " + it->first + " is given more than once");
    }
  }
  std::string all;
  for (const auto& a : actions) all += (all.empty() ? "" : ", ") + a;
  auto it = query.find("action");
  if (it == query.end()) return Status::InvalidArgument("no action: add ?action=<" + all + ">");
  if (std::find(actions.begin(), actions.end(), it->second) == actions.end()) {
    return Status::InvalidArgument("unknown action " + Quoted(it->second) + " (the actions are " + all + ")");
  }
  return it->second;
}

// The body's top-level object (an empty body is an empty object).
Result<LenientJson> BodyObject(std::string_view body) {
  if (std::all_of(body.begin(), body.end(), Blank)) return LenientJson{nlohmann::json::object(), {}};
  LK_ASSIGN_OR_RETURN(LenientJson j, ParseLenientJson(body));
  if (!j.value.is_object()) {
    return Status::InvalidArgument(std::string("the body must be a JSON object, not ") + j.value.type_name());
  }
  return j;
}

Result<std::string> StringField(const nlohmann::json& body, const std::string& name) {
  const nlohmann::json& v = body.at(name);
  if (!v.is_string()) {
    return Status::InvalidArgument("field " + name + " must be a string, not " + std::string(v.type_name()));
  }
  return v.get<std::string>();
}

bool DestinationChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-' || c == '/' || c == ':' || c == '@' || c == '+' || c == ',' || c == '=';
}

}  // namespace

std::string_view ActionName(BackupRequest::Action a) {
  switch (a) {
    case BackupRequest::Action::kSchedule: return "schedule";
    case BackupRequest::Action::kRunNow: return "run_now";
    case BackupRequest::Action::kUnschedule: return "unschedule";
  }
  return "?";
}

Result<LenientJson> ParseLenientJson(std::string_view body) {
  auto strict = ParseStrict(body);
  if (strict.ok()) return LenientJson{std::move(*strict), {}};
  if (body.find(kLeftQuote) == std::string_view::npos && body.find(kRightQuote) == std::string_view::npos) {
    return strict.status();
  }
  LenientJson out;
  auto repaired = ParseStrict(RepairQuotes(body, &out.warnings));
  // Offsets in the error are the body's as sent.
  if (!repaired.ok()) return strict.status();
  out.value = std::move(*repaired);
  return out;
}

Status CheckDestinationText(std::string_view d) {
  if (d.empty()) return Status::InvalidArgument("backup_destination is empty");
  for (size_t i = 0; i < d.size(); ++i) {
    if (d.compare(i, 6, "{node}") == 0) {
      i += 5;
      continue;
    }
    const char c = d[i];
    if (DestinationChar(c)) continue;
    const auto u = static_cast<unsigned char>(c);
    std::string what;
    if (u >= 0x80) {
      what = "a non-ASCII character";
      if (TypographicQuoteAt(d, i)) what = "a typographic quote (U+201C/U+201D; use a plain \")";
    } else if (u < 0x20 || u == 0x7f) {
      what = "a control character";
    } else if (c == ' ') {
      what = "a space";
    } else {
      what = std::string("'") + c + "' (a shell metacharacter)";
    }
    return Status::InvalidArgument("backup_destination " + Quoted(d) + " contains " + what + " at byte " +
                                   std::to_string(i) +
                                   "; a destination is [user@]host:/dir, /dir or rsync://host/module/dir made of "
                                   "letters, digits and . _ - / : @ + , =");
  }
  // Any ".." component, wherever it is: "host:/backups/../etc".
  size_t start = 0;
  while (start <= d.size()) {
    size_t end = d.find('/', start);
    if (end == std::string_view::npos) end = d.size();
    std::string_view part = d.substr(start, end - start);
    if (part == ".." || (part.size() > 3 && part.substr(part.size() - 3) == ":..")) {
      return Status::InvalidArgument("backup_destination " + Quoted(d) +
                                     " contains a '..' path component; give the directory itself");
    }
    start = end + 1;
  }
  return Status::OK();
}

Result<BackupRequest> ParseBackupRequest(const QueryParams& query, std::string_view body,
                                         const std::string& node_id) {
  LK_ASSIGN_OR_RETURN(std::string action, CheckQuery(query, {"schedule", "run_now", "unschedule"}));
  BackupRequest r;
  r.action = action == "schedule"  ? BackupRequest::Action::kSchedule
             : action == "run_now" ? BackupRequest::Action::kRunNow
                                   : BackupRequest::Action::kUnschedule;
  LK_ASSIGN_OR_RETURN(r.wait_s, WaitSeconds(query));
  LK_ASSIGN_OR_RETURN(LenientJson json, BodyObject(body));
  r.warnings = std::move(json.warnings);
  const nlohmann::json& j = json.value;

  static const std::vector<std::string> kFields = {"backup_destination", "schedule_frequency", "rsync_user_name",
                                                   "backup_time_zone"};
  for (const auto& [key, value] : j.items()) {
    if (std::find(kFields.begin(), kFields.end(), key) == kFields.end()) {
      return Status::InvalidArgument("unknown field " + Quoted(key) +
                                     " (the fields are backup_destination, schedule_frequency, rsync_user_name, "
                                     "backup_time_zone)");
    }
  }
  if (r.action == BackupRequest::Action::kUnschedule && !j.empty()) {
    return Status::InvalidArgument("action=unschedule takes no fields (got " + Quoted(j.begin().key()) + ")");
  }
  if (j.contains("schedule_frequency") && r.action != BackupRequest::Action::kSchedule) {
    return Status::InvalidArgument("schedule_frequency applies to action=schedule only");
  }

  if (j.contains("backup_time_zone")) {
    LK_ASSIGN_OR_RETURN(std::string zone, StringField(j, "backup_time_zone"));
    if (zone == kZonePlaceholder) {
      r.warnings.push_back("backup_time_zone \"time_zone\" is the runbook's placeholder: using UTC");
      zone = "UTC";
    } else if (zone.empty()) {
      zone = "UTC";
    }
    if (Status s = ParseSchedule("hourly", zone).status(); !s.ok()) {
      return Status::InvalidArgument("backup_time_zone " + Quoted(zone) +
                                     " is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)");
    }
    r.time_zone = zone;
  }
  if (j.contains("rsync_user_name")) {
    LK_ASSIGN_OR_RETURN(r.rsync_user, StringField(j, "rsync_user_name"));
    const bool name = r.rsync_user.size() <= 64 && (r.rsync_user.empty() || r.rsync_user[0] != '-') &&
                      std::all_of(r.rsync_user.begin(), r.rsync_user.end(), [](char c) {
                        return DestinationChar(c) && c != '/' && c != ':' && c != '@' && c != '+' && c != ',' &&
                               c != '=';
                      });
    if (!name) {
      return Status::InvalidArgument("rsync_user_name " + Quoted(r.rsync_user) +
                                     " is not a user name (letters, digits, '.', '_', '-'; not starting with '-')");
    }
  }
  if (j.contains("backup_destination")) {
    LK_ASSIGN_OR_RETURN(std::string d, StringField(j, "backup_destination"));
    LK_RETURN_IF_ERROR(CheckDestinationText(d));
    // The library's own check (the one the CLI and the agent use).
    if (auto parsed = ParseDestination(ExpandNodePlaceholder(d, node_id), r.rsync_user, "", 0); !parsed.ok()) {
      return Status::InvalidArgument("backup_destination: " + parsed.status().message());
    }
    r.destination = std::move(d);
  } else if (!r.rsync_user.empty()) {
    return Status::InvalidArgument("rsync_user_name describes a backup_destination; give the destination too");
  }

  if (r.action == BackupRequest::Action::kSchedule) {
    if (!r.destination) {
      return Status::InvalidArgument("action=schedule needs backup_destination (e.g. \"10.72.216.118:/backups\")");
    }
    if (!j.contains("schedule_frequency")) {
      return Status::InvalidArgument("action=schedule needs schedule_frequency (HOURLY, DAILY, daily@HH:MM or <N>m)");
    }
    LK_ASSIGN_OR_RETURN(std::string f, StringField(j, "schedule_frequency"));
    auto sched = ParseSchedule(f, r.time_zone);
    if (!sched.ok()) return Status::InvalidArgument("schedule_frequency: " + sched.status().message());
    r.frequency = sched->ToJson().at("frequency").get<std::string>();
  }
  return r;
}

Result<NodeManagementRequest> ParseNodeManagementRequest(const QueryParams& query, std::string_view body) {
  LK_ASSIGN_OR_RETURN(std::string action, CheckQuery(query, {"stop", "start"}));
  NodeManagementRequest r;
  r.start = action == "start";
  LK_ASSIGN_OR_RETURN(r.wait_s, WaitSeconds(query));
  LK_ASSIGN_OR_RETURN(LenientJson json, BodyObject(body));
  if (!json.value.empty()) {
    return Status::InvalidArgument("node management takes no fields (got " + Quoted(json.value.begin().key()) +
                                   ")");
  }
  r.warnings = std::move(json.warnings);
  return r;
}

}  // namespace ledgerkeep
