// LedgerControlClient: the agent's handle on its local ledgerd, over the
// control socket (ZeroMQ REQ -> REP on ipc://<path>, FlatBuffers messages
// from schemas/ledger_control.fbs; see ledger/FORMAT.md).
//
// Ownership: the client owns its ZeroMQ context and REQ socket; the socket is
// created lazily on the first call and connects even before ledgerd runs.
// Thread-safety: NOT thread-safe. Use one client per thread (ZeroMQ sockets
// must stay on the thread that uses them); clients are cheap.
// Failure: every call waits at most its timeout and then returns Timeout;
// the REQ socket is then discarded and re-created, so the next call works
// (a late reply to the abandoned request is never mistaken for a new one).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "ledger/ledger_types.h"

namespace ledgerkeep::ledger {

// Default control socket of the ledger at `db_path`: "<parent of db>/ledgerd.sock"
// (outside the DB directory, so it is never part of a copied/backed-up DB).
std::string DefaultControlPath(const std::string& db_path);
// "ipc://<path>" for a socket path; an "ipc://" or "tcp://" endpoint as is.
std::string ControlEndpoint(const std::string& control);

struct ControlClientOptions {
  // Per-call timeout. Default: 5 s.
  std::chrono::milliseconds timeout{5000};
  // Timeout of Checkpoint(), which flushes memtables. Default: 60 s.
  std::chrono::milliseconds checkpoint_timeout{60000};
};

class LedgerControlClient {
 public:
  // `control`: a socket path or an "ipc://" endpoint.
  explicit LedgerControlClient(std::string control, ControlClientOptions options = {});
  ~LedgerControlClient();
  LedgerControlClient(const LedgerControlClient&) = delete;
  LedgerControlClient& operator=(const LedgerControlClient&) = delete;

  // Errors of every call: Timeout (no reply in time), Unavailable (socket
  // could not be created/connected), Corruption (unreadable reply), or the
  // error ledgerd replied with.
  Result<LedgerStatus> GetStatus();
  // InvalidArgument: not a positive multiple of 150; FailedPrecondition:
  // "already past stop point", or ledgerd is read-only. On success returns
  // the status right after the stop point was recorded (wedged becomes true
  // once the replica sits at it: poll GetStatus()).
  Result<LedgerStatus> Wedge(uint64_t stop_point);
  Status Unwedge();
  // RocksDB checkpoint at absolute `path` (must not exist; its parent must;
  // same file system as the DB for hard links, else files are copied).
  // Returns the block ids it contains.
  Result<CheckpointInfo> Checkpoint(const std::string& path);
  Status SetFault(bool slow_path);
  Result<BlockInfo> GetBlock(uint64_t id, bool include_raw = false);
  // Value of `key` as of block `at_block` (0 = last reachable).
  Result<KeyLookup> GetKey(const std::string& key, uint64_t at_block = 0);

  const std::string& endpoint() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ledgerkeep::ledger
