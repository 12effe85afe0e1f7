#include "backup/backup_manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common/parallel_for.h"

namespace ledgerkeep {
Result<std::string> HashFileXxh128(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset(st);
  std::vector<char> buf(1 << 20);
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      XXH3_freeState(st);
      ::close(fd);
      return Status::FromErrno(err, "read " + path);
    }
    if (n == 0) break;
    XXH3_128bits_update(st, buf.data(), static_cast<size_t>(n));
  }
  XXH128_hash_t h = XXH3_128bits_digest(st);
  XXH3_freeState(st);
  ::close(fd);
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  return LowerHex(std::string_view(reinterpret_cast<const char*>(c.digest), sizeof c.digest));
}

std::string SnapshotManifest::Serialize() const {
  nlohmann::json files_json = nlohmann::json::array();
  for (const auto& f : files) {
    files_json.push_back({{"path", f.path}, {"size", f.size}, {"mtime", f.mtime}, {"xxh128", f.xxh128}});
  }
  nlohmann::json j = {
      {"format", format},
      {"snapshot_id", snapshot_id},
      {"cluster_id", cluster_id},
      {"node", node},
      {"consistent", consistent},
      {"source", source},
      {"block_ids", {{"genesis", genesis}, {"last_reachable", last_reachable}, {"last", last}}},
      {"started_at_ms", started_at_ms},
      {"finished_at_ms", finished_at_ms},
      {"previous", previous},
      {"bytes_total", bytes_total},
      {"bytes_transferred", bytes_transferred},
      {"files", files_json}};
  if (set_run != 0) j["set"] = {{"run", set_run}, {"block", set_block}};
  return j.dump() + "\n";
}

Result<SnapshotManifest> SnapshotManifest::Parse(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("MANIFEST.json is not valid JSON");
  SnapshotManifest m;
  try {
    m.format = j.at("format").get<int>();
    if (m.format != 1)
      return Status::InvalidArgument("unsupported manifest format " + std::to_string(m.format));
    m.snapshot_id = j.at("snapshot_id").get<std::string>();
    m.cluster_id = j.value("cluster_id", "");
    m.node = j.at("node").get<std::string>();
    m.consistent = j.at("consistent").get<bool>();
    m.source = j.value("source", "");
    const auto& b = j.at("block_ids");
    m.genesis = b.at("genesis").get<uint64_t>();
    m.last_reachable = b.at("last_reachable").get<uint64_t>();
    m.last = b.at("last").get<uint64_t>();
    m.started_at_ms = j.value("started_at_ms", int64_t{0});
    m.finished_at_ms = j.value("finished_at_ms", int64_t{0});
    m.previous = j.value("previous", "");
    m.bytes_total = j.value("bytes_total", uint64_t{0});
    m.bytes_transferred = j.value("bytes_transferred", uint64_t{0});
    if (const auto set = j.find("set"); set != j.end()) {
      m.set_run = set->at("run").get<uint64_t>();
      m.set_block = set->at("block").get<uint64_t>();
    }
    for (const auto& f : j.at("files")) {
      ManifestFile mf;
      mf.path = f.at("path").get<std::string>();
      mf.size = f.at("size").get<uint64_t>();
      mf.mtime = f.value("mtime", int64_t{0});
      mf.xxh128 = f.at("xxh128").get<std::string>();
      if (mf.path.empty() || mf.path[0] == '/' || mf.path.find("..") != std::string::npos) {
        return Status::Corruption("MANIFEST.json lists an unsafe path '" + mf.path + "'");
      }
      m.files.push_back(std::move(mf));
    }
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(std::string("MANIFEST.json is missing a field: ") + e.what());
  }
  return m;
}

Result<std::vector<ManifestFile>> ListTree(const std::string& dir) {
  std::vector<ManifestFile> out;
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(dir, ec), end;
  if (ec) return Status::FromErrno(ec.value(), "scan " + dir);
  for (; it != end; it.increment(ec)) {
    if (ec) return Status::FromErrno(ec.value(), "scan " + dir);
    if (!it->is_regular_file()) continue;
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + it->path().string());
    ManifestFile f;
    f.path = std::filesystem::relative(it->path(), dir).string();
    f.size = static_cast<uint64_t>(st.st_size);
    f.mtime = st.st_mtim.tv_sec;
    out.push_back(std::move(f));
  }
  std::sort(out.begin(), out.end(),
            [](const ManifestFile& a, const ManifestFile& b) { return a.path < b.path; });
  return out;
}

Status ChecksumFiles(const std::string& dir, std::vector<ManifestFile>& files,
                     const SnapshotManifest* previous, int threads, ScanStats* stats) {
  std::map<std::string, const ManifestFile*> prev;
  if (previous != nullptr) {
    for (const auto& f : previous->files) prev[f.path] = &f;
  }
  std::vector<ManifestFile*> to_hash;
  for (auto& f : files) {
    auto p = prev.find(f.path);
    // Only SSTs are immutable: CURRENT, MANIFEST-*, OPTIONS-* and WALs are
    // rewritten, possibly to the same size within the same second (the
    // manifest keeps whole seconds), so their checksums are always computed.
    const bool immutable = f.path.size() > 4 && f.path.compare(f.path.size() - 4, 4, ".sst") == 0;
    if (immutable && p != prev.end() && p->second->size == f.size && p->second->mtime == f.mtime &&
        !p->second->xxh128.empty()) {
      f.xxh128 = p->second->xxh128;
      if (stats) ++stats->files_reused;
      continue;
    }
    to_hash.push_back(&f);
  }
  std::mutex mu;
  Status first_error;
  ParallelFor(to_hash.size(), threads, [&](size_t i) {
    auto h = HashFileXxh128(dir + "/" + to_hash[i]->path);
    if (h.ok()) {
      to_hash[i]->xxh128 = std::move(*h);
      return;
    }
    std::lock_guard<std::mutex> l(mu);
    if (first_error.ok()) first_error = h.status();
  });
  LK_RETURN_IF_ERROR(first_error);
  if (stats) {
    stats->files_hashed += to_hash.size();
    for (const ManifestFile* f : to_hash) stats->bytes_hashed += f->size;
  }
  return Status::OK();
}

Result<std::vector<ManifestFile>> ScanTree(const std::string& dir, const SnapshotManifest* previous,
                                           ScanStats* stats, int threads) {
  LK_ASSIGN_OR_RETURN(auto files, ListTree(dir));
  LK_RETURN_IF_ERROR(ChecksumFiles(dir, files, previous, threads, stats));
  return files;
}

}  // namespace ledgerkeep
