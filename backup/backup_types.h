// The backup library's values: where snapshots go, what a run did, what a
// destination holds, what a verification or a restore found.
//
// Plain structs, no I/O and no FlatBuffers: the agent's handlers and the
// broker convert them to and from the wire messages of schemas/ledgerkeep.fbs
// (wire/backup_wire.h), which carry the same fields under the same names.
// Thread-safety: values; copy or move them between threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ledgerkeep {

// Where a node's snapshots go (the runbook's schedule body).
struct BackupTarget {
  std::string destination;  // /path, user@host:/dir, or rsync://host/module/dir
  std::string rsync_user;   // login on the backup server (user@ in destination wins)
  std::string ssh_key;      // private key for SSH destinations (default: ~/.ssh/id_*)
  uint16_t ssh_port = 0;    // 0 = 22
  // SSH host keys are checked strictly against this known_hosts file
  // (default: the node's [backup] ssh_options, else ssh's own files).
  std::string known_hosts;
  // Trust an unknown host key on first use and record it; a changed key
  // still fails.
  bool accept_new_host_key = false;
};

// What one backup run did. `ok` false: `error` says why, `error_code` is the
// StatusCode of the failure.
struct BackupResult {
  std::string snapshot_id;
  std::string destination;         // display form
  uint64_t bytes_transferred = 0;  // bytes rsync actually sent
  uint64_t bytes_total = 0;        // size of the snapshot
  uint64_t files_total = 0;
  int64_t duration_ms = 0;
  bool consistent = false;  // copied from a RocksDB checkpoint or a stopped DB
  uint64_t genesis = 0;
  uint64_t last_reachable = 0;
  uint64_t last_block_id = 0;
  std::string manifest_digest;  // SHA-256 of MANIFEST.json (also in DONE)
  bool scheduled = false;       // run by the schedule, not a command
  bool ok = false;
  std::string error;
  uint32_t attempts = 0;
  uint32_t streams = 0;  // parallel rsync streams (1 = one rsync)
  StatusCode error_code = StatusCode::kOk;
  uint64_t set_run = 0;    // the maintenance run whose snapshot set it belongs to (0 = none)
  uint64_t set_block = 0;  // that set's common block
  // Complete snapshots at the run's destination once retention is done, as
  // the engine counted them from its listing; 0 = not counted (a failed run).
  uint32_t snapshot_count = 0;
};

// One snapshot at a destination.
struct SnapshotInfo {
  std::string snapshot_id;
  bool complete = false;  // has DONE
  bool consistent = false;
  uint64_t bytes_total = 0;
  uint64_t files_total = 0;
  uint64_t genesis = 0;
  uint64_t last_reachable = 0;
  uint64_t last_block_id = 0;
  int64_t finished_at_ms = 0;
  std::string destination;  // the place it is at
  uint64_t set_run = 0;     // the maintenance run of its snapshot set (0 = none)
  uint64_t set_block = 0;   // the set's common block
};

// One thing wrong with a snapshot.
struct SnapshotProblem {
  std::string file;    // relative to the snapshot dir ("data/000012.sst", "DONE", ...), "" = none
  uint64_t block = 0;  // the bad block when known, 0 = none
  std::string what;
};

// What verifying one snapshot found (backup/snapshot_verifier.h).
struct SnapshotVerification {
  std::string snapshot_id;
  bool ok = false;
  uint64_t files_checked = 0;
  uint64_t bytes_checked = 0;
  uint64_t blocks_verified = 0;
  uint64_t genesis = 0;
  uint64_t last_reachable = 0;
  uint64_t last_block_id = 0;
  int64_t duration_ms = 0;
  std::vector<SnapshotProblem> problems;
  std::string destination;  // the place it was verified at
};

// `backup verify`: one or every snapshot.
struct BackupVerifyResult {
  std::string destination;
  std::string method;  // "in place" | "on the backup host (ledgerkeep-db)" | "fetched to <dir>"
  std::vector<SnapshotVerification> snapshots;
};

// What a restore did.
struct RestoreResult {
  std::string source_node;
  std::string source;  // destination display
  std::string snapshot_id;
  std::string db;  // the restored DB directory
  uint64_t bytes = 0;
  uint64_t files = 0;
  int64_t fetch_ms = 0;
  int64_t verify_ms = 0;
  int64_t duration_ms = 0;
  std::optional<SnapshotVerification> verification;
  bool ledgerd_started = false;  // ledgerd --read-only serves the restored DB
};

}  // namespace ledgerkeep
