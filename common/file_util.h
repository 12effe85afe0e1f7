// Small filesystem helpers shared by every component.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace ledgerkeep {

// Crash-safe publish: write `<path>.tmp`, fsync, rename over `path`, fsync
// the directory. After a crash `path` holds either the old or the new
// content, never a mix; a stale `.tmp` may remain and is overwritten next time.
Status WriteFileAtomically(const std::string& path, std::string_view content, int mode = 0644);

Result<std::string> ReadFileToString(const std::string& path);

// True if a process listens on the Unix socket at `path` (a connect
// succeeds). A stale socket file of a crashed process answers "refused" at
// once, so callers need not wait for a timeout to know it is gone.
bool UnixSocketListening(const std::string& path);

// mkdir -p with the given mode for created directories.
Status CreateDirectories(const std::string& path, int mode = 0755);

// fsync of the directory `dir`: makes the creation, rename or removal of
// an entry in it durable. Errors name the directory.
Status SyncDirectory(const std::string& dir);
// SyncDirectory of the directory holding `path` ("." for a bare name).
Status SyncParentDirectory(const std::string& path);

// fsync of every regular file and directory under `dir` (and `dir`
// itself): what rsync wrote there is on disk when this returns OK.
Status SyncTree(const std::string& dir);

}  // namespace ledgerkeep
