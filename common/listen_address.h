// ListenAddress: where an HTTP server listens, as the configs write it
// ("127.0.0.1:8546", "0.0.0.0:7004", "localhost:8546", or "off").
// Only IPv4 literals and "localhost" are accepted: a name that resolves to
// something else must never open a port by surprise. Port 0 picks a free
// port (tests).
#pragma once

#include <string>

#include "common/status.h"

namespace ledgerkeep {

struct ListenAddress {
  bool off = false;
  std::string host;  // an IPv4 literal ("localhost" becomes 127.0.0.1)
  int port = 0;
  bool loopback() const { return host.rfind("127.", 0) == 0; }
  std::string ToString() const { return off ? "off" : host + ":" + std::to_string(port); }
};

// `what` names the setting in errors, e.g. "node config /etc/x.toml: [http] listen".
Result<ListenAddress> ParseListenAddress(const std::string& what, const std::string& text);

}  // namespace ledgerkeep
