#include "tests/support/raw_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/clock.h"
#include "tests/support/wait.h"

namespace ledgerkeep::test {

Result<std::unique_ptr<RawPeer>> RawPeer::Connect(RawPeerOptions o) {
  auto peer = std::unique_ptr<RawPeer>(new RawPeer());
  try {
    peer->socket_ = std::make_unique<zmq::socket_t>(peer->ctx_, o.type);
    auto& s = *peer->socket_;
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::maxmsgsize, o.max_message_bytes);
    s.set(zmq::sockopt::rcvhwm, o.rcvhwm);
    if (o.rcvbuf > 0) s.set(zmq::sockopt::rcvbuf, o.rcvbuf);
    ConfigureCurveClient(s, o.key, o.server_public_z85);
    for (const auto& p : o.subscribe) s.set(zmq::sockopt::subscribe, p);
    peer->monitor_ = std::make_unique<HandshakeMonitor>(peer->ctx_, s, "raw-peer");
    s.connect(o.endpoint);
  } catch (const zmq::error_t& e) {
    return Status::Internal(std::string("RawPeer: ") + e.what());
  }
  return peer;
}

RawPeer::~RawPeer() {
  monitor_.reset();
  socket_.reset();
}

bool RawPeer::Send(const std::vector<std::string_view>& frames) {
  return SendFramesNoWait(*socket_, frames);
}

std::optional<std::vector<std::string>> RawPeer::Receive(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket_->handle(), 0, ZMQ_POLLIN, 0};
  zmq::poll(&item, 1, timeout);
  auto frames = RecvMultipartNoWait(*socket_);
  if (!frames) return std::nullopt;
  std::vector<std::string> out;
  for (auto& f : *frames) out.push_back(f.to_string());
  return out;
}

Result<DecodedEnvelope> RawPeer::ReceiveEnvelope(std::chrono::milliseconds timeout) {
  auto msg = Receive(timeout);
  if (!msg) return Status::Timeout("no message within " + std::to_string(timeout.count()) + " ms");
  if (msg->size() != 1) {
    return Status::InvalidArgument("expected 1 frame, got " + std::to_string(msg->size()));
  }
  return DecodeEnvelope((*msg)[0].data(), (*msg)[0].size(), 16u << 20);
}

Status RawPeer::WaitHandshake(std::chrono::milliseconds timeout) {
  Status last = Status::Timeout("no CURVE handshake outcome within " +
                                std::to_string(timeout.count()) + " ms");
  bool decided = WaitUntil(
      [&] {
        Status s = monitor_->Poll();
        if (!s.ok()) {
          last = s;
          return true;
        }
        if (monitor_->succeeded()) {
          last = Status::OK();
          return true;
        }
        return false;
      },
      timeout, std::chrono::milliseconds(5));
  (void)decided;
  return last;
}

std::string MakeEnvelope(const std::string& sender, uint64_t msg_id, wire::BodyUnion body) {
  EnvelopeHeader h;
  h.sender = sender;
  h.msg_id = msg_id;
  h.sent_at_ms = Clock::System()->NowMs();
  return BuildEnvelope(h, std::move(body));
}

Result<std::unique_ptr<RawTcpConnection>> RawTcpConnection::Open(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::FromErrno(err, "connect 127.0.0.1:" + std::to_string(port));
  }
  return std::unique_ptr<RawTcpConnection>(new RawTcpConnection(fd));
}

RawTcpConnection::~RawTcpConnection() {
  if (fd_ >= 0) ::close(fd_);
}

void RawTcpConnection::Write(std::string_view bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    // MSG_NOSIGNAL: the peer may already have closed on us.
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

Status SendRawTcp(int port, std::string_view bytes) {
  LK_ASSIGN_OR_RETURN(auto conn, RawTcpConnection::Open(port));
  conn->Write(bytes);
  return Status::OK();
}

}  // namespace ledgerkeep::test
