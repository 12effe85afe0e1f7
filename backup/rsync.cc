#include "backup/rsync.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "common/backoff.h"
#include "common/clock.h"

namespace ledgerkeep {
namespace {

// The heartbeat re-sends the latest progress when nothing was delivered for
// this long; with the 100 ms tick the gap stays well under one second.
constexpr int64_t kProgressHeartbeatMs = 700;
constexpr int64_t kTickMs = 100;
constexpr int64_t kTermGraceMs = 2000;
constexpr size_t kStderrTailLines = 6;
constexpr size_t kStderrTailChars = 1500;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Splits on runs of spaces.
std::vector<std::string_view> Tokens(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && IsSpace(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !IsSpace(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// "1,234,567" or "1234567" -> 1234567. The whole token must be a number.
std::optional<uint64_t> ParseCount(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  bool digit = false;
  for (char c : s) {
    if (c == ',') continue;
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
    digit = true;
  }
  if (!digit) return std::nullopt;
  return v;
}

std::optional<double> ParseDecimal(std::string_view s) {
  std::string clean;
  for (char c : s)
    if (c != ',') clean += c;
  double v = 0;
  auto [ptr, ec] = std::from_chars(clean.data(), clean.data() + clean.size(), v);
  if (ec != std::errc() || ptr != clean.data() + clean.size()) return std::nullopt;
  return v;
}

// A byte count: plain ("1,234") or, when the caller turned --human-readable
// back on, with a K/M/G/T suffix ("1.23M").
std::optional<uint64_t> ParseBytes(std::string_view s) {
  if (auto plain = ParseCount(s)) return plain;
  if (s.empty()) return std::nullopt;
  double mult = 0;
  switch (s.back()) {
    case 'K': case 'k': mult = 1e3; break;
    case 'M': mult = 1e6; break;
    case 'G': mult = 1e9; break;
    case 'T': mult = 1e12; break;
    default: return std::nullopt;
  }
  auto v = ParseDecimal(s.substr(0, s.size() - 1));
  if (!v || *v < 0) return std::nullopt;
  return static_cast<uint64_t>(*v * mult);
}

// "12.34MB/s" -> bytes/s (rsync's units are binary).
std::optional<uint64_t> ParseRate(std::string_view s) {
  static constexpr std::pair<std::string_view, double> kUnits[] = {
      {"TB/s", 1024.0 * 1024 * 1024 * 1024}, {"GB/s", 1024.0 * 1024 * 1024}, {"MB/s", 1024.0 * 1024},
      {"kB/s", 1024.0}, {"KB/s", 1024.0}, {"B/s", 1.0}};
  for (const auto& [unit, mult] : kUnits) {
    if (s.size() > unit.size() && s.substr(s.size() - unit.size()) == unit) {
      auto v = ParseDecimal(s.substr(0, s.size() - unit.size()));
      if (!v || *v < 0) return std::nullopt;
      return static_cast<uint64_t>(*v * mult);
    }
  }
  return std::nullopt;
}

// "H:MM:SS" -> seconds; "??:??:??" -> -1; anything else nullopt.
std::optional<int64_t> ParseClock(std::string_view s) {
  if (s.find('?') != std::string_view::npos) return -1;
  int64_t total = 0;
  int parts = 0;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(':', i);
    if (j == std::string_view::npos) j = s.size();
    auto v = ParseCount(s.substr(i, j - i));
    if (!v || s.substr(i, j - i).find(',') != std::string_view::npos) return std::nullopt;
    total = total * 60 + static_cast<int64_t>(*v);
    ++parts;
    i = j + 1;
  }
  if (parts != 3) return std::nullopt;
  return total;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find_first_of("\r\n", i);
    if (j == std::string_view::npos) j = text.size();
    auto line = Trim(text.substr(i, j - i));
    if (!line.empty()) out.push_back(line);
    i = j + 1;
  }
  return out;
}

// The last few lines of stderr, for messages.
std::string StderrTail(std::string_view text) {
  auto lines = Lines(text);
  size_t from = lines.size() > kStderrTailLines ? lines.size() - kStderrTailLines : 0;
  std::string out;
  for (size_t i = from; i < lines.size(); ++i) {
    if (!out.empty()) out += " | ";
    out += lines[i];
  }
  if (out.size() > kStderrTailChars) out = "..." + out.substr(out.size() - kStderrTailChars);
  return out.empty() ? "(nothing)" : out;
}

// The first stderr line containing `needle`, for messages.
std::string LineWith(std::string_view text, std::string_view needle) {
  for (auto line : Lines(text))
    if (Contains(line, needle)) return std::string(line.substr(0, 400));
  return std::string(needle);
}

std::string_view ExitMeaning(int code) {
  switch (code) {
    case 1: return "syntax or usage error";
    case 2: return "protocol incompatibility";
    case 3: return "errors selecting input/output files or directories";
    case 4: return "requested action not supported";
    case 5: return "error starting client-server protocol";
    case 10: return "error in socket I/O";
    case 11: return "error in file I/O";
    case 12: return "error in rsync protocol data stream";
    case 14: return "error in IPC code";
    case 20: return "received SIGUSR1 or SIGINT";
    case 22: return "error allocating memory";
    case 23: return "partial transfer due to error";
    case 24: return "partial transfer due to vanished source files";
    case 30: return "timeout in data send/receive";
    case 35: return "timeout waiting for daemon connection";
    case 127: return "command not found";
    case 255: return "ssh failed";
    default: return "unknown error";
  }
}

std::string Describe(const ProcessResult& r) {
  if (r.term_signal != 0) return "killed by signal " + std::to_string(r.term_signal);
  return "exit " + std::to_string(r.exit_code) + ": " + std::string(ExitMeaning(r.exit_code));
}

std::string Seconds(int64_t ms) {
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string WithTrailingSlash(std::string s) {
  if (s.empty() || s.back() != '/') s += '/';
  return s;
}

// Decides about one finished run: nullopt means success.
using Judge = std::function<std::optional<RsyncFailure>(const ProcessResult&)>;

struct Hooks {
  std::function<void(std::string_view)> on_stdout;
  std::function<void(int attempt)> on_attempt;  // before each attempt starts
  std::function<void()> on_tick;                // while running and during backoff
};

struct RetryOutcome {
  ProcessResult result;
  int attempts = 0;
};

// Runs argv until the judge accepts a result, a failure is not retryable,
// attempts run out, the overall timeout passes or the caller cancels.
Result<RetryOutcome> RunWithRetries(ProcessRunner* runner, const RsyncOptions& options,
                                    const std::vector<std::string>& argv, const std::string& what,
                                    int64_t per_attempt_timeout_ms, const Judge& judge, const Hooks& hooks) {
  const int64_t start = MonotonicMs();
  const int64_t deadline = options.timeout_ms > 0 ? start + options.timeout_ms : INT64_MAX;
  const int max_attempts = std::max(options.max_attempts, 1);
  ExponentialBackoff backoff(std::max<int64_t>(options.backoff_base_ms, 1),
                             std::max(options.backoff_max_ms, options.backoff_base_ms), std::random_device{}());
  auto over_time = [&](const std::string& last) {
    return Status::Timeout(what + " did not finish within " + Seconds(options.timeout_ms) + " (the overall limit)" + (last.empty() ? "" : "; last error: " + last) +
                           ". A rerun resumes where this one stopped");
  };
  auto cancelled = [&] {
    return Status::Aborted(what + " was cancelled");
  };
  RsyncFailure last;
  int attempt = 0;
  for (attempt = 1; attempt <= max_attempts; ++attempt) {
    if (hooks.on_attempt) hooks.on_attempt(attempt);
    RunOptions ro;
    ro.background = options.background;
    ro.env = options.env;
    ro.env.emplace_back("LC_ALL", "C");  // messages and numbers we parse
    ro.env.emplace_back("LANG", "C");
    ro.term_grace_ms = kTermGraceMs;
    ro.poll_interval_ms = kTickMs;
    ro.cancelled = options.cancelled;
    ro.on_stdout = hooks.on_stdout;
    ro.on_tick = hooks.on_tick;
    int64_t limit = per_attempt_timeout_ms;
    if (deadline != INT64_MAX) {
      int64_t remaining = std::max<int64_t>(deadline - MonotonicMs(), 1);
      limit = limit > 0 ? std::min(limit, remaining) : remaining;
    }
    ro.timeout_ms = limit;
    auto r = runner->RunStreaming(argv, ro);
    if (!r.ok()) return r.status().WithContext(what);
    if (r->cancelled) return cancelled();
    if (r->timed_out) {
      if (MonotonicMs() >= deadline) return over_time(last.status.ok() ? "" : last.status.message());
      last = RsyncFailure{Status::Timeout(what + " did not finish within " + Seconds(limit) + "; stderr: " + StderrTail(r->stderr_tail)),
                          false};
      break;
    }
    auto failure = judge(*r);
    if (!failure) return RetryOutcome{std::move(*r), attempt};
    last = std::move(*failure);
    if (!last.retryable || attempt == max_attempts) break;
    const int64_t wait_until = MonotonicMs() + backoff.NextDelayMs();
    while (true) {
      int64_t now = MonotonicMs();
      if (now >= wait_until) break;
      if (now >= deadline) return over_time(last.status.message());
      if (options.cancelled && options.cancelled()) return cancelled();
      if (hooks.on_tick) hooks.on_tick();
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(wait_until - now, 50)));
    }
  }
  const int ran = std::min(attempt, max_attempts);
  if (ran > 1) {
    return Status(last.status.code(),
                  last.status.message() + " (gave up after " + std::to_string(ran) + " attempts)");
  }
  return last.status;
}

// The argv prefix shared by Copy and ListRemote: -e only when a side is SSH.
void AddRemoteShell(const RsyncOptions& options, const std::vector<std::string>& endpoints,
                    std::vector<std::string>& argv) {
  if (options.ssh_argv.empty()) return;
  for (const auto& e : endpoints) {
    if (ClassifyRsyncEndpoint(e) == RsyncEndpointKind::kSsh) {
      argv.push_back("-e");
      argv.push_back(RsyncRemoteShellArg(options.ssh_argv));
      return;
    }
  }
}

}  // namespace

std::optional<RsyncProgress> ParseRsyncProgressLine(std::string_view line) {
  auto tok = Tokens(line);
  if (tok.size() != 4 && tok.size() != 6) return std::nullopt;
  RsyncProgress p;
  auto bytes = ParseBytes(tok[0]);
  if (!bytes) return std::nullopt;
  p.bytes_done = *bytes;
  if (tok[1].size() < 2 || tok[1].back() != '%') return std::nullopt;
  auto pct = ParseCount(tok[1].substr(0, tok[1].size() - 1));
  if (!pct || *pct > 100) return std::nullopt;
  p.percent = static_cast<int>(*pct);
  auto rate = ParseRate(tok[2]);
  if (!rate) return std::nullopt;
  p.rate_bps = *rate;
  auto clock = ParseClock(tok[3]);
  if (!clock) return std::nullopt;
  if (p.percent > 0) p.bytes_total = p.bytes_done * 100 / static_cast<uint64_t>(p.percent);
  if (tok.size() == 4) {
    // Mid-file record: the clock is rsync's estimate of the time left.
    p.eta_s = *clock;
    return p;
  }
  // End-of-file record "(xfr#N, to-chk=R/T)" or "(xfr#N, ir-chk=R/T)": the
  // clock is the elapsed time, so the time left is derived from the rate.
  if (tok[4].substr(0, 5) != "(xfr#" || tok[4].back() != ',' || !ParseCount(tok[4].substr(5, tok[4].size() - 6)))
    return std::nullopt;
  std::string_view chk = tok[5];
  if ((chk.substr(0, 7) != "to-chk=" && chk.substr(0, 7) != "ir-chk=") || chk.back() != ')') return std::nullopt;
  chk = chk.substr(7, chk.size() - 8);
  size_t slash = chk.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto remaining = ParseCount(chk.substr(0, slash));
  auto total = ParseCount(chk.substr(slash + 1));
  if (!remaining || !total || *remaining > *total) return std::nullopt;
  p.files_total = *total;
  p.files_done = *total - *remaining;
  if (p.percent == 100) {
    p.eta_s = 0;
  } else if (p.rate_bps > 0 && p.bytes_total > p.bytes_done) {
    p.eta_s = static_cast<int64_t>((p.bytes_total - p.bytes_done) / p.rate_bps);
  }
  return p;
}

RsyncStats ParseRsyncStats(std::string_view output) {
  RsyncStats s;
  auto field = [](std::string_view line, std::string_view key) -> std::optional<uint64_t> {
    if (line.substr(0, key.size()) != key) return std::nullopt;
    auto tok = Tokens(line.substr(key.size()));
    if (tok.empty()) return std::nullopt;
    return ParseBytes(tok[0]);
  };
  for (auto line : Lines(output)) {
    if (auto v = field(line, "Total file size:")) {
      s.total_file_size = *v;
      s.parsed = true;
    } else if (auto t = field(line, "Total transferred file size:")) {
      s.total_transferred_file_size = *t;
    } else if (auto n = field(line, "Number of regular files transferred:")) {
      s.regular_files_transferred = *n;
    } else if (auto b = field(line, "Total bytes sent:")) {
      s.total_bytes_sent = *b;
    }
  }
  return s;
}

RsyncEndpointKind ClassifyRsyncEndpoint(std::string_view endpoint) {
  if (endpoint.substr(0, 8) == "rsync://") return RsyncEndpointKind::kDaemon;
  size_t colon = endpoint.find(':');
  size_t slash = endpoint.find('/');
  if (colon == std::string_view::npos || colon == 0 || (slash != std::string_view::npos && slash < colon))
    return RsyncEndpointKind::kLocal;
  if (colon + 1 < endpoint.size() && endpoint[colon + 1] == ':') return RsyncEndpointKind::kDaemon;
  return RsyncEndpointKind::kSsh;
}

RsyncFailure ClassifyRsyncFailure(const ProcessResult& r, std::string_view what_view) {
  const std::string what(what_view);
  std::string_view err = r.stderr_tail.empty() ? std::string_view(r.output) : std::string_view(r.stderr_tail);
  const std::string tail = StderrTail(err);
  auto make = [&](StatusCode code, bool retryable, const std::string& diagnosis, const std::string& check) {
    return RsyncFailure{Status(code, what + " failed: " + diagnosis + ". Check " + check + ". (" + Describe(r) +
                                         "; stderr: " + tail + ")"),
                        retryable};
  };
  // Text first: the same exit code covers causes with different remedies,
  // and a remote receiver's error reaches us as a broken stream (exit 12).
  for (std::string_view needle : {"No space left on device", "Disk quota exceeded"}) {
    if (Contains(err, needle)) {
      return make(StatusCode::kNoSpace, false, "the destination is out of space (" + LineWith(err, needle) + ")",
                  "free space and quotas on the destination filesystem, or reduce retention; rerunning "
                  "resumes the copy");
    }
  }
  if (Contains(err, "auth failed")) {
    return make(StatusCode::kPermissionDenied, false,
                "the rsync daemon rejected the credentials (" + LineWith(err, "auth failed") + ")",
                "the module's `auth users` and `secrets file` and the password given to rsync "
                "(RSYNC_PASSWORD or --password-file)");
  }
  if (Contains(err, "Unknown module")) {
    return make(StatusCode::kNotFound, false,
                "the rsync daemon has no such module (" + LineWith(err, "Unknown module") + ")",
                "the module name in the destination URL against the daemon's rsyncd.conf");
  }
  if (Contains(err, "module is read only")) {
    return make(StatusCode::kPermissionDenied, false, "the rsync daemon module is read-only",
                "`read only = no` for that module in the daemon's rsyncd.conf");
  }
  if (Contains(err, "max connections")) {
    return make(StatusCode::kUnavailable, true, "the rsync daemon is at its connection limit",
                "`max connections` in the daemon's rsyncd.conf");
  }
  if (Contains(err, "@ERROR")) {
    return make(StatusCode::kPermissionDenied, false,
                "the rsync daemon refused the session (" + LineWith(err, "@ERROR") + ")",
                "the daemon's rsyncd.conf (hosts allow, auth users) and its log");
  }
  if (Contains(err, "Host key verification failed")) {
    return make(StatusCode::kPermissionDenied, false, "the SSH host key of the destination is not trusted",
                "the destination's host key: it must be in the destination's known_hosts file "
                "(--known-hosts FILE, or the node's [backup] ssh_options); check its fingerprint and add it "
                "there (ssh-keyscan), or pass --accept-new-host-key to trust it on first use");
  }
  if (Contains(err, "Permission denied (")) {  // ssh: "Permission denied (publickey,password)."
    return make(StatusCode::kPermissionDenied, false,
                "SSH authentication failed (" + LineWith(err, "Permission denied (") + ")",
                "that the key given with --ssh-key is in the remote user's authorized_keys and the user "
                "may log in");
  }
  if (Contains(err, "Permission denied")) {
    return make(StatusCode::kPermissionDenied, false,
                "permission denied (" + LineWith(err, "Permission denied") + ")",
                "ownership and mode of the source and destination directories for the user rsync runs as");
  }
  if (Contains(err, "Read-only file system")) {
    return make(StatusCode::kPermissionDenied, false,
                "the destination filesystem is read-only (" + LineWith(err, "Read-only file system") + ")",
                "how the destination is mounted (remount it read-write)");
  }
  if (Contains(err, "command not found")) {
    return make(StatusCode::kNotFound, false, "a program is missing on the remote host (" +
                                                  LineWith(err, "command not found") + ")",
                "that rsync is installed and on the PATH of the remote user");
  }
  if (Contains(err, "No such file or directory")) {
    return make(StatusCode::kNotFound, false,
                "a path does not exist (" + LineWith(err, "No such file or directory") + ")",
                "that the sources exist and that the destination's parent directory exists");
  }
  for (std::string_view needle :
       {"Connection refused", "No route to host", "Could not resolve", "Name or service not known",
        "Temporary failure in name resolution", "Network is unreachable", "Connection timed out",
        "Operation timed out", "kex_exchange_identification", "Connection closed by", "failed to connect to"}) {
    if (Contains(err, needle)) {
      return make(StatusCode::kUnavailable, true, "the destination cannot be reached (" + LineWith(err, needle) + ")",
                  "that the destination host is up, the address and port are right and the network/"
                  "firewall lets the connection through");
    }
  }
  if (r.term_signal != 0) {
    return make(StatusCode::kIOError, true, "rsync was killed by signal " + std::to_string(r.term_signal),
                "what killed it (OOM killer, an operator); rerunning resumes the copy");
  }
  switch (r.exit_code) {
    case 10:
    case 12:
      return make(StatusCode::kUnavailable, true, "the connection to the destination broke",
                  "the network and the destination host");
    case 255:
      return make(StatusCode::kUnavailable, true, "ssh could not connect to the destination",
                  "the destination host, its SSH port and the node's [backup] ssh_options");
    case 20:
      return make(StatusCode::kIOError, true, "rsync was interrupted by a signal", "what interrupted it");
    case 30:
      return make(StatusCode::kTimeout, true, "no data moved within the I/O timeout",
                  "the destination host's load and the network; raise io_timeout_s if it is just slow");
    case 35:
      return make(StatusCode::kTimeout, true, "the rsync daemon did not answer in time",
                  "the daemon's host and its load");
    default:
      break;
  }
  if (r.exit_code == 1) {
    return make(StatusCode::kInvalidArgument, false, "rsync rejected its command line",
                "the extra rsync arguments in the backup configuration");
  }
  if (r.exit_code == 24) {
    return make(StatusCode::kIOError, false, "source files vanished during the copy",
                "whether the source is being modified (copy a checkpoint instead of live files)");
  }
  return make(StatusCode::kIOError, false, "rsync reported an error",
              "the stderr below, the source and destination filesystems and the rsync log");
}

std::string RsyncRemoteShellArg(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    out += '\'';
    for (char c : a) {
      out += c;
      if (c == '\'') out += '\'';
    }
    out += '\'';
  }
  return out;
}

RsyncRunner::RsyncRunner(ProcessRunner* runner, RsyncOptions options)
    : runner_(runner), options_(std::move(options)) {}

std::string RsyncBwlimitArg(uint64_t bytes_per_s) {
  if (bytes_per_s == 0) return "";
  return "--bwlimit=" + std::to_string(std::max<uint64_t>(1, (bytes_per_s + 1023) / 1024));
}

Result<RsyncResult> RsyncRunner::Copy(const std::vector<std::string>& sources, const std::string& dest) {
  if (sources.empty()) return Status::InvalidArgument("rsync: no sources to copy to " + dest);
  if (dest.empty()) return Status::InvalidArgument("rsync: empty destination");
  const int64_t start = MonotonicMs();
  std::vector<std::string> argv = {"rsync", "-a", "--info=progress2", "--no-inc-recursive", "--stats",
                                   "--no-human-readable", "--timeout=" + std::to_string(options_.io_timeout_s)};
  if (options_.partial) argv.push_back("--partial");
  if (options_.bwlimit_bytes_per_s > 0) argv.push_back(RsyncBwlimitArg(options_.bwlimit_bytes_per_s));
  std::vector<std::string> endpoints = sources;
  endpoints.push_back(dest);
  AddRemoteShell(options_, endpoints, argv);
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  argv.insert(argv.end(), sources.begin(), sources.end());
  argv.push_back(dest);

  // Progress state: `reported` is what the caller last saw; bytes and percent
  // only move forward across attempts (a retry's counters restart at 0).
  RsyncProgress reported;
  int64_t last_emit = 0;
  std::string pending;  // an unfinished progress record
  auto emit = [&](const RsyncProgress& p) {
    last_emit = MonotonicMs();
    if (options_.on_progress) options_.on_progress(p);
  };
  auto absorb = [&](const RsyncProgress& p) {
    reported.bytes_done = std::max(reported.bytes_done, p.bytes_done);
    reported.percent = std::max(reported.percent, p.percent);
    if (p.bytes_total > 0) reported.bytes_total = std::max(p.bytes_total, reported.bytes_done);
    reported.rate_bps = p.rate_bps;
    reported.eta_s = p.eta_s;
    if (p.files_total > 0) {
      reported.files_total = p.files_total;
      reported.files_done = p.files_done;
    }
  };
  Hooks hooks;
  hooks.on_attempt = [&](int attempt) {
    reported.attempt = attempt;
    pending.clear();
    emit(reported);
  };
  hooks.on_stdout = [&](std::string_view chunk) {
    pending.append(chunk);
    bool fresh = false;
    size_t begin = 0;
    while (true) {
      size_t end = pending.find_first_of("\r\n", begin);
      if (end == std::string::npos) break;
      if (auto p = ParseRsyncProgressLine(std::string_view(pending).substr(begin, end - begin))) {
        absorb(*p);
        fresh = true;
      }
      begin = end + 1;
    }
    pending.erase(0, begin);
    if (pending.size() > 4096) pending.clear();  // not progress output
    if (fresh) emit(reported);
  };
  hooks.on_tick = [&] {
    if (MonotonicMs() - last_emit >= kProgressHeartbeatMs) emit(reported);
  };
  const bool allow_vanished = options_.allow_vanished_source_files;
  const std::string what = "rsync to " + dest;
  Judge judge = [&](const ProcessResult& r) -> std::optional<RsyncFailure> {
    if (r.term_signal == 0 && (r.exit_code == 0 || (allow_vanished && r.exit_code == 24))) return std::nullopt;
    return ClassifyRsyncFailure(r, what);
  };
  LK_ASSIGN_OR_RETURN(RetryOutcome outcome,
                      RunWithRetries(runner_, options_, argv, what, /*per_attempt_timeout_ms=*/0, judge, hooks));
  RsyncResult result;
  result.stats = ParseRsyncStats(outcome.result.stdout_tail);
  result.attempts = outcome.attempts;
  result.source_files_vanished = outcome.result.exit_code == 24;
  result.elapsed_ms = MonotonicMs() - start;
  RsyncProgress done = reported;
  done.final = true;
  done.percent = 100;
  done.eta_s = 0;
  if (result.stats.parsed) done.bytes_total = result.stats.total_file_size;
  done.bytes_total = std::max(done.bytes_total, reported.bytes_done);
  done.bytes_done = done.bytes_total;
  done.files_done = done.files_total;
  emit(done);
  return result;
}

Result<std::vector<RemoteEntry>> RsyncRunner::ListRemote(const std::string& dir, bool recursive) {
  if (dir.empty()) return Status::InvalidArgument("rsync --list-only: empty directory");
  const std::string target = WithTrailingSlash(dir);
  std::vector<std::string> argv = {"rsync", "--list-only", "--no-human-readable",
                                   "--timeout=" + std::to_string(options_.io_timeout_s)};
  if (recursive) argv.push_back("-r");
  AddRemoteShell(options_, {target}, argv);
  argv.push_back(target);
  const std::string what = "listing " + target;
  Judge judge = [&](const ProcessResult& r) -> std::optional<RsyncFailure> {
    if (r.term_signal == 0 && r.exit_code == 0) return std::nullopt;
    return ClassifyRsyncFailure(r, what);
  };
  // The whole listing, not just the result's 64 KiB tail.
  std::string listing;
  Hooks hooks;
  hooks.on_attempt = [&](int) { listing.clear(); };
  hooks.on_stdout = [&](std::string_view chunk) { listing.append(chunk); };
  LK_ASSIGN_OR_RETURN(RetryOutcome outcome, RunWithRetries(runner_, options_, argv, what, 0, judge, hooks));
  (void)outcome;
  std::vector<RemoteEntry> out;
  // "drwxr-xr-x          4,096 2026/11/25 09:24:28 name"
  for (auto line : Lines(listing)) {
    size_t pos = 0;
    std::string_view fields[4];
    bool ok = true;
    for (auto& f : fields) {
      while (pos < line.size() && line[pos] == ' ') ++pos;
      size_t end = line.find(' ', pos);
      if (end == std::string_view::npos) {
        ok = false;
        break;
      }
      f = line.substr(pos, end - pos);
      pos = end;
    }
    if (!ok || pos + 1 >= line.size() || fields[0].size() < 10) continue;
    auto size = ParseCount(fields[1]);
    if (!size) continue;
    RemoteEntry e;
    e.name = std::string(line.substr(pos + 1));
    e.size = *size;
    switch (fields[0][0]) {
      case '-': e.type = RemoteEntry::Type::kFile; break;
      case 'd': e.type = RemoteEntry::Type::kDirectory; break;
      case 'l': e.type = RemoteEntry::Type::kSymlink; break;
      default: e.type = RemoteEntry::Type::kOther; break;
    }
    if (e.type == RemoteEntry::Type::kSymlink) {
      size_t arrow = e.name.find(" -> ");
      if (arrow != std::string::npos) e.name.resize(arrow);
    }
    if (e.name == ".") continue;
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const RemoteEntry& a, const RemoteEntry& b) { return a.name < b.name; });
  return out;
}

Result<std::vector<std::string>> RemoteCommandArgv(const std::vector<std::string>& ssh_argv,
                                                   const std::string& user_host,
                                                   const std::vector<std::string>& argv) {
  if (ssh_argv.empty()) return Status::InvalidArgument("no ssh command to run a remote command with");
  if (user_host.empty() || user_host[0] == '-') {
    return Status::InvalidArgument("'" + user_host + "' is not a host to run a command on");
  }
  std::vector<std::string> ssh = ssh_argv;
  std::string remote;
  for (const auto& a : argv) remote += (remote.empty() ? "" : " ") + ShellQuote(a);
  ssh.push_back("--");
  ssh.push_back(user_host);
  ssh.push_back(remote);
  return ssh;
}

Result<ProcessResult> RsyncRunner::RunOnHost(const std::string& user_host, const std::vector<std::string>& argv,
                                             int64_t timeout_ms, std::string* whole_stdout) {
  if (argv.empty()) return Status::InvalidArgument("RunOnHost: empty command");
  LK_ASSIGN_OR_RETURN(const std::vector<std::string> ssh, RemoteCommandArgv(options_.ssh_argv, user_host, argv));
  const std::string what = "ssh " + user_host + " (" + argv[0] + ")";
  // Only failures to connect are retried: then the command cannot have run.
  Judge judge = [&](const ProcessResult& r) -> std::optional<RsyncFailure> {
    if (r.term_signal == 0 && r.exit_code != 255) return std::nullopt;
    RsyncFailure f = ClassifyRsyncFailure(r, what);
    f.retryable = f.retryable && r.term_signal == 0 && f.status.code() == StatusCode::kUnavailable;
    return f;
  };
  Hooks hooks;
  if (whole_stdout != nullptr) {
    hooks.on_attempt = [whole_stdout](int) { whole_stdout->clear(); };
    hooks.on_stdout = [whole_stdout](std::string_view chunk) { whole_stdout->append(chunk); };
  }
  LK_ASSIGN_OR_RETURN(RetryOutcome outcome, RunWithRetries(runner_, options_, ssh, what, timeout_ms, judge, hooks));
  return std::move(outcome.result);
}

}  // namespace ledgerkeep
