#include "ledger/control_server.h"

#include <spdlog/spdlog.h>
#include <sys/un.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>
#include <zmq.hpp>

#include "ledger/control_client.h"
#include "ledger/control_codec.h"

namespace ledgerkeep::ledger {
namespace {

template <typename T>
ControlReplyMsg ToReply(uint64_t id, Result<T> r) {
  ControlReplyMsg reply;
  reply.request_id = id;
  if (r.ok()) {
    reply.result = std::move(r).value();
  } else {
    reply.status = r.status();
  }
  return reply;
}

std::string SocketPathOf(const std::string& endpoint) {
  return endpoint.rfind("ipc://", 0) == 0 ? endpoint.substr(6) : std::string();
}

}  // namespace

std::string HandleControlRequest(LedgerNode& node, std::string_view bytes) {
  auto request = DecodeControlRequest(bytes);
  if (!request.ok()) {
    spdlog::warn("control: rejected request: {}", request.status().message());
    ControlReplyMsg reply;
    reply.status = request.status();
    return EncodeControlReply(reply);
  }
  const ControlRequestMsg& r = *request;
  ControlReplyMsg reply;
  switch (r.op) {
    case ControlOp::kStatus:
      reply = ToReply(r.request_id, Result<LedgerStatus>(node.GetStatus()));
      break;
    case ControlOp::kWedge:
      reply = ToReply(r.request_id, node.Wedge(r.number));
      break;
    case ControlOp::kUnwedge:
      reply = ToReply(r.request_id, node.Unwedge());
      break;
    case ControlOp::kCheckpoint:
      reply = ToReply(r.request_id, node.Checkpoint(r.text));
      break;
    case ControlOp::kSetFault:
      reply = ToReply(r.request_id, node.SetFault(r.flag));
      break;
    case ControlOp::kGetBlock:
      reply = ToReply(r.request_id, node.GetBlock(r.number, r.flag));
      break;
    case ControlOp::kGetKey:
      reply = ToReply(r.request_id, node.GetKey(r.text, r.number));
      break;
  }
  if (!reply.status.ok() && r.op != ControlOp::kGetBlock && r.op != ControlOp::kGetKey) {
    spdlog::warn("control: request {} failed: {}", r.request_id, reply.status.ToString());
  }
  return EncodeControlReply(reply);
}

class ControlServer::Impl {
 public:
  Impl(std::string ep, LedgerNode& n) : endpoint(std::move(ep)), node(n) {}

  void Run(std::promise<Status> ready) {
    zmq::context_t context(1);
    zmq::socket_t socket(context, zmq::socket_type::rep);
    try {
      socket.set(zmq::sockopt::linger, 0);
      socket.set(zmq::sockopt::maxmsgsize, kMaxControlRequestBytes);
      socket.bind(endpoint);
    } catch (const zmq::error_t& e) {
      ready.set_value(Status::IOError("cannot bind control socket " + endpoint + ": " + e.what()));
      return;
    }
    ready.set_value(Status::OK());
    spdlog::info("control socket listening on {}", endpoint);
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    while (!stop.load()) {
      try {
        if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
        zmq::message_t request;
        if (!socket.recv(request, zmq::recv_flags::dontwait)) continue;
        std::string_view bytes(static_cast<const char*>(request.data()), request.size());
        bool multipart = request.more();
        while (request.more()) {
          // Extra frames make the request malformed; drain them first.
          if (!socket.recv(request, zmq::recv_flags::none)) break;
        }
        const std::string reply = multipart ? HandleControlRequest(node, std::string_view())
                                            : HandleControlRequest(node, bytes);
        socket.send(zmq::buffer(reply), zmq::send_flags::none);
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) break;
        spdlog::warn("control socket: {}", e.what());
      }
    }
    socket.close();
    const std::string path = SocketPathOf(endpoint);
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove(path, ec);
  }

  std::string endpoint;
  LedgerNode& node;
  std::atomic<bool> stop{false};
  std::thread thread;
};

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ControlServer::~ControlServer() { Stop(); }

void ControlServer::Stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->stop = true;
  impl_->thread.join();
  spdlog::info("control socket {} closed", impl_->endpoint);
}

Result<std::unique_ptr<ControlServer>> ControlServer::Start(const std::string& socket_path, LedgerNode& node) {
  const std::string endpoint = ControlEndpoint(socket_path);
  const std::string path = SocketPathOf(endpoint);
  if (!path.empty()) {
    if (path.size() >= sizeof(sockaddr_un::sun_path)) {
      return Status::InvalidArgument("control socket path is too long (" + std::to_string(path.size()) +
                                     " bytes, max " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                     "): " + path);
    }
    std::error_code ec;
    if (std::filesystem::exists(std::filesystem::symlink_status(path, ec))) {
      ControlClientOptions probe_options;
      probe_options.timeout = std::chrono::milliseconds(300);
      LedgerControlClient probe(path, probe_options);
      auto status = probe.GetStatus();
      if (status.ok()) {
        return Status::AlreadyExists("another ledgerd (pid " + std::to_string(status->pid) + ") serves " + path);
      }
      spdlog::info("removing stale control socket {}", path);
      std::filesystem::remove(path, ec);
    }
  }
  auto impl = std::make_unique<Impl>(endpoint, node);
  std::promise<Status> ready;
  auto started = ready.get_future();
  impl->thread = std::thread([raw = impl.get(), p = std::move(ready)]() mutable { raw->Run(std::move(p)); });
  Status s = started.get();
  if (!s.ok()) {
    impl->thread.join();
    return s;
  }
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

}  // namespace ledgerkeep::ledger
