#include "backup/backup_engine.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "backup/ledger_probe.h"
#include "backup/retention.h"
#include "backup/rsync.h"
#include "backup/snapshot_flusher.h"
#include "backup/transfer_progress.h"
#include "common/file_util.h"
#include "common/parallel_for.h"
#include "ledger/control_client.h"
#include "ledger/ledger_store.h"

namespace ledgerkeep {

bool IsSnapshotId(const std::string& name) {
  static const std::regex re(R"(^\d{8}T\d{6}\.\d{3}Z$)");
  return std::regex_match(name, re);
}

std::string SnapshotIdFor(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

namespace {

const std::regex kSnapshotIdRe(R"(^\d{8}T\d{6}\.\d{3}Z$)");
constexpr const char* kOwnerFile = ".ledgerkeep-owner";
// A ledger backup is as sensitive as the ledger: everything the engine
// writes at a destination is readable by its owner only.
constexpr int kPrivateDirMode = 0700;
constexpr int kPrivateFileMode = 0600;
constexpr const char* kPrivateChmod = "--chmod=D0700,F0600";
// How long the flusher's last pass may take after the transfer (it flushes
// what is still dirty; the publisher's sync covers anything it leaves).
constexpr int64_t kFlusherFinishMs = 120'000;

// The source of a run, and how to release it.
struct Source {
  std::string dir;
  std::string kind;  // "checkpoint" | "stopped" | "live"
  bool consistent = false;
  uint64_t genesis = 0, last_reachable = 0, last = 0;
  std::string checkpoint_dir;  // to delete afterwards
  int lock_fd = -1;            // the DB's LOCK while copying a stopped DB
  ~Source() {
    if (lock_fd >= 0) ::close(lock_fd);  // releases the fcntl lock
    if (!checkpoint_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(checkpoint_dir, ec);
    }
  }
};

// The ssh ControlPath of a run in `work_dir`. A Unix socket path holds 107
// characters and ssh binds "<path>.<16 random>" first, with %C 40 hex
// digits: a deep work dir falls back to /tmp, still one socket per work dir
// (agents on one host must not share a master connection: each node's
// transfers use its own network path).
std::string ControlPathFor(const std::string& work_dir, int connection) {
  constexpr size_t kSunPathMax = 107, kPercentC = 40, kBindSuffix = 17;
  const std::string name = connection == 0 ? "%C" : std::to_string(connection) + "-%C";
  const std::string in_work = work_dir + "/lk-ssh-" + name;
  // ssh parses `-o ControlPath=...` like a config line and expands %-tokens
  // in it: a work dir with a space, quote or '%' goes to /tmp as well.
  const bool plain = std::all_of(work_dir.begin(), work_dir.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' || c == '-';
  });
  if (plain && in_work.size() - 2 + kPercentC + kBindSuffix <= kSunPathMax) return in_work;
  char tag[17];
  std::snprintf(tag, sizeof tag, "%016zx", std::hash<std::string>{}(work_dir));
  return std::string("/tmp/lk-ssh-") + tag + "-" + name;
}

// Status for a failed write on the destination host, from what the shell said.
Status RemoteWriteFailure(const std::string& what, const std::string& output) {
  if (output.find("No space") != std::string::npos) return Status::NoSpace(what + ": " + output);
  if (output.find("denied") != std::string::npos || output.find("Read-only") != std::string::npos) {
    return Status::PermissionDenied(what + ": " + output);
  }
  return Status::IOError(what + ": " + output);
}

// Joins its threads when it goes out of scope (every early return of a run
// waits for the work it started alongside).
struct ThreadJoiner {
  std::vector<std::thread> threads;
  void JoinAll() {
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
    threads.clear();
  }
  ~ThreadJoiner() { JoinAll(); }
};

}  // namespace

RsyncOptions DestinationRsyncOptions(const BackupRunOptions& opts, const std::string& work, int connection) {
  RsyncOptions r;
  // The node's own options (e.g. its known_hosts) go before our defaults:
  // ssh takes the first value of each option.
  std::vector<std::string> ssh = opts.destination.SshArgv(opts.ssh_options, work + "/known_hosts");
  if (!ssh.empty()) {
    // One SSH connection per `connection` for the whole run: a run makes
    // several small calls (claim and listing, manifest, retention) besides
    // the transfer, and a handshake costs ~0.3 s.
    ssh.insert(ssh.end(), {"-o", "ControlMaster=auto", "-o", "ControlPersist=30", "-o",
                           "ControlPath=" + ControlPathFor(work, connection)});
    r.ssh_argv = std::move(ssh);
  }
  r.io_timeout_s = opts.io_timeout_s;
  r.max_attempts = opts.max_attempts;
  r.backoff_base_ms = opts.backoff_base_ms;
  r.cancelled = opts.cancelled;
  return r;
}

struct BackupEngine::Impl {
  const BackupRunOptions& o;
  ProcessRunner* runner;
  const Clock* clock;
  std::string work;
  RsyncRunner rsync;

  // `connection`: see DestinationRsyncOptions.
  RsyncOptions MakeRsyncOptions(const BackupRunOptions& opts, int connection = 0) const {
    return DestinationRsyncOptions(opts, work, connection);
  }

  Impl(const BackupRunOptions& opts, ProcessRunner* r, const Clock* c, std::string w)
      : o(opts), runner(r), clock(c), work(std::move(w)), rsync(r, MakeRsyncOptions(opts)) {
    CreateDirectories(work, 0700).IgnoreError();  // reported by the first write into it
  }

  std::string Remote(const std::string& sub) const { return o.destination.RsyncPath(sub); }

  // Reads a small file from the destination; NotFound if it is not there.
  bool IsSsh() const { return o.destination.kind == BackupDestination::Kind::kSsh; }

  // A command on an SSH destination's host (over the run's shared connection).
  // `whole_stdout`: all of its stdout, for commands whose output is parsed.
  Result<ProcessResult> OnHost(const std::vector<std::string>& argv, std::string* whole_stdout = nullptr) {
    return rsync.RunOnHost(o.destination.UserHost(), argv, 60'000, whole_stdout);
  }

  Result<std::string> ReadRemote(const std::string& sub) {
    if (o.destination.kind == BackupDestination::Kind::kLocal) {
      const std::string p = o.destination.path + "/" + sub;
      std::error_code ec;  // exists() without it throws, e.g. on a path too long
      if (!std::filesystem::exists(p, ec)) return Status::NotFound(p + " does not exist");
      return ReadFileToString(p);
    }
    if (IsSsh()) {  // small files: one command instead of an rsync session
      const std::string p = o.destination.path + "/" + sub;
      std::string text;  // a manifest of a large DB is more than a 64 KiB tail
      LK_ASSIGN_OR_RETURN(auto r,
                          OnHost({"sh", "-c", "test -f \"$1\" || exit 3; cat \"$1\"", "sh", p}, &text));
      if (r.exit_code == 3) return Status::NotFound(o.destination.RsyncPath(sub) + " does not exist");
      if (r.exit_code != 0)
        return Status::IOError("cannot read " + o.destination.RsyncPath(sub) + ": " + r.output);
      return text;
    }
    LK_RETURN_IF_ERROR(CreateDirectories(work + "/fetch", 0700));
    const std::string local = work + "/fetch/" + std::filesystem::path(sub).filename().string();
    std::error_code ec;
    std::filesystem::remove(local, ec);
    RsyncRunner once(runner, MakeRsyncOptions(o));
    auto r = once.Copy({Remote(sub)}, local);
    if (!r.ok()) {
      if (r.status().message().find("No such file") != std::string::npos ||
          r.status().code() == StatusCode::kNotFound) {
        return Status::NotFound(Remote(sub) + " does not exist");
      }
      return r.status();
    }
    return ReadFileToString(local);
  }

  // Writes a small file to the destination (crash-safe: tmp + rename).
  Status WriteRemote(const std::string& sub, const std::string& content) {
    if (o.destination.kind == BackupDestination::Kind::kLocal) {
      const std::string p = o.destination.path + "/" + sub;
      LK_RETURN_IF_ERROR(CreateDirectories(std::filesystem::path(p).parent_path().string(), kPrivateDirMode));
      return WriteFileAtomically(p, content, kPrivateFileMode);
    }
    if (IsSsh() && content.size() < 96 * 1024) {  // fits one command line
      const std::string p = o.destination.path + "/" + sub;
      LK_ASSIGN_OR_RETURN(
          auto r,
          OnHost({"sh", "-c",
                  "umask 077; mkdir -p \"$(dirname \"$1\")\" && printf '%s' \"$2\" > \"$1.tmp\" && sync \"$1.tmp\" "
                  "2>/dev/null; mv \"$1.tmp\" \"$1\"",
                  "sh", p, content}));
      if (r.exit_code != 0)
        return RemoteWriteFailure("cannot write " + o.destination.RsyncPath(sub), r.output);
      return Status::OK();
    }
    LK_RETURN_IF_ERROR(CreateDirectories(work + "/stage", 0700));
    const std::string local = work + "/stage/" + std::filesystem::path(sub).filename().string();
    LK_RETURN_IF_ERROR(WriteFileAtomically(local, content, kPrivateFileMode));
    RsyncRunner mk(runner, [&] {
      auto x = MakeRsyncOptions(o);
      x.extra_args = {"--mkpath", kPrivateChmod};
      return x;
    }());
    auto r = mk.Copy({local}, Remote(sub));
    return r.ok() ? Status::OK() : r.status();
  }

  // On SSH destinations one remote command claims the destination if it
  // has no owner yet (a hard link: of two nodes racing for a new directory
  // only the first wins), returns the owner marker and the snapshot listing
  // and, when the marker is ours, creates the directory of snapshot
  // `create_snapshot` (so parallel streams need not race to create it).
  // One round trip instead of four.
  std::optional<Result<std::string>> prefetched_owner;
  std::optional<std::string> prefetched_listing;
  bool claimed_now = false;

  Status Prefetch(const std::string& create_snapshot) {
    if (!IsSsh()) return Status::OK();
    std::string out;  // the listing of many snapshots is more than a 64 KiB tail
    LK_ASSIGN_OR_RETURN(
        auto r,
        OnHost(
            {"sh", "-c",
             "umask 077; d=$1; me=$2; snap=$3; o=\"$d/.ledgerkeep-owner\"; "
             "mkdir -p \"$d\" || exit 4; "
             "if ! test -f \"$o\"; then t=\"$o.$$.tmp\"; "
             "{ printf '%s\\n' \"$me\" > \"$t\" && sync \"$t\" 2>/dev/null; } || { rm -f \"$t\"; exit 4; }; "
             "if ln \"$t\" \"$o\" 2>/dev/null; then echo CLAIMED; "
             "elif ! test -f \"$o\"; then mv \"$t\" \"$o\" && echo CLAIMED; fi; "  // no hard links there
             "rm -f \"$t\"; fi; "
             "echo OWNER; cat \"$o\" || exit 4; echo LISTING; "
             "if test -d \"$d/snapshots\"; then (cd \"$d/snapshots\" && "
             "find . -mindepth 1 -maxdepth 2 -printf '%y %P\\n') || exit 4; fi; "
             "if test -n \"$snap\" && test \"$(cat \"$o\")\" = \"$me\"; then "
             "mkdir -p \"$d/snapshots/$snap/data\" || exit 4; fi",
             "sh", o.destination.path, o.cluster_id + " " + o.node_id, create_snapshot},
            &out));
    if (r.exit_code != 0)
      return RemoteWriteFailure("cannot claim backup destination " + o.destination.Display(), r.output);
    if (out.rfind("CLAIMED\n", 0) == 0) {
      claimed_now = true;
      out.erase(0, 8);
    }
    const auto listing_at = out.find("LISTING\n");
    if (out.rfind("OWNER\n", 0) != 0 || listing_at == std::string::npos)
      return Status::IOError("unexpected answer from " + o.destination.Display());
    prefetched_owner = Result<std::string>(out.substr(6, listing_at - 6));
    prefetched_listing = out.substr(listing_at + 8);
    return Status::OK();
  }

  Status Claim() {
    const std::string me = o.cluster_id + " " + o.node_id;
    auto owner = prefetched_owner ? *prefetched_owner : ReadRemote(kOwnerFile);
    if (owner.ok()) {
      std::string who = *owner;
      while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
      if (who == me) {
        if (claimed_now) spdlog::info("claimed backup destination {}", o.destination.Display());
        return Status::OK();
      }
      return Status::FailedPrecondition(
          "backup destination " + o.destination.Display() + " belongs to '" + who +
          "' (cluster node), not to '" + me +
          "'. Every replica needs its own backup directory: use another destination, e.g. "
          "--destination '/backups/{node}'");
    }
    if (owner.status().code() != StatusCode::kNotFound) {
      return owner.status().WithContext("cannot read the ownership marker of " + o.destination.Display());
    }
    LK_RETURN_IF_ERROR(WriteRemote(kOwnerFile, me + "\n"));
    // Read back: if two nodes raced for a new directory, only one wins.
    auto again = ReadRemote(kOwnerFile);
    if (!again.ok()) return again.status();
    std::string who = *again;
    while (!who.empty() && who.back() == '\n') who.pop_back();
    if (who != me) {
      return Status::FailedPrecondition("backup destination " + o.destination.Display() +
                                        " was just claimed by '" + who + "'");
    }
    spdlog::info("claimed backup destination {}", o.destination.Display());
    return Status::OK();
  }

  struct Listing {
    std::vector<std::string> complete;    // sorted
    std::vector<std::string> incomplete;  // sorted
  };

  Result<Listing> ListSnapshots() {
    Listing l;
    std::map<std::string, bool> seen;
    if (IsSsh()) {
      std::string text;
      if (prefetched_listing) {
        text = *prefetched_listing;
        prefetched_listing.reset();  // used once: later listings are fresh
      } else {
        LK_ASSIGN_OR_RETURN(auto r, OnHost({"sh", "-c",
                                            "test -d \"$1\" || exit 0; cd \"$1\" && "
                                            "find . -mindepth 1 -maxdepth 2 -printf '%y %P\\n'",
                                            "sh", o.destination.path + "/snapshots"},
                                           &text));
        if (r.exit_code != 0) return Status::IOError("cannot list " + Remote("snapshots") + ": " + r.output);
      }
      std::istringstream in(text);
      std::string type, name;
      while (in >> type >> name) {
        auto slash = name.find('/');
        std::string id = name.substr(0, slash);
        if (!std::regex_match(id, kSnapshotIdRe)) continue;
        bool& done = seen[id];
        if (slash != std::string::npos && name.substr(slash + 1) == "DONE" && type == "f") done = true;
      }
      for (const auto& [id, done] : seen) (done ? l.complete : l.incomplete).push_back(id);
      return l;
    }
    auto entries = rsync.ListRemote(Remote("snapshots"), /*recursive=*/true);
    if (!entries.ok()) {
      if (entries.status().code() == StatusCode::kNotFound) return l;
      return entries.status();
    }
    for (const auto& e : *entries) {
      auto slash = e.name.find('/');
      std::string id = e.name.substr(0, slash);
      if (!std::regex_match(id, kSnapshotIdRe)) continue;
      bool& done = seen[id];
      if (slash != std::string::npos && e.name.substr(slash + 1) == "DONE" &&
          e.type == RemoteEntry::Type::kFile) {
        done = true;
      }
    }
    for (const auto& [id, done] : seen) (done ? l.complete : l.incomplete).push_back(id);
    return l;
  }

  // The manifest of snapshot `id`: `cached` (CachedManifest()) when it is
  // that snapshot's, otherwise the destination's copy.
  Result<SnapshotManifest> LoadManifest(const std::string& id,
                                        const std::optional<SnapshotManifest>& cached) {
    if (cached && cached->snapshot_id == id) return *cached;
    LK_ASSIGN_OR_RETURN(auto text, ReadRemote("snapshots/" + id + "/MANIFEST.json"));
    return SnapshotManifest::Parse(text);
  }

  Status DeleteSnapshot(const std::string& id) {
    if (!std::regex_match(id, kSnapshotIdRe)) return Status::InvalidArgument("bad snapshot id " + id);
    switch (o.destination.kind) {
      case BackupDestination::Kind::kLocal: {
        std::error_code ec;
        std::filesystem::remove_all(o.destination.path + "/snapshots/" + id, ec);
        if (ec) return Status::FromErrno(ec.value(), "delete snapshot " + id);
        return Status::OK();
      }
      case BackupDestination::Kind::kSsh: {
        auto r = rsync.RunOnHost(o.destination.UserHost(),
                                 {"rm", "-rf", "--", o.destination.path + "/snapshots/" + id});
        if (!r.ok()) return r.status();
        if (r->exit_code != 0) return Status::IOError("delete snapshot " + id + ": " + r->output);
        return Status::OK();
      }
      case BackupDestination::Kind::kRsyncDaemon: {
        // No shell on a daemon: sync an empty directory over it with --delete.
        LK_RETURN_IF_ERROR(CreateDirectories(work + "/empty", 0700));
        RsyncRunner del(runner, [&] {
          auto x = MakeRsyncOptions(o);
          x.extra_args = {"-r", "--delete", "--include=/" + id + "/***", "--exclude=*"};
          return x;
        }());
        auto r = del.Copy({work + "/empty/"}, Remote("snapshots/"));
        return r.ok() ? Status::OK() : r.status();
      }
    }
    return Status::OK();
  }

  Result<std::unique_ptr<Source>> TakeSource(const std::string& id) {
    auto src = std::make_unique<Source>();
    if (o.ledger_db.empty()) {
      return Status::FailedPrecondition(
          "this agent has no [ledger] db in its node config; nothing to back up");
    }
    if (std::error_code ec; !std::filesystem::exists(o.ledger_db, ec)) {
      return Status::NotFound("ledger DB " + o.ledger_db + " does not exist");
    }
    // Checkpoints of runs that were killed hold hard links to old SST files
    // forever: remove them (runs are one at a time per node).
    {
      std::error_code ec;
      const auto parent = std::filesystem::path(o.ledger_db).parent_path();
      for (std::filesystem::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->path().filename().string().rfind(".ledgerkeep-checkpoint-", 0) == 0) {
          std::error_code rm;
          std::filesystem::remove_all(it->path(), rm);
          spdlog::info("removed the checkpoint of an interrupted run: {}", it->path().string());
        }
      }
    }
    // 1. A checkpoint from the running ledgerd.
    if (!o.ledger_control.empty()) {
      ledger::ControlClientOptions co;
      co.timeout = std::chrono::milliseconds(1000);
      ledger::LedgerControlClient client(o.ledger_control, co);
      const std::string dir =
          std::filesystem::path(o.ledger_db).parent_path().string() + "/.ledgerkeep-checkpoint-" + id;
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      // Ask quickly whether ledgerd is up (it removes its socket when it
      // stops); only then wait for a checkpoint, which flushes memtables.
      auto up = LedgerdListening(o.ledger_control)
                    ? client.GetStatus()
                    : Result<ledger::LedgerStatus>(Status::Unavailable("ledgerd is not running"));
      auto cp = up.ok() ? client.Checkpoint(dir) : Result<ledger::CheckpointInfo>(up.status());
      if (cp.ok()) {
        src->dir = dir;
        src->checkpoint_dir = dir;
        src->kind = "checkpoint";
        src->consistent = true;
        src->genesis = cp->genesis;
        src->last_reachable = cp->last_reachable;
        src->last = cp->last;
        return src;
      }
      spdlog::info("no checkpoint from ledgerd ({}); checking whether it is stopped", cp.status().ToString());
    }
    // 2. ledgerd stopped: the DB is quiescent; hold its lock while copying.
    int fd = TryLockLedgerDb(o.ledger_db);  // an OFD lock: the checksum pass reading LOCK keeps it
    auto store = ledger::LedgerStore::OpenReadOnly(o.ledger_db);
    if (!store.ok()) {
      if (fd >= 0) ::close(fd);
      return store.status().WithContext("cannot read ledger DB " + o.ledger_db);
    }
    auto ids = (*store)->GetBlockIds();
    store->reset();
    src->dir = o.ledger_db;
    src->genesis = ids.genesis;
    src->last_reachable = ids.last_reachable;
    src->last = ids.last;
    if (fd >= 0) {
      src->lock_fd = fd;
      src->kind = "stopped";
      src->consistent = true;
    } else {
      // 3. Running but cannot checkpoint: a live copy, not restorable as is.
      src->kind = "live";
      src->consistent = false;
    }
    return src;
  }

  static TransferProgress ToProgress(const RsyncProgress& p, const std::string& phase) {
    return ToTransferProgress(p, phase);
  }

  // Phase timings, logged with the result ("claim 12 ms, transfer 900 ms, ...").
  std::string timings;
  int64_t phase_start = 0;
  std::string phase_name;
  void EndPhase() {
    if (phase_name.empty()) return;
    timings += (timings.empty() ? "" : ", ") + phase_name + " " +
               std::to_string(MonotonicMs() - phase_start) + " ms";
    phase_name.clear();
  }

  void Emit(const std::string& phase, double percent) {
    EndPhase();
    phase_name = phase;
    phase_start = MonotonicMs();
    if (!o.on_progress) return;
    TransferProgress p;
    p.phase = phase;
    p.percent = percent;
    o.on_progress(p);
  }

  // Splits `files` into the ones rsync sends (new, or changed since
  // `previous` by size or mtime) and the ones it hard-links.
  static void SplitNewFiles(const std::vector<ManifestFile>& files, const SnapshotManifest* previous,
                            std::vector<const ManifestFile*>* fresh,
                            std::vector<const ManifestFile*>* unchanged) {
    std::map<std::string, const ManifestFile*> before;
    if (previous) {
      for (const auto& f : previous->files) before[f.path] = &f;
    }
    for (const auto& f : files) {
      auto it = before.find(f.path);
      const bool same = it != before.end() && it->second->size == f.size && it->second->mtime == f.mtime;
      (same ? unchanged : fresh)->push_back(&f);
    }
  }

  // One parallel transfer stream: the files it copies and their bytes.
  struct Stream {
    std::vector<std::string> paths;
    uint64_t bytes = 0;      // all files of the stream
    uint64_t new_bytes = 0;  // files not in the previous snapshot (to send)
  };

  // Splits the files over o.transfer_streams streams, balancing the bytes
  // to send (largest new file first onto the lightest stream); unchanged
  // files, which rsync only hard-links, are dealt round-robin. Returns a
  // single stream when parallelism cannot pay: a live source (rsync must see
  // the whole tree to tolerate vanishing files), fewer than two new files,
  // or under o.min_stream_bytes to send per stream.
  std::vector<Stream> PlanStreams(const std::vector<ManifestFile>& files, const SnapshotManifest* previous,
                                  bool consistent) const {
    std::vector<const ManifestFile*> fresh, unchanged;
    SplitNewFiles(files, previous, &fresh, &unchanged);
    uint64_t fresh_bytes = 0;
    for (const ManifestFile* f : fresh) fresh_bytes += f->size;
    size_t n = static_cast<size_t>(std::clamp(o.transfer_streams, 1, 8));
    n = std::min<size_t>(
        {n, fresh.size(), static_cast<size_t>(fresh_bytes / std::max<uint64_t>(1, o.min_stream_bytes))});
    if (!consistent || n < 2) return {Stream{}};
    std::vector<Stream> out(n);
    std::sort(fresh.begin(), fresh.end(), [](auto* a, auto* b) { return a->size > b->size; });
    for (const ManifestFile* f : fresh) {
      auto lightest = std::min_element(
          out.begin(), out.end(), [](const Stream& a, const Stream& b) { return a.new_bytes < b.new_bytes; });
      lightest->paths.push_back(f->path);
      lightest->bytes += f->size;
      lightest->new_bytes += f->size;
    }
    for (size_t i = 0; i < unchanged.size(); ++i) {
      out[i % n].paths.push_back(unchanged[i]->path);
      out[i % n].bytes += unchanged[i]->size;
    }
    return out;
  }

  // Runs one rsync per stream (`--files-from`), each on its own thread with
  // its own retries; progress of all streams is summed and reported from
  // this thread about twice a second. The first stream to fail for good
  // stops the others; its error is the result.
  Result<RsyncResult> TransferInStreams(const std::string& id, const std::string& src_dir,
                                        const std::vector<Stream>& streams,
                                        const std::vector<std::string>& args, const std::string& dest) {
    const size_t n = streams.size();
    // The streams would race to create the snapshot directory (--mkpath:
    // "File exists"): it must exist first. Prefetch made it on SSH
    // destinations.
    if (o.destination.kind == BackupDestination::Kind::kLocal) {
      LK_RETURN_IF_ERROR(CreateDirectories(o.destination.path + "/snapshots/" + id + "/data", kPrivateDirMode));
    } else if (!IsSsh()) {
      RsyncOptions mk = MakeRsyncOptions(o);
      mk.extra_args = {"--mkpath", "--exclude=*", kPrivateChmod};
      RsyncRunner mkdir(runner, mk);
      LK_RETURN_IF_ERROR(mkdir.Copy({src_dir + "/"}, dest).status());
    }
    std::vector<std::string> lists(n);
    for (size_t i = 0; i < n; ++i) {
      lists[i] = work + "/stream-" + id + "-" + std::to_string(i) + ".list";
      std::string text;
      for (const auto& p : streams[i].paths) text += p + "\n";
      LK_RETURN_IF_ERROR(WriteFileAtomically(lists[i], text, 0600));
    }
    struct Slot {
      std::atomic<uint64_t> done{0};
      std::atomic<uint64_t> rate{0};
      std::atomic<int> attempt{1};
      std::optional<Result<RsyncResult>> result;
    };
    std::vector<Slot> slots(n);
    std::atomic<bool> failed{false};
    std::mutex mu;
    std::condition_variable cv;
    size_t finished = 0;
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        RsyncOptions ro = MakeRsyncOptions(o, static_cast<int>(i));
        ro.extra_args = args;
        ro.extra_args.push_back("--files-from=" + lists[i]);
        ro.on_progress = [&, i](const RsyncProgress& p) {
          // progress2 counts every file of the stream, the hard-linked ones
          // included: scale its percent onto the stream's bytes.
          slots[i].done = streams[i].bytes * static_cast<uint64_t>(std::clamp(p.percent, 0, 100)) / 100;
          slots[i].rate = p.rate_bps;
          slots[i].attempt = p.attempt;
        };
        ro.cancelled = [&] { return failed.load() || (o.cancelled && o.cancelled()); };
        RsyncRunner copier(runner, ro);
        auto r = copier.Copy({src_dir + "/"}, dest);
        if (!r.ok()) failed = true;
        std::lock_guard<std::mutex> l(mu);
        slots[i].result = std::move(r);
        ++finished;
        cv.notify_all();
      });
    }
    uint64_t total = 0;
    for (const auto& s : streams) total += s.bytes;
    {
      std::unique_lock<std::mutex> l(mu);
      while (finished < n) {
        cv.wait_for(l, std::chrono::milliseconds(500));
        if (finished == n || !o.on_progress) continue;
        RsyncProgress sum;
        for (const auto& s : slots) {
          sum.bytes_done += s.done;
          sum.rate_bps += s.rate;
          sum.attempt = std::max(sum.attempt, s.attempt.load());
        }
        sum.bytes_total = total;
        sum.percent = total ? static_cast<int>(sum.bytes_done * 100 / total) : 0;
        sum.eta_s = sum.rate_bps ? static_cast<int64_t>((total - sum.bytes_done) / sum.rate_bps) : -1;
        l.unlock();
        o.on_progress(ToProgress(sum, "transfer"));
        l.lock();
      }
    }
    for (auto& t : threads) t.join();
    for (const auto& l : lists) ::unlink(l.c_str());
    RsyncResult all;
    std::optional<Status> first_error;
    for (auto& s : slots) {
      auto& r = *s.result;
      if (!r.ok()) {
        // A stream stopped because another failed reports Aborted: prefer
        // the failure that caused it.
        if (!first_error ||
            (first_error->code() == StatusCode::kAborted && r.status().code() != StatusCode::kAborted))
          first_error = r.status();
        continue;
      }
      all.attempts = std::max(all.attempts, r->attempts);
      all.elapsed_ms = std::max(all.elapsed_ms, r->elapsed_ms);
      all.stats.parsed = r->stats.parsed;
      all.stats.total_file_size += r->stats.total_file_size;
      all.stats.total_transferred_file_size += r->stats.total_transferred_file_size;
      all.stats.regular_files_transferred += r->stats.regular_files_transferred;
      all.stats.total_bytes_sent += r->stats.total_bytes_sent;
    }
    if (first_error) return *first_error;
    spdlog::info("snapshot {}: sent in {} parallel streams", id, n);
    return all;
  }

  // RocksDB block checksums of every SST this run has not shipped before
  // (new, or changed since the previous snapshot - an SST never changes, so
  // that is a corruption candidate). Checked before the transfer: a corrupted
  // file fails the run instead of becoming a "verified" snapshot, because the
  // manifest's checksum only proves the copy equals the (bad) source. Files
  // carried over unchanged were verified when they were first shipped.
  Status VerifyNewSstFiles(const std::string& dir, const std::vector<ManifestFile>& files,
                           const SnapshotManifest* previous) {
    std::map<std::string, std::string> shipped;
    if (previous != nullptr) {
      for (const auto& f : previous->files) shipped[f.path] = f.xxh128;
    }
    std::vector<const ManifestFile*> to_check;
    for (const auto& f : files) {
      if (std::filesystem::path(f.path).extension() != ".sst") continue;
      auto p = shipped.find(f.path);
      if (p != shipped.end() && p->second == f.xxh128) continue;
      to_check.push_back(&f);
    }
    std::vector<Status> results(to_check.size());
    ParallelFor(to_check.size(), Parallelism(),
                [&](size_t i) { results[i] = ledger::VerifySstFile(dir + "/" + to_check[i]->path); });
    for (size_t i = 0; i < to_check.size(); ++i) {
      const Status& s = results[i];
      if (s.code() == StatusCode::kNotFound) continue;  // a live copy's file that compaction deleted
      if (s.code() == StatusCode::kCorruption) {
        const std::string& path = to_check[i]->path;
        const bool changed = shipped.count(path) != 0;
        return Status::Corruption(
            "the ledger DB of " + o.node_id + " holds a corrupted SST file " + path +
            (changed ? " (changed since snapshot " + previous->snapshot_id + ", SSTs never change)" : "") +
            "; nothing was shipped. Rebuild this replica's DB from its peers. " + s.message());
      }
      LK_RETURN_IF_ERROR(s);
    }
    return Status::OK();
  }

  // Threads for checksumming and checking the source: as many as transfer
  // streams (the node's configured share of its cores for backups).
  int Parallelism() const { return std::clamp(o.transfer_streams, 1, 8); }

  // The manifest this node published last (cached in the work dir when it
  // published it), if any: the source of carried-over checksums.
  std::optional<SnapshotManifest> CachedManifest() const {
    auto text = ReadFileToString(work + "/last_manifest.json");
    if (!text.ok()) return std::nullopt;
    auto m = SnapshotManifest::Parse(*text);
    if (!m.ok()) return std::nullopt;
    return std::move(*m);
  }

  // What claiming the destination learns about it.
  struct DestinationState {
    Listing listing;
    std::optional<SnapshotManifest> previous;  // the newest complete snapshot's manifest
  };

  Result<DestinationState> ClaimAndList(const std::string& id,
                                        const std::optional<SnapshotManifest>& cached) {
    LK_RETURN_IF_ERROR(Prefetch(id));
    LK_RETURN_IF_ERROR(Claim());
    DestinationState d;
    LK_ASSIGN_OR_RETURN(d.listing, ListSnapshots());
    if (!d.listing.complete.empty() && id <= d.listing.complete.back()) {
      return Status::FailedPrecondition("the newest snapshot " + d.listing.complete.back() +
                                        " is from the future; is this node's clock right?");
    }
    if (!d.listing.complete.empty()) {
      auto m = LoadManifest(d.listing.complete.back(), cached);
      if (m.ok()) {
        d.previous = std::move(*m);
      } else {
        spdlog::warn("previous manifest unreadable ({}); checksumming everything", m.status().ToString());
      }
    }
    return d;
  }

  // Opens connection `k` to an SSH destination (its ControlMaster), so a
  // transfer stream that uses it later starts without a handshake.
  void WarmUpConnection(int k) {
    RsyncRunner r(runner, MakeRsyncOptions(o, k));
    auto res = r.RunOnHost(o.destination.UserHost(), {"true"});
    if (!res.ok()) spdlog::debug("ssh connection {} not opened ahead: {}", k, res.status().ToString());
  }

  // The snapshot's data on disk before DONE says it is complete (rsync
  // itself syncs nothing): every file and directory under data/ is
  // fdatasync'ed (cheap for what the flusher already flushed; a FIFO or
  // socket copied from a stopped DB's directory cannot be, and holds no data). On an old
  // host without `sync -d` (coreutils < 8.24), a whole `sync`. An rsync
  // daemon runs no commands: its host's own writeback is all there is.
  static constexpr char kSyncDataScript[] =
      "if sync -d -- \"$1/data\" 2>/dev/null; then "
      "find \"$1/data\" \\( -type f -o -type d \\) -exec sync -d -- {} + || exit 5; "
      "else sync || exit 5; fi; ";

  Status SyncSnapshotData(const std::string& id) {
    const std::string dir = "snapshots/" + id;
    switch (o.destination.kind) {
      case BackupDestination::Kind::kLocal:
        return SyncTree(o.destination.path + "/" + dir + "/data");
      case BackupDestination::Kind::kSsh: {
        LK_ASSIGN_OR_RETURN(auto r,
                            OnHost({"sh", "-c", kSyncDataScript, "sh", o.destination.path + "/" + dir}));
        if (r.exit_code != 0)
          return RemoteWriteFailure("cannot flush " + o.destination.RsyncPath(dir) + " to disk", r.output);
        return Status::OK();
      }
      case BackupDestination::Kind::kRsyncDaemon:
        return Status::OK();
    }
    return Status::OK();
  }

  // The data synced, then MANIFEST.json, then DONE, each synced and renamed
  // into place: one round trip on SSH destinations when the manifest fits a
  // command line.
  Status Publish(const std::string& id, const std::string& manifest, const std::string& digest) {
    const std::string dir = "snapshots/" + id;
    if (IsSsh() && manifest.size() < 96 * 1024) {
      LK_ASSIGN_OR_RETURN(
          auto r,
          OnHost({"sh", "-c",
                  "umask 077; " + std::string(kSyncDataScript) +
                      "w() { printf '%s' \"$2\" > \"$1.tmp\" && { sync \"$1.tmp\" 2>/dev/null; "
                      "mv \"$1.tmp\" \"$1\"; }; }; w \"$1/MANIFEST.json\" \"$2\" && w \"$1/DONE\" \"$3\"",
                  "sh", o.destination.path + "/" + dir, manifest, digest + "\n"}));
      if (r.exit_code != 0)
        return RemoteWriteFailure("cannot publish " + o.destination.RsyncPath(dir), r.output);
      return Status::OK();
    }
    LK_RETURN_IF_ERROR(SyncSnapshotData(id));
    LK_RETURN_IF_ERROR(WriteRemote(dir + "/MANIFEST.json", manifest));
    return WriteRemote(dir + "/DONE", digest + "\n");
  }

  Status RunInto(wire::BackupResultT& res) {
    const int64_t started = clock->NowMs();
    LK_RETURN_IF_ERROR(CheckSshFiles(o.destination));
    LK_RETURN_IF_ERROR(CreateDirectories(work, 0700));
    const std::string id = SnapshotIdFor(started);
    // Checksums of unchanged SSTs are carried over from the manifest this
    // node published last (cached locally). Without the cache (a new work
    // dir) everything is checksummed, without waiting for the claim.
    const std::optional<SnapshotManifest> carried = CachedManifest();
    // The claim (round trips to the destination) runs alongside the local
    // work: checkpoint, listing and checksumming the source. Nothing is
    // written to the destination before the claim has succeeded.
    std::optional<Result<DestinationState>> claimed;
    int64_t claim_ms = 0;
    ThreadJoiner claimer, warmers;
    Emit("claim", 0);
    phase_name.clear();  // timed on its own thread, below
    claimer.threads.emplace_back([&] {
      const int64_t t0 = MonotonicMs();
      claimed = ClaimAndList(id, carried);
      claim_ms = MonotonicMs() - t0;
    });
    Emit("checkpoint", 0);
    LK_ASSIGN_OR_RETURN(auto src, TakeSource(id));
    res.consistent = src->consistent;
    res.genesis = src->genesis;
    res.last_reachable = src->last_reachable;
    res.last_block_id = src->last;

    Emit("checksum", 0);
    LK_ASSIGN_OR_RETURN(auto files, ListTree(src->dir));
    const SnapshotManifest* before = carried ? &*carried : nullptr;
    if (IsSsh()) {
      // Open the extra streams' connections while checksumming.
      const size_t n = PlanStreams(files, before, src->consistent).size();
      for (size_t k = 1; k < n; ++k)
        warmers.threads.emplace_back([this, k] { WarmUpConnection(static_cast<int>(k)); });
    }
    ScanStats scan;
    LK_RETURN_IF_ERROR(ChecksumFiles(src->dir, files, before, Parallelism(), &scan));
    LK_RETURN_IF_ERROR(VerifyNewSstFiles(src->dir, files, before));
    uint64_t total = 0;
    for (const auto& f : files) total += f.size;
    res.bytes_total = total;
    res.files_total = files.size();
    spdlog::info("snapshot {}: {} files, {} bytes from {} ({} checksums computed, {} carried over)", id,
                 files.size(), total, src->kind, scan.files_hashed, scan.files_reused);

    claimer.JoinAll();
    LK_ASSIGN_OR_RETURN(auto state, std::move(*claimed));
    EndPhase();
    timings += " (claim " + std::to_string(claim_ms) + " ms alongside)";
    const Listing& listing = state.listing;
    const std::optional<SnapshotManifest>& previous = state.previous;
    res.snapshot_id = id;
    warmers.JoinAll();

    // Transfer.
    // --modify-window=-1: mtimes compared to the nanosecond. With --link-dest
    // rsync's size+mtime quick check would otherwise hard-link the previous
    // snapshot's CURRENT (or OPTIONS) when the DB rewrote it to the same size
    // within the same second, leaving a snapshot that points at a MANIFEST
    // it does not hold.
    // --chmod: snapshots are private (issue 13) whatever the source's modes.
    std::vector<std::string> transfer_args = {"--whole-file", "--mkpath", "--modify-window=-1", kPrivateChmod};
    // --inplace: each file is written under its final name (no temporary
    // file and rename: ~7% faster). Safe for a consistent source only: the
    // snapshot directory is new, so the only inodes it shares are files
    // --link-dest linked because they equal the source, and a source that
    // cannot change between attempts never makes rsync rewrite one of them
    // (which would change the previous snapshot too). A half-written file
    // has the wrong size or mtime, so a retry sends it again; a snapshot
    // without DONE is never used.
    if (src->consistent) transfer_args.push_back("--inplace");
    if (previous) transfer_args.push_back("--link-dest=../../" + previous->snapshot_id + "/data");
    Emit("transfer", 0);
    const std::string data_dest = Remote("snapshots/" + id + "/data/");
    if (o.destination.kind == BackupDestination::Kind::kLocal) {
      // Private directories (rsync --mkpath would make them with the umask);
      // on SSH destinations Prefetch made them.
      LK_RETURN_IF_ERROR(CreateDirectories(o.destination.path + "/snapshots/" + id + "/data", kPrivateDirMode));
    }
    auto streams = PlanStreams(files, previous ? &*previous : nullptr, src->consistent);
    // New files are flushed on the destination as they arrive (a consistent
    // source only: a live file's final size is not known).
    std::unique_ptr<SnapshotFlusher> flusher;
    if (o.flush_as_written && src->consistent) {
      std::vector<const ManifestFile*> fresh, unchanged;
      SplitNewFiles(files, previous ? &*previous : nullptr, &fresh, &unchanged);
      std::vector<SnapshotFlusher::File> to_flush;
      for (const ManifestFile* f : fresh) to_flush.push_back({f->path, f->size});
      flusher =
          SnapshotFlusher::Start(runner, o.destination, MakeRsyncOptions(o).ssh_argv,
                                 o.destination.path + "/snapshots/" + id + "/data", std::move(to_flush));
    }
    auto copied = [&]() -> Result<RsyncResult> {
      if (streams.size() > 1) return TransferInStreams(id, src->dir, streams, transfer_args, data_dest);
      RsyncOptions ro = MakeRsyncOptions(o);
      ro.extra_args = transfer_args;
      ro.allow_vanished_source_files = !src->consistent;
      ro.on_progress = [&](const RsyncProgress& p) {
        if (o.on_progress) o.on_progress(ToProgress(p, "transfer"));
      };
      RsyncRunner copier(runner, ro);
      return copier.Copy({src->dir + "/"}, data_dest);
    }();
    if (flusher) {
      // After a failed transfer (e.g. the host cut off) it is not waited for.
      const SnapshotFlusher::Report flushed = flusher->Finish(copied.ok() ? kFlusherFinishMs : 5'000);
      if (flushed.ran) {
        spdlog::info("snapshot {}: {} on the destination as they were written", id, flushed.note);
      } else {
        spdlog::info("snapshot {}: new files not flushed as written ({})", id, flushed.note);
      }
    }
    if (!copied.ok()) return copied.status();
    res.streams = static_cast<uint32_t>(streams.size());
    res.attempts = static_cast<uint32_t>(copied->attempts);
    res.bytes_transferred = copied->stats.total_transferred_file_size;

    // Verify after a broken transfer: a dry run must find nothing left to
    // transfer. (A clean first attempt needs no second pass: rsync checks
    // every file it sends against a whole-file checksum.)
    if (src->consistent && copied->attempts > 1) {
      Emit("verify", 0);
      RsyncOptions vo = MakeRsyncOptions(o);
      vo.extra_args = {"--whole-file", "--dry-run", "--modify-window=-1", kPrivateChmod};
      RsyncRunner verifier(runner, vo);
      auto v = verifier.Copy({src->dir + "/"}, data_dest);
      if (!v.ok()) return v.status().WithContext("verifying snapshot " + id);
      if (v->stats.regular_files_transferred != 0) {
        return Status::Corruption("snapshot " + id + " differs from its source after the copy (" +
                                  std::to_string(v->stats.regular_files_transferred) + " files)");
      }
    }

    // Publish: manifest, then DONE.
    SnapshotManifest m;
    m.snapshot_id = id;
    m.cluster_id = o.cluster_id;
    m.node = o.node_id;
    m.consistent = src->consistent;
    m.source = src->kind;
    m.genesis = src->genesis;
    m.last_reachable = src->last_reachable;
    m.last = src->last;
    m.started_at_ms = started;
    m.finished_at_ms = clock->NowMs();
    m.previous = previous ? previous->snapshot_id : "";
    m.bytes_total = total;
    m.bytes_transferred = res.bytes_transferred;
    m.files = std::move(files);
    const std::string text = m.Serialize();
    res.manifest_digest = Sha256Hex(text);
    Emit("publish", 100);
    LK_RETURN_IF_ERROR(Publish(id, text, res.manifest_digest));
    WriteFileAtomically(work + "/last_manifest.json", text).IgnoreError();  // a cache only
    src.reset();  // release the checkpoint / DB lock before retention

    // Retention and clean-up of incomplete runs.
    Emit("retention", 100);
    std::vector<std::string> complete = listing.complete;
    complete.push_back(id);
    for (const auto& dead : listing.incomplete) {
      Status s = DeleteSnapshot(dead);
      if (!s.ok()) spdlog::warn("cannot delete incomplete snapshot {}: {}", dead, s.ToString());
    }
    for (const auto& old : SnapshotsToDelete(complete, clock->NowMs(), {o.keep_last, o.max_age_s})) {
      Status s = DeleteSnapshot(old);
      if (!s.ok())
        spdlog::warn("retention: cannot delete {}: {}", old, s.ToString());
      else
        spdlog::info("retention: deleted snapshot {}", old);
    }
    EndPhase();
    res.duration_ms = clock->NowMs() - started;
    spdlog::info("snapshot {} phases: {}", id, timings);
    return Status::OK();
  }
};

BackupEngine::BackupEngine(ProcessRunner* runner, const Clock* clock, std::string work_dir)
    : runner_(runner), clock_(clock), work_dir_(std::move(work_dir)) {}

wire::BackupResultT BackupEngine::Run(const BackupRunOptions& options) {
  Impl impl(options, runner_, clock_, work_dir_);
  wire::BackupResultT res;
  res.destination = options.destination.Display();
  res.scheduled = options.scheduled;
  const int64_t started = clock_->NowMs();
  Status s = impl.RunInto(res);
  res.ok = s.ok();
  if (!s.ok()) {
    res.error = s.ToString();
    res.error_code = static_cast<uint16_t>(s.code());
    res.duration_ms = clock_->NowMs() - started;
    spdlog::error("backup to {} failed: {}", res.destination, s.ToString());
  } else {
    spdlog::info("backup {} to {} done: {} bytes sent of {}, consistent={}", res.snapshot_id, res.destination,
                 res.bytes_transferred, res.bytes_total, res.consistent);
  }
  return res;
}

Status BackupEngine::Claim(const BackupRunOptions& options) {
  LK_RETURN_IF_ERROR(CheckSshFiles(options.destination));
  Impl impl(options, runner_, clock_, work_dir_);
  LK_RETURN_IF_ERROR(impl.Prefetch(""));
  return impl.Claim();
}

Result<std::vector<wire::SnapshotInfoT>> BackupEngine::List(const BackupRunOptions& options) {
  LK_RETURN_IF_ERROR(CheckSshFiles(options.destination));
  Impl impl(options, runner_, clock_, work_dir_);
  LK_ASSIGN_OR_RETURN(auto listing, impl.ListSnapshots());
  const auto cached = impl.CachedManifest();  // read once, not per snapshot
  std::vector<wire::SnapshotInfoT> out;
  for (const auto& id : listing.complete) {
    wire::SnapshotInfoT s;
    s.snapshot_id = id;
    s.complete = true;
    auto m = impl.LoadManifest(id, cached);
    if (m.ok()) {
      s.consistent = m->consistent;
      s.bytes_total = m->bytes_total;
      s.files_total = m->files.size();
      s.genesis = m->genesis;
      s.last_reachable = m->last_reachable;
      s.last_block_id = m->last;
      s.finished_at_ms = m->finished_at_ms;
    }
    out.push_back(std::move(s));
  }
  for (const auto& id : listing.incomplete) {
    wire::SnapshotInfoT s;
    s.snapshot_id = id;
    s.complete = false;
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.snapshot_id < b.snapshot_id; });
  return out;
}

}  // namespace ledgerkeep
