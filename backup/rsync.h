// RsyncRunner: copies files with the real `rsync` binary to a local path,
// an SSH destination (`user@host:/dir`) or an rsync daemon
// (`rsync://[user@]host[:port]/module/path`, or `host::module/path`), with
// progress parsed from `--info=progress2`, retries with backoff that resume
// (`--partial`), and failures classified into a Status an operator can act on.
//
// Every copy runs `rsync -a --info=progress2 --no-inc-recursive --stats
// --no-human-readable --timeout=<io_timeout_s>` plus the caller's extra
// arguments; rsync runs with LC_ALL=C so its messages and numbers parse.
//
// Crash behaviour: rsync writes into hidden temporary files and renames them
// when complete, so an interrupted copy leaves complete files plus (with
// `partial`) partial data that the next run reuses. The destination is not a
// snapshot until the caller publishes it (DESIGN §6: the DONE marker).
//
// Thread-safety: an RsyncRunner is not thread-safe (one copy at a time);
// callbacks run on the thread that called Copy()/ListRemote()/RunOnHost().
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/process.h"
#include "common/status.h"

namespace ledgerkeep {

// One progress record of a copy (rsync --info=progress2).
struct RsyncProgress {
  uint64_t bytes_done = 0;   // bytes transferred so far in the whole copy
  uint64_t bytes_total = 0;  // estimated from percent when percent > 0; else 0 (unknown)
  int percent = 0;           // 0..100
  uint64_t rate_bps = 0;     // bytes per second as rsync reports it
  int64_t eta_s = -1;        // seconds left; -1 unknown
  uint64_t files_done = 0;   // files checked (to-chk / ir-chk), 0 until rsync says
  uint64_t files_total = 0;  // with ir-chk (incremental recursion) still growing
  int attempt = 1;           // which rsync attempt this comes from (1-based)
  bool final = false;        // the closing record of a successful copy (100%)
};

// Parses one progress2 record such as
//   "  1,234,567  45%   12.34MB/s    0:00:03 (xfr#12, to-chk=34/100)"
// (commas optional; a mid-file record has no "(xfr#...)" part). Returns
// nullopt for anything else (file names, stats, blank or truncated records).
std::optional<RsyncProgress> ParseRsyncProgressLine(std::string_view line);

// The `--stats` block rsync prints at the end.
struct RsyncStats {
  bool parsed = false;                       // false when no stats were found
  uint64_t total_file_size = 0;              // "Total file size"
  uint64_t total_transferred_file_size = 0;  // "Total transferred file size"
  uint64_t regular_files_transferred = 0;    // "Number of regular files transferred"
  uint64_t total_bytes_sent = 0;             // "Total bytes sent"
};

// Parses rsync's --stats output out of everything rsync wrote to stdout.
RsyncStats ParseRsyncStats(std::string_view output);

// Where an rsync argument points.
enum class RsyncEndpointKind { kLocal, kSsh, kDaemon };
// rsync's own rule: "rsync://..." or "host::..." is a daemon, a ':' before
// the first '/' is SSH, anything else is a local path.
RsyncEndpointKind ClassifyRsyncEndpoint(std::string_view endpoint);

// An rsync failure turned into a Status, and whether running rsync again
// may help.
struct RsyncFailure {
  Status status;
  bool retryable = false;
};
// Classifies a finished, failed rsync (or ssh) run by exit code, signal and
// stderr text. `what` names the operation for the message ("rsync to X").
// Never classifies the disk-full, permission and authentication cases as
// retryable, whatever the exit code.
RsyncFailure ClassifyRsyncFailure(const ProcessResult& r, std::string_view what);

struct RsyncOptions {
  // Appended after the fixed arguments, e.g. {"--link-dest=/b/snap1",
  // "--whole-file"}. Default: none.
  std::vector<std::string> extra_args;
  // The remote shell for SSH endpoints, program first, one argument per
  // element (BackupDestination::SshArgv builds it). rsync gets it as -e,
  // quoted so that every element arrives as it is; RunOnHost() runs it.
  // Default: {"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"}.
  std::vector<std::string> ssh_argv = {"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"};
  // rsync --timeout: abort when no data moves for this long (then retried);
  // 0 disables it. Default: 60.
  int io_timeout_s = 60;
  // Attempts in total, the first included. Default: 4.
  int max_attempts = 4;
  // Backoff before attempt n+1 grows from base (with jitter) up to max.
  // Default: 1000 / 30000.
  int64_t backoff_base_ms = 1000;
  int64_t backoff_max_ms = 30000;
  // --partial: keep partially transferred files so a retry resumes them.
  // Default: true.
  bool partial = true;
  // Accept exit 24 ("some files vanished before they could be
  // transferred"), expected when copying a live database. Default: false.
  bool allow_vanished_source_files = false;
  // Receives progress at least once per second while a copy runs (the
  // latest value re-sent if rsync printed nothing new), including during
  // backoff, and once with final=true and 100% after a successful copy.
  // bytes_done never decreases within one Copy(). Default: none.
  std::function<void(const RsyncProgress&)> on_progress;
  // Polled about every 100 ms; true stops rsync (SIGTERM, SIGKILL after 2 s)
  // and Copy() returns Aborted. Default: none.
  std::function<bool()> cancelled;
  // Limit for the whole operation, all attempts and backoff included;
  // exceeding it gives Timeout. Default: 0 (none).
  int64_t timeout_ms = 0;
  // Added to rsync's environment (e.g. RSYNC_PASSWORD for a daemon).
  // Default: none.
  std::vector<std::pair<std::string, std::string>> env;
  // Copy(): at most this many bytes per second (rsync --bwlimit, in whole
  // KiB, at least 1). Default: 0 (no limit).
  uint64_t bwlimit_bytes_per_s = 0;
  // rsync and ssh at nice 19 in the idle I/O class (RunOptions::background).
  // Default: false.
  bool background = false;
};

// The largest bandwidth limit taken (1 TiB/s): more is a typo, not a limit.
inline constexpr uint64_t kMaxBwlimitBytesPerS = 1ULL << 40;

// rsync's --bwlimit argument for a limit in bytes per second ("" for none):
// KiB per second, rounded up, at least 1.
std::string RsyncBwlimitArg(uint64_t bytes_per_s);

struct RsyncResult {
  RsyncStats stats;              // of the last (successful) attempt
  int attempts = 0;              // rsync runs, the successful one included
  int64_t elapsed_ms = 0;        // wall time, backoff included
  bool source_files_vanished = false;  // exit 24 accepted (allow_vanished_source_files)
};

// One entry of a remote directory listing.
struct RemoteEntry {
  enum class Type { kFile, kDirectory, kSymlink, kOther };
  std::string name;   // relative to the listed directory
  uint64_t size = 0;  // bytes as rsync reports them (directories: their inode size)
  Type type = Type::kOther;
};

class RsyncRunner {
 public:
  // `runner` must outlive this object.
  RsyncRunner(ProcessRunner* runner, RsyncOptions options);

  // Copies `sources` (rsync source syntax: "dir/" copies the contents of
  // dir, "dir" the directory itself) to `dest`. Either side may be remote.
  // On success returns the final attempt's stats and the attempt count.
  // Retries retryable failures (network, timeouts, rsync killed) with
  // backoff up to max_attempts. Errors: NoSpace, PermissionDenied,
  // Unavailable, NotFound, Timeout, Aborted (cancelled) or IOError, each
  // message naming the destination, what to check and the tail of rsync's
  // stderr; a failed rsync binary start is NotFound.
  Result<RsyncResult> Copy(const std::vector<std::string>& sources, const std::string& dest);

  // Lists the directory `dir` (any endpoint kind) with `rsync --list-only`,
  // without "." and sorted by name; recursive lists the whole tree with
  // relative paths. A missing directory is NotFound. Retried like Copy();
  // progress is not reported.
  Result<std::vector<RemoteEntry>> ListRemote(const std::string& dir, bool recursive = false);

  // Runs argv on `user_host` (e.g. "backup@nas") through ssh_argv. Each
  // argument is shell-quoted, so it arrives as given. Returns the remote
  // command's result, whatever its exit code; ssh failures (exit 255:
  // unreachable, authentication) are an error Status, and only connection
  // failures, where the command cannot have run, are retried. The result
  // keeps the last 64 KiB of stdout; a caller that parses the output passes
  // `whole_stdout` to get all of it (of the attempt that counted).
  Result<ProcessResult> RunOnHost(const std::string& user_host, const std::vector<std::string>& argv,
                                  int64_t timeout_ms = 60'000, std::string* whole_stdout = nullptr);

  const RsyncOptions& options() const { return options_; }

 private:
  ProcessRunner* runner_;
  RsyncOptions options_;
};

// The argv that runs `argv` on `user_host` through `ssh_argv`: the ssh
// argv, "--", the host, then argv shell-quoted into one remote command line
// (so each argument arrives as given). InvalidArgument for a user_host that
// ssh could take for an option.
Result<std::vector<std::string>> RemoteCommandArgv(const std::vector<std::string>& ssh_argv,
                                                   const std::string& user_host,
                                                   const std::vector<std::string>& argv);

// How rsync's -e option takes `argv` as one string: every element in single
// quotes, a quote inside doubled. rsync splits -e itself: quotes group, a
// doubled quote inside quotes is literal, nothing else is special (no
// backslashes, no expansion), so every element arrives as it is.
std::string RsyncRemoteShellArg(const std::vector<std::string>& argv);

}  // namespace ledgerkeep
