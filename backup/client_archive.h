// Client archives (DESIGN.md §6 "Client backup", §8 restore): gzip'd POSIX
// tar files of config files and db directories, written and read with
// libarchive, readable by GNU tar (`tar tzf`, `tar xzf`, `sha256sum -c`).
//
// Format: gzip around a pax-restricted tar (plain ustar headers; a pax
// extended header only where ustar cannot express an entry: long names,
// files of 8 GiB and more, big uids). Every entry keeps type, mode, uid/gid
// and user/group names and mtime. Symlinks are stored as symlinks, files
// with several names inside the archive as tar hard links. Entry names are
// what `tar czf NAME /abs/path` stores: the path as given, lexically
// normalised, leading '/' stripped ("/config/telegraf/telegraf.conf" ->
// "config/telegraf/telegraf.conf"), directories with a trailing '/'. Only
// the given paths and what lies below them are stored, not their parents.
// Sockets are skipped (as tar does).
//
// Streaming: file data moves through one fixed 1 MiB buffer, so memory does
// not grow with the size of the input or of the archive.
//
// Crash behaviour: WriteTarGz writes `<out>.tmp`, fsyncs it, renames it to
// `<out>` and fsyncs the directory; after a crash `<out>` is absent or
// complete, and a stale `<out>.tmp` is overwritten by the next write.
// ExtractTarGz writes into `to_dir` as it reads: on an error `to_dir` may
// hold a partial extraction (never anything outside it), so restore into a
// fresh directory.
//
// Thread-safety: free functions without shared state; callbacks run on the
// calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/sha256.h"  // Sha256File: the checksum beside an archive
#include "common/status.h"

namespace ledgerkeep {

struct ArchiveProgress {
  uint64_t bytes_done = 0;   // file data archived so far (never decreases)
  uint64_t bytes_total = 0;  // file data under the given paths, from a scan before writing
  uint64_t files_done = 0;   // entries written (files, directories, links)
  uint64_t files_total = 0;  // entries found by the scan
  bool final = false;        // the closing call of a successful write
};

struct ArchiveOptions {
  // gzip level 1 (fast) .. 9 (small). Default: 6 (what gzip and tar use).
  int compression_level = 6;
  // Receives progress once at the start, then whenever progress_interval_ms
  // has passed (checked after every 1 MiB of data and every entry), and
  // once with final=true at the end. Default: none.
  std::function<void(const ArchiveProgress&)> on_progress;
  // Default: 500 (so an operator sees movement at least once per second).
  int64_t progress_interval_ms = 500;
  // A given path that is a symlink is followed and stored under its own name
  // as what it points to (so a configured `/mnt/data/db` that links to the
  // real db dir archives the db, not a dangling link). Symlinks below a
  // given path are always stored as symlinks. Default: true.
  bool follow_top_level_symlinks = true;
  // Polled with every 1 MiB and every entry; true stops the write, removes
  // `<out>.tmp` and returns Aborted. Default: none.
  std::function<bool()> cancelled;
};

struct ArchiveStats {
  uint64_t entries = 0;        // files, directories, links and special files stored
  uint64_t source_bytes = 0;   // file data stored (sum of regular file sizes)
  uint64_t archive_bytes = 0;  // size of the .tar.gz
  std::string sha256;          // of the .tar.gz, 64 lower-case hex chars
  uint64_t skipped = 0;        // sockets, and the archive itself if it lies under a path
  // Files whose size or mtime changed while they were read (tar's "file
  // changed as we read it"): archived with the size they had when their
  // header was written. Empty when the sources were quiet. (Up to 100.)
  std::vector<std::string> changed;
};

// Writes a .tar.gz of `paths` (files and directories, recursive) to
// `out_path`, crash-safely (see above), mode 0600 (archives hold secrets).
// The directory of out_path must exist. Errors, each naming the path:
// InvalidArgument (no paths, empty path), NotFound (a given path or a file
// below it vanished — stop the component that owns the files first),
// PermissionDenied (unreadable file or directory), NoSpace (the disk of
// out_path is full), IOError (a file shrank while being read, or other I/O),
// Aborted (cancelled). On any error `<out>.tmp` is removed and `out_path` is
// left as it was.
Result<ArchiveStats> WriteTarGz(const std::vector<std::string>& paths, const std::string& out_path,
                                const ArchiveOptions& options);

struct ExtractProgress {
  uint64_t archive_bytes_read = 0;   // compressed bytes consumed
  uint64_t archive_bytes_total = 0;  // size of the archive file
  uint64_t entries_done = 0;
  uint64_t bytes_written = 0;  // file data written
};

struct ExtractOptions {
  // Restore uid/gid (by user/group name first, then by number). Only root
  // can; otherwise files belong to the caller. Default (nullopt): when
  // running as root (euid 0).
  std::optional<bool> restore_owner;
  // Called whenever progress_interval_ms has passed. Default: none.
  std::function<void(const ExtractProgress&)> on_progress;
  int64_t progress_interval_ms = 500;  // Default: 500.
  // Polled with every block and entry; true stops and returns Aborted.
  std::function<bool()> cancelled;
  // SHA-256 (hex) the whole archive file must have, checked while reading
  // (the bytes after the tar's end included): the only way to notice damage
  // in the gzip trailer, which libarchive does not read. Mismatch:
  // Corruption, after the entries were extracted. Default: "" (no check).
  std::string expected_sha256;
};

struct ExtractStats {
  uint64_t entries = 0;
  uint64_t bytes = 0;  // file data written
};

// Extracts a .tar.gz (or a plain tar) into `to_dir` (created if missing),
// restoring type, mode, mtime and, with restore_owner, ownership. Existing
// files of the same name are replaced. Refuses, before writing it, an entry
// whose name is absolute or has a ".." component, a hard link whose target
// is, and a symlink whose target is absolute or leads above to_dir
// (InvalidArgument naming the entry); libarchive's SECURE_NODOTDOT and
// SECURE_SYMLINKS (no extraction through a symlink) guard as well. A
// truncated or damaged archive is Corruption naming the archive and entry;
// NotFound when the archive does not exist; NoSpace/PermissionDenied/IOError
// for failures writing to to_dir; Aborted when cancelled.
Result<ExtractStats> ExtractTarGz(const std::string& archive, const std::string& to_dir,
                                  const ExtractOptions& options);

// ------------------------------------------------------------ names

// The longest archive NAME a new client backup accepts.
inline constexpr size_t kMaxArchiveNameBytes = 200;

// The file name of a new archive: "NAME" or "NAME.tar.gz" -> "NAME.tar.gz",
// where NAME is 1..200 of A-Z a-z 0-9 '.' '_' '-' and starts with a letter
// or digit (so it is a plain file name on every destination, rsync lists it
// as it is, and it reads the same in a shell). InvalidArgument saying what is
// allowed otherwise. The CLI checks names with it before sending.
Result<std::string> NewClientArchiveFileName(const std::string& archive_name);

// The file name of an archive to restore, under the looser rule that names
// of earlier versions followed: "NAME" or "NAME.tar.gz" -> "NAME.tar.gz";
// InvalidArgument for an empty name, one with '/', a leading '.', control
// characters or over 200 bytes.
Result<std::string> ClientArchiveFileName(const std::string& archive_name);

}  // namespace ledgerkeep
