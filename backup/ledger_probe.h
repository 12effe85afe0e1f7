// Is the local ledgerd there at all? Asked before talking to its control
// socket, so a stopped or crashed ledgerd costs no timeout.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "common/file_util.h"

namespace ledgerkeep {

// `control` is a socket path or an ipc:// endpoint; other endpoint kinds
// cannot be probed this way and count as "maybe".
inline bool LedgerdListening(const std::string& control) {
  if (control.empty()) return false;
  if (control.rfind("ipc://", 0) == 0) return UnixSocketListening(control.substr(6));
  if (control.find("://") != std::string::npos) return true;
  return UnixSocketListening(control);
}

// Takes the ledger DB's LOCK file the way RocksDB does (a write lock on the
// whole file), but as an open file description lock (F_OFD_SETLK): a
// traditional fcntl lock is dropped as soon as the process closes *any* fd
// on the file, and a backup's checksum pass reads LOCK like every other file
// of the DB, which let ledgerd start in the middle of the copy of its
// stopped DB (fault suite: agent frozen during the final sync, a snapshot
// with DONE whose CURRENT did not match its manifest). OFD locks and
// RocksDB's traditional ones exclude each other, also within one process.
// Returns the fd that holds the lock (close it to release), or -1 if the DB
// is in use or has no LOCK file.
inline int TryLockLedgerDb(const std::string& db) {
  int fd = ::open((db + "/LOCK").c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return -1;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Whether something holds the DB's LOCK: a running ledgerd, or a backup
// copying the stopped DB (false for a DB without a LOCK file).
inline bool LedgerDbInUse(const std::string& db) {
  if (::access((db + "/LOCK").c_str(), F_OK) != 0) return false;
  const int fd = TryLockLedgerDb(db);
  if (fd < 0) return true;
  ::close(fd);
  return false;
}

}  // namespace ledgerkeep
