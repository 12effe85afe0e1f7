#include "common/zmq_util.h"

#include <atomic>
#include <cstring>

namespace ledgerkeep {

void ConfigureCurveServer(zmq::socket_t& s, const CurveKeyPair& server, std::string_view zap_domain) {
  s.set(zmq::sockopt::curve_server, 1);
  s.set(zmq::sockopt::curve_secretkey, server.secret_z85);
  s.set(zmq::sockopt::zap_domain, std::string(zap_domain));
}

void ConfigureCurveClient(zmq::socket_t& s, const CurveKeyPair& own,
                          const std::string& server_public_z85) {
  s.set(zmq::sockopt::curve_serverkey, server_public_z85);
  s.set(zmq::sockopt::curve_publickey, own.public_z85);
  s.set(zmq::sockopt::curve_secretkey, own.secret_z85);
}

void ApplyCommonOptions(zmq::socket_t& s, int64_t max_message_bytes) {
  s.set(zmq::sockopt::linger, 0);
  // libzmq checks the limit on the CURVE-encrypted frame, which is a few
  // dozen bytes larger than the payload; the codec enforces the exact cap
  // (and answers with an error instead of dropping the connection).
  s.set(zmq::sockopt::maxmsgsize, max_message_bytes + 256);
}

std::optional<std::vector<zmq::message_t>> RecvMultipartNoWait(zmq::socket_t& s) {
  std::vector<zmq::message_t> frames;
  while (true) {
    zmq::message_t msg;
    auto r = s.recv(msg, frames.empty() ? zmq::recv_flags::dontwait : zmq::recv_flags::none);
    if (!r) return std::nullopt;  // EAGAIN on the first frame
    bool more = msg.more();
    frames.push_back(std::move(msg));
    if (!more) return frames;
  }
}

bool SendFramesNoWait(zmq::socket_t& s, const std::vector<std::string_view>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    auto flags = zmq::send_flags::dontwait;
    if (i + 1 < frames.size()) flags = flags | zmq::send_flags::sndmore;
    try {
      auto r = s.send(zmq::const_buffer(frames[i].data(), frames[i].size()), flags);
      if (!r) return false;
    } catch (const zmq::error_t& e) {
      if (e.num() == EHOSTUNREACH || e.num() == EAGAIN) return false;
      throw;
    }
  }
  return true;
}

HandshakeMonitor::HandshakeMonitor(zmq::context_t& ctx, zmq::socket_t& watched, std::string name)
    : pair_(ctx, zmq::socket_type::pair) {
  static std::atomic<uint64_t> counter{0};
  std::string addr = "inproc://monitor-" + name + "-" + std::to_string(counter++);
  int rc = zmq_socket_monitor(watched.handle(), addr.c_str(),
                              ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                  ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                  ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
  if (rc != 0) throw zmq::error_t();
  pair_.set(zmq::sockopt::linger, 0);
  pair_.connect(addr);
}

Status HandshakeMonitor::Poll() {
  while (true) {
    zmq::message_t ev;
    if (!pair_.recv(ev, zmq::recv_flags::dontwait)) break;
    uint16_t event = 0;
    uint32_t value = 0;
    if (ev.size() >= 6) {
      std::memcpy(&event, ev.data(), 2);
      std::memcpy(&value, static_cast<const char*>(ev.data()) + 2, 4);
    }
    zmq::message_t addr;
    if (ev.more()) (void)pair_.recv(addr);
    switch (event) {
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        succeeded_ = true;
        failure_ = Status::OK();
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        failure_ = Status::PermissionDenied(
            "the broker refused our CURVE key (status " + std::to_string(value) +
            "): is this key in the broker's allowlist with the right role?");
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        if (!succeeded_) {
          failure_ = Status::PermissionDenied(
              "CURVE handshake with the broker failed: does broker.public_key in the config "
              "match the broker's key?");
        }
        break;
      default:
        break;
    }
  }
  return failure_;
}

}  // namespace ledgerkeep
