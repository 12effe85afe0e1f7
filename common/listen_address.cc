#include "common/listen_address.h"

#include <arpa/inet.h>

#include <charconv>

namespace ledgerkeep {

Result<ListenAddress> ParseListenAddress(const std::string& what, const std::string& text) {
  ListenAddress a;
  if (text == "off") {
    a.off = true;
    return a;
  }
  const auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(what + " = \"" + text + "\": " + why +
                                   " (expected \"<IPv4 address>:<port>\", e.g. \"127.0.0.1:8546\", or \"off\")");
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad("no host:port");
  a.host = text.substr(0, colon);
  if (a.host == "localhost") a.host = "127.0.0.1";
  in_addr addr{};
  if (inet_pton(AF_INET, a.host.c_str(), &addr) != 1) return bad("'" + a.host + "' is not an IPv4 address");
  const std::string port = text.substr(colon + 1);
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), a.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || a.port < 0 || a.port > 65535) {
    return bad("'" + port + "' is not a port (0-65535)");
  }
  return a;
}

}  // namespace ledgerkeep
