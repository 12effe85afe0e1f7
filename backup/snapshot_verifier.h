// SnapshotVerifier: is a snapshot directory restorable? (DESIGN.md §8)
//
// A snapshot directory is `<dir>/{data/, MANIFEST.json, DONE}` (layout in
// backup/backup_destination.h, manifest format in backup_manifest.h). The
// checks, in order, each problem naming the file and, where it applies, the
// block:
//   1. DONE exists (else the snapshot is incomplete: nothing else is checked)
//      and holds the SHA-256 of MANIFEST.json;
//   2. MANIFEST.json parses;
//   3. every file of the manifest is in data/ with its size and XXH3-128
//      checksum, and data/ holds no file the manifest does not list;
//   4. the RocksDB opens read-only (nothing is written to the directory);
//   5. the digest chain verifies (the first bad block is named, and the SST
//      when RocksDB names it);
//   6. the DB's block ids equal the manifest's.
// Used in place on a backup destination, on a fetched copy before a restore
// publishes it, and by `ledgerkeep-db DIR verifySnapshot` on a backup host.
// Thread-safety: free functions, no shared state.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "backup/backup_types.h"
#include "common/status.h"

namespace ledgerkeep {

struct SnapshotVerifyOptions {
  // Checksum files, and verify the digest chain in this many contiguous
  // parts, on this many threads. Default: 2.
  int threads = 2;
  // Run the digest-chain check (steps 4-6). Default: true.
  bool check_chain = true;
};

// Verifies the snapshot at `dir`. Problems are in the returned report (ok =
// false); the Status is an error only when `dir` is not a directory.
Result<SnapshotVerification> VerifySnapshotDir(const std::string& dir,
                                                      const SnapshotVerifyOptions& options = {});

// One line per problem: "data/000012.sst: checksum mismatch ... (block 412)".
std::string DescribeProblems(const SnapshotVerification& v);

// The report as JSON (ledgerkeep-db verifySnapshot) and back.
nlohmann::json VerificationToJson(const SnapshotVerification& v);
Result<SnapshotVerification> VerificationFromJson(const std::string& text);

}  // namespace ledgerkeep
