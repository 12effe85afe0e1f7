// Destination: the one seam between the backup library and the place its
// snapshots live (DESIGN.md §6; issue 14). The engine, restore listing and
// fetch, verification and the flusher talk to a Destination only; what a
// kind can do (a shell over SSH, nothing but rsync on a daemon, plain files
// locally) lives in its implementation:
//   LocalDestination        backup/local_destination.h
//   SshDestination          backup/ssh_destination.h
//   RsyncDaemonDestination  backup/rsync_daemon_destination.h
// Model: RocksDB's BackupEngineOptions::backup_env. Tests wrap one (or a
// fake) to inject faults (tests/support/faulty_destination.h).
//
// Paths given to a Destination (`sub`) are relative to the destination's
// directory, e.g. "snapshots/<id>/MANIFEST.json" (layout: backup_destination.h).
// Everything written is private to its owner (directories 0700, files 0600).
//
// Thread-safety: one caller at a time, except Ship() and WarmUp(), which
// parallel transfer streams call concurrently with distinct `connection`s.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backup/backup_destination.h"
#include "backup/rsync.h"
#include "backup/snapshot_flusher.h"
#include "common/process.h"
#include "common/status.h"

namespace ledgerkeep {

// The owner marker at the top of every destination.
inline constexpr const char* kOwnerMarkerFile = ".ledgerkeep-owner";

// Snapshot directories at a destination, by whether they hold DONE.
struct SnapshotListing {
  std::vector<std::string> complete;    // sorted (oldest first)
  std::vector<std::string> incomplete;  // sorted
};

// What claiming a destination found.
struct ClaimResult {
  std::string owner;         // the owner marker's text, trailing blanks removed
  bool claimed_now = false;  // this call wrote the marker (the destination was new)
  bool lost_race = false;    // this call wrote a marker, but another node's won
  // The snapshots, when the kind lists them in the same round trip (SSH);
  // valid for the first listing after the claim only.
  std::optional<SnapshotListing> listing;
};

// How implementations reach the destination: the process runner, the
// caller's scratch space and the rsync/ssh tuning.
struct DestinationContext {
  ProcessRunner* runner = nullptr;  // must outlive the Destination
  // Scratch space (ssh control sockets, staged and fetched small files).
  std::string work_dir;
  // The node's [backup] ssh_options (SSH destinations). Default: none.
  std::vector<std::string> ssh_options;
  // rsync tuning. Defaults: 60 s I/O timeout, 4 attempts, backoff from 1 s.
  int io_timeout_s = 60;
  int max_attempts = 4;
  int64_t backoff_base_ms = 1000;
  // Polled while rsync runs; true stops it (Aborted). Default: none.
  std::function<bool()> cancelled;
  // Every rsync at most this many bytes per second. Default: 0 (no limit).
  uint64_t bwlimit_bytes_per_s = 0;
  // rsync and ssh at nice 19 in the idle I/O class. Default: false.
  bool background = false;
};

// A context from any options that carry the ssh options and rsync tuning
// under these names (BackupRunOptions, SnapshotAccess, the client backup's
// tuning), and `cancelled`, `bwlimit_bytes_per_s` and `background` when
// they have them.
template <class Tuning>
DestinationContext DestinationContextOf(const Tuning& t, ProcessRunner* runner, std::string work_dir) {
  DestinationContext c;
  c.runner = runner;
  c.work_dir = std::move(work_dir);
  c.ssh_options = t.ssh_options;
  c.io_timeout_s = t.io_timeout_s;
  c.max_attempts = t.max_attempts;
  c.backoff_base_ms = t.backoff_base_ms;
  if constexpr (requires { t.cancelled; }) c.cancelled = t.cancelled;
  if constexpr (requires { t.bwlimit_bytes_per_s; }) c.bwlimit_bytes_per_s = t.bwlimit_bytes_per_s;
  if constexpr (requires { t.background; }) c.background = t.background;
  return c;
}

// One Ship() or Fetch().
struct TransferOptions {
  // rsync arguments besides the fixed ones (e.g. --link-dest, --files-from).
  std::vector<std::string> extra_args;
  // Accept files vanishing from the source (a live DB). Default: false.
  bool allow_vanished_source_files = false;
  // Which connection carries it (see DestinationRsyncOptions). Default: 0.
  int connection = 0;
  std::function<void(const RsyncProgress&)> on_progress;
  // Replaces the context's `cancelled` when set.
  std::function<bool()> cancelled;
};

class Destination {
 public:
  virtual ~Destination() = default;

  // The parsed destination (for messages: Display()).
  virtual const BackupDestination& where() const = 0;
  std::string Display() const { return where().Display(); }

  // Reads the owner marker and, if there is none, writes `owner` as the
  // marker and reads it back (of two nodes racing for a new destination
  // only one wins). When the marker is `owner`'s and `create_snapshot` is
  // not empty, the kind may create snapshots/<create_snapshot>/data/ on the
  // way. The caller compares ClaimResult::owner with its own name.
  virtual Result<ClaimResult> Claim(const std::string& owner, const std::string& create_snapshot) = 0;

  // The snapshot directories; a destination without snapshots/ has none.
  virtual Result<SnapshotListing> ListSnapshots() = 0;

  // A small file's content; NotFound if it is not there.
  virtual Result<std::string> ReadSmallFile(const std::string& sub) = 0;

  // Writes a small file crash-safely (temporary file, synced, renamed),
  // creating its directory. NoSpace / PermissionDenied / IOError.
  virtual Status WriteSmallFile(const std::string& sub, const std::string& content) = 0;

  // Deletes snapshots/<id> (a snapshot id, else InvalidArgument).
  virtual Status DeleteSnapshot(const std::string& id) = 0;

  // Creates snapshots/<id>/data/ (private), for parallel streams that would
  // otherwise race to create it.
  virtual Status MakeSnapshotDir(const std::string& id) = 0;

  // Copies `sources` (rsync source syntax: "dir/" copies dir's contents)
  // into `sub` with rsync, retrying and resuming broken transfers, with
  // progress. Errors as RsyncRunner::Copy.
  virtual Result<RsyncResult> Ship(const std::vector<std::string>& sources, const std::string& sub,
                                   const TransferOptions& options) = 0;

  // Copies `sub` of the destination (rsync source syntax) to `local_dir`.
  virtual Result<RsyncResult> Fetch(const std::string& sub, const std::string& local_dir,
                                    const TransferOptions& options) = 0;

  // Runs argv on the destination's host (whatever its exit code; see
  // RsyncRunner::RunOnHost). FailedPrecondition for kinds that run no
  // commands (local, rsync daemon).
  virtual Result<ProcessResult> RunOnHost(const std::vector<std::string>& argv, int64_t timeout_ms = 60'000,
                                          std::string* whole_stdout = nullptr) = 0;

  // Flushes snapshots/<id>/data to disk on the destination (rsync syncs
  // nothing itself). A daemon runs no commands: its host's writeback is all
  // there is (OK).
  virtual Status SyncSnapshot(const std::string& id) = 0;

  // Publishes snapshot `id`: its data synced, then MANIFEST.json, then DONE
  // (holding `digest`), each written crash-safely. Nothing of DONE exists
  // unless everything before it succeeded.
  virtual Status Publish(const std::string& id, const std::string& manifest, const std::string& digest) = 0;

  // Starts flushing `files` of snapshots/<id>/data as they arrive
  // (snapshot_flusher.h); a flusher that does nothing (and says why) for
  // kinds without one. `python`: the remote interpreter (SSH).
  virtual std::unique_ptr<SnapshotFlusher> StartFlusher(const std::string& id,
                                                        std::vector<SnapshotFlusher::File> files,
                                                        const std::string& python = "python3") = 0;

  // Opens connection `connection` ahead of a transfer stream that uses it
  // (SSH); nothing for other kinds. Best effort.
  virtual void WarmUp(int connection) = 0;

  // `sub` as a path readable in place on this machine, "" when the
  // destination is remote.
  virtual std::string LocalPath(const std::string& sub) const = 0;

  // The entries directly in `sub` ("" = the destination's directory); none
  // when it does not exist.
  virtual Result<std::vector<RemoteEntry>> ListDir(const std::string& sub) = 0;

  // Ships the local `file` and then its `checksum` file into the
  // destination's directory under their base names, never replacing a file
  // there, not even one that appears while they ship (client archives).
  // A taken name is AlreadyExists naming it, and nothing of this call's
  // stays under a final name. Local and SSH kinds ship into `staging_sub`
  // and publish with a hard link (or a rename that does not replace); an
  // rsync daemon runs no commands, so there rsync writes the final names
  // itself, leaving existing ones alone (--ignore-existing), and the
  // checksum file read back must be this call's.
  virtual Status ShipNewFileWithChecksum(const std::string& file, const std::string& checksum,
                                         const std::string& staging_sub, const TransferOptions& options) = 0;
};

using DestinationFactory = std::function<Result<std::unique_ptr<Destination>>(const BackupDestination&,
                                                                              const DestinationContext&)>;

// The implementation for `destination`'s kind.
Result<std::unique_ptr<Destination>> MakeDestination(const BackupDestination& destination,
                                                     const DestinationContext& context);

// rsync options for talking to `destination` (ssh command with the node's
// ssh options, timeouts, retries, cancellation). On SSH destinations every
// `connection` number is one SSH connection (a ControlMaster with its socket
// in the work dir) that all calls with that number share. Connection 0
// carries the small calls; a parallel transfer stream k uses connection k,
// because one ssh process encrypts everything sent over its connection on
// one core.
RsyncOptions DestinationRsyncOptions(const BackupDestination& destination, const DestinationContext& context,
                                     int connection = 0);

}  // namespace ledgerkeep
