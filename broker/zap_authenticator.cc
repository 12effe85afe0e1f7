#include "broker/zap_authenticator.h"

#include <zmq.h>

#include <array>

#include "common/zmq_util.h"

namespace ledgerkeep {

ZapDecision ZapAuthenticator::Decide(std::string_view domain, std::string_view mechanism,
                                     std::string_view client_key) const {
  ZapDecision d;
  if (mechanism != "CURVE") {
    d.reason = "mechanism " + std::string(mechanism) + " refused: only CURVE is accepted";
    return d;
  }
  if (client_key.size() != 32) {
    d.reason = "malformed CURVE key in ZAP request";
    return d;
  }
  std::array<char, 41> z85{};
  zmq_z85_encode(z85.data(), reinterpret_cast<const uint8_t*>(client_key.data()), 32);
  const AllowEntry* e = config_.FindKey(std::string(z85.data(), 40));
  if (e == nullptr) {
    d.reason = "unknown key " + std::string(z85.data(), 40) + " (not in the allowlist)";
    return d;
  }
  bool role_ok = false;
  if (domain == kZapDomainCmd) {
    role_ok = e->role == wire::Role::Replica || e->role == wire::Role::Client;
  } else if (domain == kZapDomainEvents) {
    role_ok = e->role == wire::Role::Operator || e->role == wire::Role::Subscriber;
  } else if (domain == kZapDomainCtl) {
    role_ok = true;
  }
  if (!role_ok) {
    d.reason = "key of '" + e->node_id + "' (" + RoleName(e->role) + ") may not connect to " +
               std::string(domain);
    return d;
  }
  d.allow = true;
  d.user_id = e->node_id;
  return d;
}

}  // namespace ledgerkeep
