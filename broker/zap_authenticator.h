// ZapAuthenticator: the broker's ZAP policy (DESIGN.md §4).
//
// libzmq accepts any CURVE client when no ZAP handler answers, so the broker
// always runs one. A key is accepted only if the allowlist binds it to a node
// id and role, and only on the endpoints that role needs:
//   cmd    (PUB)    replica, client
//   ctl    (ROUTER) every allowlisted role (what each may say is checked per message)
//   events (XPUB)   operator, subscriber
// The accepted node id becomes the connection's ZMQ User-Id, which the broker
// compares with every message's claimed sender.
// Thread-safety: immutable after construction.
#pragma once

#include <string>
#include <string_view>

#include "common/config.h"

namespace ledgerkeep {

struct ZapDecision {
  bool allow = false;
  std::string user_id;   // node id, when allowed
  std::string reason;    // why refused (logged, and sent as ZAP status text)
};

class ZapAuthenticator {
 public:
  explicit ZapAuthenticator(const ClusterConfig& config) : config_(config) {}
  // `client_key` is the 32-byte binary CURVE public key from the ZAP request.
  ZapDecision Decide(std::string_view domain, std::string_view mechanism,
                     std::string_view client_key) const;

 private:
  const ClusterConfig& config_;
};

}  // namespace ledgerkeep
