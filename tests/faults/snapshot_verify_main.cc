// lk_fault_verify: checks every complete snapshot (one with DONE) under the
// given backup destinations, for the fault suite's "snapshots lost" count.
//
//   lk_fault_verify DEST...
//
// Prints one JSON object: {"<dest>": {"<snapshot id>": "ok" | "<what is
// wrong>", ...}, ...}. A snapshot is ok when DONE holds the SHA-256 of its
// MANIFEST.json and every file the manifest lists has its XXH3-128 there.
// Exit 0 when every snapshot is ok, 1 otherwise, 2 on usage errors.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>

#include "backup/backup_manifest.h"
#include "common/file_util.h"

namespace {

namespace fs = std::filesystem;
using ledgerkeep::HashFileXxh128;
using ledgerkeep::ReadFileToString;
using ledgerkeep::Sha256Hex;
using ledgerkeep::SnapshotManifest;

// Snapshots share unchanged files as hard links: hash each inode once.
using FileKey = std::tuple<dev_t, ino_t, off_t, int64_t, long>;
std::map<FileKey, std::string> hashed;

ledgerkeep::Result<std::string> HashOnce(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return HashFileXxh128(path);  // reports the error
  const FileKey key{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
  auto it = hashed.find(key);
  if (it != hashed.end()) return it->second;
  auto h = HashFileXxh128(path);
  if (h.ok()) hashed[key] = *h;
  return h;
}

std::string Check(const std::string& snap) {
  auto manifest = ReadFileToString(snap + "/MANIFEST.json");
  if (!manifest.ok()) return "MANIFEST.json unreadable: " + manifest.status().ToString();
  auto done = ReadFileToString(snap + "/DONE");
  if (!done.ok()) return "DONE unreadable: " + done.status().ToString();
  std::string d = *done;
  while (!d.empty() && (d.back() == '\n' || d.back() == ' ')) d.pop_back();
  if (d != Sha256Hex(*manifest)) return "DONE does not hold the digest of MANIFEST.json";
  auto m = SnapshotManifest::Parse(*manifest);
  if (!m.ok()) return m.status().ToString();
  if (m->files.empty()) return "the manifest lists no files";
  for (const auto& f : m->files) {
    auto h = HashOnce(snap + "/data/" + f.path);
    if (!h.ok()) return f.path + ": " + h.status().ToString();
    if (*h != f.xxh128) return f.path + ": checksum " + *h + ", manifest says " + f.xxh128;
  }
  return "ok";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: lk_fault_verify DEST...\n");
    return 2;
  }
  nlohmann::json out = nlohmann::json::object();
  bool all_ok = true;
  for (int i = 1; i < argc; ++i) {
    const std::string dest = argv[i];
    nlohmann::json snaps = nlohmann::json::object();
    std::error_code ec;
    if (fs::is_directory(dest + "/snapshots", ec)) {
      for (const auto& e : fs::directory_iterator(dest + "/snapshots", ec)) {
        if (!e.is_directory() || !fs::exists(e.path() / "DONE")) continue;
        const std::string verdict = Check(e.path().string());
        all_ok = all_ok && verdict == "ok";
        snaps[e.path().filename().string()] = verdict;
      }
    }
    out[dest] = snaps;
  }
  std::printf("%s\n", out.dump().c_str());
  return all_ok ? 0 : 1;
}
