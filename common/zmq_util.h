// ZeroMQ helpers shared by broker, agents and CLI: CURVE set-up, envelope
// send/receive, and a handshake monitor that turns silent CURVE failures into
// errors. zmq types appear only in the components that own sockets.
// Thread-safety: a socket and its monitor belong to one thread.
#pragma once

#include <zmq.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/curve_keys.h"
#include "common/status.h"

namespace ledgerkeep {

// The ZAP domains of the broker's endpoints; the ZAP handler uses them to
// decide which roles may connect where.
inline constexpr std::string_view kZapDomainCmd = "ledgerkeep.cmd";
inline constexpr std::string_view kZapDomainCtl = "ledgerkeep.ctl";
inline constexpr std::string_view kZapDomainEvents = "ledgerkeep.events";

// Server side of CURVE: requires a ZAP handler in the same context.
void ConfigureCurveServer(zmq::socket_t& s, const CurveKeyPair& server, std::string_view zap_domain);
// Client side of CURVE: our pair plus the server's public key.
void ConfigureCurveClient(zmq::socket_t& s, const CurveKeyPair& own,
                          const std::string& server_public_z85);
// linger 0, ZMQ_MAXMSGSIZE, and IPv6 off: applied to every socket we make.
void ApplyCommonOptions(zmq::socket_t& s, int64_t max_message_bytes);

// Receives all frames of one message without blocking; nullopt if none.
std::optional<std::vector<zmq::message_t>> RecvMultipartNoWait(zmq::socket_t& s);

// Sends frames as one message without blocking. Returns false on EAGAIN
// (HWM reached) or EHOSTUNREACH (ROUTER_MANDATORY, peer gone).
bool SendFramesNoWait(zmq::socket_t& s, const std::vector<std::string_view>& frames);

// Watches a client socket's handshakes. After Attach, Poll() reports the
// newest outcome seen so far: an authentication failure becomes a Status
// that says what to check.
class HandshakeMonitor {
 public:
  HandshakeMonitor(zmq::context_t& ctx, zmq::socket_t& watched, std::string name);
  // Drains pending monitor events. Returns the failure, if one was seen;
  // `succeeded()` turns true after a successful handshake.
  Status Poll();
  bool succeeded() const { return succeeded_; }
  zmq::socket_t& socket() { return pair_; }

 private:
  zmq::socket_t pair_;
  bool succeeded_ = false;
  Status failure_;
};

}  // namespace ledgerkeep
