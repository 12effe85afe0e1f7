// RawPeer: a bare ZeroMQ socket speaking CURVE to one broker endpoint, for
// tests that must send what the product's own clients never would (forged
// senders, garbage, oversized messages) or misbehave (a subscriber that never
// reads). It owns its context, so nothing it does can disturb another peer.
// Thread-safety: one owner thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "common/codec.h"
#include "common/curve_keys.h"
#include "common/status.h"
#include "common/zmq_util.h"

namespace ledgerkeep::test {

struct RawPeerOptions {
  zmq::socket_type type = zmq::socket_type::dealer;
  std::string endpoint;            // tcp://127.0.0.1:port
  CurveKeyPair key;                // our pair (any key: allowlisted or not)
  std::string server_public_z85;   // the broker's public key
  int64_t max_message_bytes = -1;  // ZMQ_MAXMSGSIZE (-1: unlimited, so we can send big ones)
  int rcvhwm = 1000;
  int rcvbuf = -1;                 // SO_RCVBUF (-1: OS default)
  std::vector<std::string> subscribe;  // SUB only: prefixes subscribed before connecting
};

class RawPeer {
 public:
  static Result<std::unique_ptr<RawPeer>> Connect(RawPeerOptions options);
  ~RawPeer();

  zmq::socket_t& socket() { return *socket_; }

  // Sends one message of `frames` without blocking; false if it would block.
  bool Send(const std::vector<std::string_view>& frames);
  bool Send(std::string_view frame) { return Send(std::vector<std::string_view>{frame}); }
  // The next whole message within `timeout`, nullopt if none came.
  std::optional<std::vector<std::string>> Receive(std::chrono::milliseconds timeout);
  // The next single-frame message decoded as an envelope, skipping nothing:
  // a malformed reply is an error, no reply within `timeout` is Timeout.
  Result<DecodedEnvelope> ReceiveEnvelope(std::chrono::milliseconds timeout);

  // Waits for the outcome of the CURVE handshake: OK once it succeeded,
  // PermissionDenied if the broker refused us, Timeout if neither happened.
  Status WaitHandshake(std::chrono::milliseconds timeout);

 private:
  RawPeer() = default;
  zmq::context_t ctx_{1};
  std::unique_ptr<zmq::socket_t> socket_;
  std::unique_ptr<HandshakeMonitor> monitor_;
};

// An envelope as a product client would build it (sender, msg_id, body).
std::string MakeEnvelope(const std::string& sender, uint64_t msg_id, wire::BodyUnion body);

// A plain TCP connection to 127.0.0.1:port (no ZMTP), for feeding an
// endpoint bytes that are not ZeroMQ at all, or for holding a connection
// open without ever completing a handshake. Closed on destruction.
class RawTcpConnection {
 public:
  static Result<std::unique_ptr<RawTcpConnection>> Open(int port);
  ~RawTcpConnection();
  // Writes as much of `bytes` as the peer takes; a peer that closes on the
  // first bad byte is not an error (that is the expected reaction).
  void Write(std::string_view bytes);

 private:
  explicit RawTcpConnection(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Open + Write + close.
Status SendRawTcp(int port, std::string_view bytes);

}  // namespace ledgerkeep::test
