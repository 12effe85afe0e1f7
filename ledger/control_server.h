// ControlServer: serves the control protocol (schemas/ledger_control.fbs)
// of one LedgerNode on a ZeroMQ REP socket at ipc://<path>.
//
// Ownership: the server owns one thread, which owns the socket (created,
// bound, used and closed on that thread). The LedgerNode must outlive it.
// Every request gets exactly one reply; malformed input gets an error reply.
// Stop() (or destruction) joins the thread and removes the socket file.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "ledger/ledger_node.h"

namespace ledgerkeep::ledger {

class ControlServer {
 public:
  // Binds `socket_path` (or an "ipc://" endpoint). A stale socket file is
  // removed; AlreadyExists if another live ledgerd answers on it.
  static Result<std::unique_ptr<ControlServer>> Start(const std::string& socket_path, LedgerNode& node);
  ~ControlServer();
  void Stop();

 private:
  class Impl;
  explicit ControlServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Decodes one request, runs it on `node` and encodes the reply. Any input
// bytes yield a valid reply buffer.
std::string HandleControlRequest(LedgerNode& node, std::string_view request);

}  // namespace ledgerkeep::ledger
