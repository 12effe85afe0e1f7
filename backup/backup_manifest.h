// Snapshot manifests (MANIFEST.json) and file checksums.
//
// MANIFEST.json (format 1):
//   {"format": 1, "snapshot_id": "...", "cluster_id": "...", "node": "r1",
//    "consistent": true, "source": "checkpoint" | "live",
//    "block_ids": {"genesis": 1, "last_reachable": 300, "last": 300},
//    "started_at_ms": ..., "finished_at_ms": ..., "previous": "<id>" | "",
//    "bytes_total": N, "bytes_transferred": N,
//    "set": {"run": 7, "block": 450},   (a maintenance run's snapshot set; absent otherwise)
//    "files": [{"path": "000012.sst", "size": 123, "mtime": 1700000000,
//               "xxh128": "<32 hex>"}, ...]}
// DONE holds "<sha256 of MANIFEST.json>\n" and is written after it: a
// snapshot is complete only when DONE exists and matches its manifest.
// Checksums are XXH3-128 (fast enough to verify gigabytes per second);
// the manifest digest is SHA-256.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/sha256.h"  // Sha256Hex: what DONE holds
#include "common/status.h"

namespace ledgerkeep {

struct ManifestFile {
  std::string path;  // relative to data/
  uint64_t size = 0;
  int64_t mtime = 0;   // seconds
  std::string xxh128;  // 32 hex chars
};

struct SnapshotManifest {
  int format = 1;
  std::string snapshot_id;
  std::string cluster_id;
  std::string node;
  bool consistent = false;
  std::string source;  // "checkpoint" | "live"
  uint64_t genesis = 0;
  uint64_t last_reachable = 0;
  uint64_t last = 0;
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  std::string previous;
  uint64_t bytes_total = 0;
  uint64_t bytes_transferred = 0;
  // The snapshot set (issue 15): every replica's snapshot of one maintenance
  // run carries the run and the block all of them stopped at. 0 = none.
  uint64_t set_run = 0;
  uint64_t set_block = 0;
  std::vector<ManifestFile> files;

  std::string Serialize() const;
  static Result<SnapshotManifest> Parse(const std::string& text);
};

struct ScanStats {
  uint64_t files_hashed = 0;
  uint64_t bytes_hashed = 0;
  uint64_t files_reused = 0;  // checksum carried over from the previous manifest
};

// Every regular file under `dir`, sorted by path, with size and mtime (no
// checksums yet).
Result<std::vector<ManifestFile>> ListTree(const std::string& dir);

// Fills in the checksum of every file of `files` (from ListTree): carried
// over from `previous` for SST files (immutable in RocksDB) whose path, size
// and mtime are unchanged, computed otherwise, on `threads` threads.
Status ChecksumFiles(const std::string& dir, std::vector<ManifestFile>& files,
                     const SnapshotManifest* previous, int threads, ScanStats* stats);

// ListTree and ChecksumFiles.
Result<std::vector<ManifestFile>> ScanTree(const std::string& dir, const SnapshotManifest* previous,
                                           ScanStats* stats, int threads = 1);

// XXH3-128 of a file, 32 lower-case hex characters.
Result<std::string> HashFileXxh128(const std::string& path);

}  // namespace ledgerkeep
