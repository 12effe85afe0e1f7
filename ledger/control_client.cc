#include "ledger/control_client.h"

#include <filesystem>
#include <zmq.hpp>

#include "ledger/control_codec.h"

namespace ledgerkeep::ledger {

std::string DefaultControlPath(const std::string& db_path) {
  std::filesystem::path p = std::filesystem::path(db_path).lexically_normal();
  if (p.has_filename() == false) p = p.parent_path();  // "db/" -> "db"
  std::filesystem::path parent = p.parent_path();
  if (parent.empty()) parent = ".";
  return (parent / "ledgerd.sock").string();
}

std::string ControlEndpoint(const std::string& control) {
  if (control.rfind("ipc://", 0) == 0 || control.rfind("tcp://", 0) == 0 || control.rfind("inproc://", 0) == 0) {
    return control;
  }
  return "ipc://" + control;
}

class LedgerControlClient::Impl {
 public:
  Impl(std::string control, ControlClientOptions o) : endpoint(ControlEndpoint(control)), options(o) {}

  Result<ControlReplyMsg> Call(ControlRequestMsg request, std::chrono::milliseconds timeout) {
    request.request_id = ++next_id;
    const std::string bytes = EncodeControlRequest(request);
    try {
      if (!socket) {
        socket = std::make_unique<zmq::socket_t>(context, zmq::socket_type::req);
        socket->set(zmq::sockopt::linger, 0);
        socket->connect(endpoint);
      }
      if (!socket->send(zmq::buffer(bytes), zmq::send_flags::dontwait)) {
        socket.reset();
        return Status::Unavailable("ledgerd control socket " + endpoint + " not accepting requests");
      }
      zmq::pollitem_t item{socket->handle(), 0, ZMQ_POLLIN, 0};
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      while (true) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
          socket.reset();  // a REQ socket is stuck until it gets its reply
          return Status::Timeout("no reply from ledgerd at " + endpoint + " within " +
                                 std::to_string(timeout.count()) + " ms");
        }
        if (zmq::poll(&item, 1, left) > 0) break;
      }
      zmq::message_t reply;
      if (!socket->recv(reply, zmq::recv_flags::dontwait)) {
        socket.reset();
        return Status::Unavailable("ledgerd control socket " + endpoint + ": receive failed");
      }
      auto decoded = DecodeControlReply(std::string_view(static_cast<const char*>(reply.data()), reply.size()));
      if (!decoded.ok()) return decoded.status();
      if (decoded->request_id != request.request_id) {
        return Status::Corruption("ledgerd replied to request " + std::to_string(decoded->request_id) +
                                  ", expected " + std::to_string(request.request_id));
      }
      return decoded;
    } catch (const zmq::error_t& e) {
      socket.reset();
      return Status::Unavailable("ledgerd control socket " + endpoint + ": " + e.what());
    }
  }

  template <typename T>
  Result<T> CallFor(ControlRequestMsg request, std::chrono::milliseconds timeout) {
    LK_ASSIGN_OR_RETURN(ControlReplyMsg reply, Call(std::move(request), timeout));
    if (!reply.status.ok()) return reply.status;
    if (auto* value = std::get_if<T>(&reply.result)) return std::move(*value);
    return Status::Corruption("ledgerd reply carries an unexpected result type");
  }

  std::string endpoint;
  ControlClientOptions options;
  zmq::context_t context{1};
  std::unique_ptr<zmq::socket_t> socket;
  uint64_t next_id = 0;
};

LedgerControlClient::LedgerControlClient(std::string control, ControlClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(control), options)) {}

LedgerControlClient::~LedgerControlClient() = default;

const std::string& LedgerControlClient::endpoint() const { return impl_->endpoint; }

Result<LedgerStatus> LedgerControlClient::GetStatus() {
  return impl_->CallFor<LedgerStatus>({0, ControlOp::kStatus, 0, false, {}}, impl_->options.timeout);
}

Result<LedgerStatus> LedgerControlClient::Wedge(uint64_t stop_point) {
  return impl_->CallFor<LedgerStatus>({0, ControlOp::kWedge, stop_point, false, {}}, impl_->options.timeout);
}

Status LedgerControlClient::Unwedge() {
  return impl_->CallFor<LedgerStatus>({0, ControlOp::kUnwedge, 0, false, {}}, impl_->options.timeout).status();
}

Result<CheckpointInfo> LedgerControlClient::Checkpoint(const std::string& path) {
  return impl_->CallFor<CheckpointInfo>({0, ControlOp::kCheckpoint, 0, false, path},
                                        impl_->options.checkpoint_timeout);
}

Status LedgerControlClient::SetFault(bool slow_path) {
  return impl_->CallFor<LedgerStatus>({0, ControlOp::kSetFault, 0, slow_path, {}}, impl_->options.timeout).status();
}

Result<BlockInfo> LedgerControlClient::GetBlock(uint64_t id, bool include_raw) {
  return impl_->CallFor<BlockInfo>({0, ControlOp::kGetBlock, id, include_raw, {}}, impl_->options.timeout);
}

Result<KeyLookup> LedgerControlClient::GetKey(const std::string& key, uint64_t at_block) {
  return impl_->CallFor<KeyLookup>({0, ControlOp::kGetKey, at_block, false, key}, impl_->options.timeout);
}

}  // namespace ledgerkeep::ledger
