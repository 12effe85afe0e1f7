// SnapshotFlusher: while rsync writes a snapshot's new files on the backup
// destination, flushes each file to disk (fdatasync) as soon as it has its
// full size, and drops it from the destination host's page cache
// (POSIX_FADV_DONTNEED).
//
// Why: a snapshot is written once and read back only to restore or verify,
// so keeping it in the backup host's page cache evicts what that host
// actually uses, and leaves gigabytes of dirty data that the kernel writes
// back later. Flushing as it arrives keeps the host's cache and dirty-page
// backlog small, makes the data durable well before DONE, and lets the
// kernel recycle the same page-cache pages for the rest of the transfer
// instead of faulting in fresh memory for every byte (on VMs with free-page
// reporting that is the most expensive part of writing the snapshot; see
// bench/RESULTS.md).
//
// Where it runs:
//   local destination   a thread in this process
//   SSH destination     a small python3 program on the backup host, over
//                       the run's SSH connection (the host needs python3;
//                       without it the transfer is the same, just not
//                       flushed as it goes)
//   rsync daemon        not at all (no shell on the host)
// It is an optimisation: whatever it cannot do, the transfer does not
// depend on. Durability before DONE is the publisher's job either way.
//
// Thread-safety: start (Local / OverSsh / None) and Finish from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/process.h"

namespace ledgerkeep {

class SnapshotFlusher {
 public:
  struct File {
    std::string path;   // relative to the snapshot's data directory
    uint64_t size = 0;  // the size it has when rsync has written all of it
  };

  struct Report {
    bool ran = false;      // a flusher ran (and ended)
    uint64_t flushed = 0;  // files flushed and dropped from the page cache
    std::string note;      // why it did not run, or how it ended, for the log
  };

  // Starts flushing `files` under `data_dir`, a directory on this machine
  // (a local destination), on a thread of this process.
  static std::unique_ptr<SnapshotFlusher> Local(const std::string& data_dir, std::vector<File> files);

  // Starts flushing `files` under `data_dir` (the path on the host) on
  // `user_host` through `ssh_argv` (the run's ssh). The remote program's
  // interpreter is `python` (tests name a missing one). A flusher that does
  // nothing (Finish says why) when the file list is too long for one remote
  // command line.
  static std::unique_ptr<SnapshotFlusher> OverSsh(ProcessRunner* runner, const std::vector<std::string>& ssh_argv,
                                                  const std::string& user_host, const std::string& data_dir,
                                                  std::vector<File> files, const std::string& python = "python3");

  // A flusher that does nothing; Finish reports `why` (destinations without
  // a way to flush).
  static std::unique_ptr<SnapshotFlusher> None(std::string why);

  virtual ~SnapshotFlusher() = default;

  // The transfer is over: a last pass flushes every listed file that
  // exists, then the flusher ends. Waits at most timeout_ms, then stops it.
  virtual Report Finish(int64_t timeout_ms) = 0;
};

}  // namespace ledgerkeep
