// Is the local ledgerd there at all? Asked before talking to its control
// socket, so a stopped or crashed ledgerd costs no timeout.
#pragma once

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

}  // namespace ledgerkeep
