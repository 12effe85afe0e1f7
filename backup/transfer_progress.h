// One rsync progress record (backup/rsync.h) as the wire's Progress body,
// the form every transfer (backup, client archive, restore fetch) reports in.
// Thread-safety: a pure function.
#pragma once

#include <string>

#include "backup/rsync.h"
#include "schemas/ledgerkeep_generated.h"

namespace ledgerkeep {

inline wire::ProgressT ToWireProgress(const RsyncProgress& p, std::string phase) {
  wire::ProgressT w;
  w.phase = std::move(phase);
  w.bytes_done = p.bytes_done;
  w.bytes_total = p.bytes_total;
  w.files_done = p.files_done;
  w.files_total = p.files_total;
  w.rate_bps = static_cast<double>(p.rate_bps);
  w.eta_s = static_cast<double>(p.eta_s);
  w.percent = p.percent;
  return w;
}

}  // namespace ledgerkeep
