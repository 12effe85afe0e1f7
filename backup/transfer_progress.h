// How far a transfer is (backup, restore fetch): what the backup library
// reports through its on_progress callbacks. The agent's handlers put it on
// the wire (agents/command_handler.h ProgressToWire).
// Thread-safety: plain values and a pure function.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "backup/rsync.h"

namespace ledgerkeep {

struct TransferProgress {
  std::string phase;  // "claim", "transfer", "fetch", ...
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  uint64_t files_done = 0;
  uint64_t files_total = 0;
  double rate_bps = 0;
  double eta_s = 0;
  double percent = 0;
};

// One rsync progress record as the progress of `phase`.
inline TransferProgress ToTransferProgress(const RsyncProgress& p, std::string phase) {
  TransferProgress t;
  t.phase = std::move(phase);
  t.bytes_done = p.bytes_done;
  t.bytes_total = p.bytes_total;
  t.files_done = p.files_done;
  t.files_total = p.files_total;
  t.rate_bps = static_cast<double>(p.rate_bps);
  t.eta_s = static_cast<double>(p.eta_s);
  t.percent = p.percent;
  return t;
}

}  // namespace ledgerkeep
