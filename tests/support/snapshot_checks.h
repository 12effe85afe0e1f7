// Checks of backup snapshots on disk, shared by the backup tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "backup/backup_manifest.h"
#include "tests/support/child_process.h"

namespace ledgerkeep::test {

// Snapshot ids under <dest>/snapshots: complete (with DONE) or not, sorted.
inline std::vector<std::string> SnapshotDirs(const std::string& dest, bool complete) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(dest + "/snapshots", ec)) return out;
  for (const auto& e : fs::directory_iterator(dest + "/snapshots", ec)) {
    if (!e.is_directory()) continue;
    if (fs::exists(e.path() / "DONE") == complete) out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A complete snapshot on disk: DONE holds the manifest's digest, and every
// file the manifest lists is there with its checksum. Returns the manifest
// (empty after a failed expectation).
inline SnapshotManifest VerifiedManifest(const std::string& dest, const std::string& id) {
  const std::string snap = dest + "/snapshots/" + id;
  const std::string manifest = ReadFile(snap + "/MANIFEST.json");
  std::string done = ReadFile(snap + "/DONE");
  while (!done.empty() && done.back() == '\n') done.pop_back();
  EXPECT_EQ(done, Sha256Hex(manifest)) << snap;
  auto m = SnapshotManifest::Parse(manifest);
  EXPECT_TRUE(m.ok()) << snap << ": " << m.status().ToString();
  if (!m.ok()) return {};
  for (const auto& f : m->files) {
    auto h = HashFileXxh128(snap + "/data/" + f.path);
    EXPECT_TRUE(h.ok() && *h == f.xxh128) << snap << "/data/" << f.path;
  }
  return *m;
}

}  // namespace ledgerkeep::test
