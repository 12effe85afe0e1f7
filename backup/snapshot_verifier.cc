#include "backup/snapshot_verifier.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "backup/backup_manifest.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "common/parallel_for.h"
#include "ledger/ledger_store.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;

void AddProblem(SnapshotVerification& v, std::string file, uint64_t block, std::string what) {
  v.problems.push_back(SnapshotProblem{std::move(file), block, std::move(what)});
  v.ok = false;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// RocksDB names the table file in its corruption messages
// ("... in /x/data/000012.sst offset 4096 size 3977").
std::string SstNamedIn(const std::string& message) {
  static const std::regex re(R"(([0-9]+\.sst))");
  std::smatch m;
  if (std::regex_search(message, m, re)) return "data/" + m[1].str();
  return "";
}

// Step 3: every manifest file present, right size, right checksum; no
// stray files. Hashing runs on `threads` workers over a shared index.
void CheckFiles(const std::string& data, const SnapshotManifest& m, int threads,
                SnapshotVerification& v) {
  struct Finding {
    size_t index;
    std::string what;
  };
  std::vector<Finding> findings;
  std::mutex mu;
  std::atomic<uint64_t> bytes{0};
  ParallelFor(m.files.size(), threads, [&](size_t i) {
    const ManifestFile& f = m.files[i];
    const std::string path = data + "/" + f.path;
    struct stat st {};
    std::string what;
    if (::lstat(path.c_str(), &st) != 0) {
      what = "missing (listed in MANIFEST.json)";
    } else if (!S_ISREG(st.st_mode)) {
      what = "not a regular file";
    } else if (static_cast<uint64_t>(st.st_size) != f.size) {
      what = "size " + std::to_string(st.st_size) + " bytes, the manifest says " + std::to_string(f.size) +
             " (truncated or rewritten)";
    } else {
      auto h = HashFileXxh128(path);
      bytes += f.size;
      if (!h.ok()) {
        what = "unreadable: " + h.status().message();
      } else if (*h != f.xxh128) {
        what = "checksum mismatch: xxh128 " + *h + ", the manifest says " + f.xxh128 + " (corrupted)";
      }
    }
    if (!what.empty()) {
      std::lock_guard<std::mutex> lock(mu);
      findings.push_back({i, std::move(what)});
    }
  });
  std::sort(findings.begin(), findings.end(),
            [](const Finding& a, const Finding& b) { return a.index < b.index; });
  for (auto& f : findings) AddProblem(v, "data/" + m.files[f.index].path, 0, std::move(f.what));
  v.files_checked = m.files.size();
  v.bytes_checked = bytes.load();

  std::set<std::string> listed;
  for (const auto& f : m.files) listed.insert(f.path);
  std::error_code ec;
  for (fs::recursive_directory_iterator it(data, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string rel = fs::relative(it->path(), data).string();
    if (!listed.count(rel)) AddProblem(v, "data/" + rel, 0, "not in MANIFEST.json (a stray file)");
  }
}

// Steps 4-6 on the RocksDB itself.
void CheckLedger(const std::string& data, const SnapshotManifest& m, int threads,
                 SnapshotVerification& v) {
  auto store = ledger::LedgerStore::OpenReadOnly(data);
  if (!store.ok()) {
    AddProblem(v, SstNamedIn(store.status().message()), 0,
               "the RocksDB does not open: " + store.status().ToString());
    return;
  }
  const auto ids = (*store)->GetBlockIds();
  v.genesis = ids.genesis;
  v.last_reachable = ids.last_reachable;
  v.last_block_id = ids.last;
  if (ids.last_reachable > 0) {
    // The chain in `threads` contiguous parts verified in parallel; each part
    // after the first also checks its link to the block before it.
    const uint64_t first = ids.genesis, last = ids.last_reachable;
    const uint64_t parts = std::max<uint64_t>(
        1, std::min<uint64_t>(static_cast<uint64_t>(std::max(1, threads)), (last - first + 1) / 1024 + 1));
    std::vector<Result<ledger::VerifyReport>> reports(parts, Status::Internal("not run"));
    std::vector<std::thread> pool;
    const uint64_t span = (last - first + 1) / parts;
    for (uint64_t i = 0; i < parts; ++i) {
      const uint64_t from = first + i * span;
      const uint64_t to = i + 1 == parts ? last : from + span - 1;
      pool.emplace_back([&, i, from, to] { reports[i] = (*store)->VerifyChain(from, to); });
    }
    for (auto& t : pool) t.join();
    for (auto& report : reports) {
      if (!report.ok()) {
        AddProblem(v, SstNamedIn(report.status().message()), 0,
                   "chain verification failed: " + report.status().ToString());
        break;
      }
      v.blocks_verified += report->blocks_verified;
      if (!report->ok()) {
        AddProblem(v, SstNamedIn(report->error), *report->first_bad_block,
                   "digest chain broken at block " + std::to_string(*report->first_bad_block) + ": " +
                       report->error);
        break;  // the first bad block; later parts are not counted
      }
    }
  }
  if (ids.genesis != m.genesis || ids.last_reachable != m.last_reachable || ids.last != m.last) {
    AddProblem(v, "MANIFEST.json", 0,
               "block ids differ: the DB has genesis " + std::to_string(ids.genesis) + ", last reachable " +
                   std::to_string(ids.last_reachable) + ", last " + std::to_string(ids.last) +
                   "; the manifest says " + std::to_string(m.genesis) + ", " +
                   std::to_string(m.last_reachable) + ", " + std::to_string(m.last) +
                   (m.consistent ? "" : " (a live, inconsistent copy)"));
  }
}

}  // namespace

Result<SnapshotVerification> VerifySnapshotDir(const std::string& dir,
                                                      const SnapshotVerifyOptions& options) {
  const int64_t started = MonotonicMs();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::NotFound("snapshot directory " + dir + " does not exist");
  SnapshotVerification v;
  v.snapshot_id = fs::path(dir).lexically_normal().filename().string();
  if (v.snapshot_id.empty())
    v.snapshot_id = fs::path(dir).lexically_normal().parent_path().filename().string();
  v.ok = true;
  auto finish = [&]() -> Result<SnapshotVerification> {
    v.duration_ms = MonotonicMs() - started;
    return std::move(v);
  };

  // 1. DONE, and that it seals this manifest.
  auto done = ReadFileToString(dir + "/DONE");
  if (!done.ok()) {
    AddProblem(v, "DONE", 0,
               "missing: the snapshot is incomplete (its backup run did not finish) and cannot be restored");
    return finish();
  }
  auto text = ReadFileToString(dir + "/MANIFEST.json");
  if (!text.ok()) {
    AddProblem(v, "MANIFEST.json", 0, "unreadable: " + text.status().message());
    return finish();
  }
  if (Trim(*done) != Sha256Hex(*text)) {
    AddProblem(v, "MANIFEST.json", 0,
               "does not match DONE (sha256 " + Sha256Hex(*text) + ", DONE says " + Trim(*done) +
                   "): the manifest was changed or truncated");
  }
  // 2. The manifest itself.
  auto m = SnapshotManifest::Parse(*text);
  if (!m.ok()) {
    AddProblem(v, "MANIFEST.json", 0, "unparsable: " + m.status().message());
    return finish();
  }
  if (!m->snapshot_id.empty()) v.snapshot_id = m->snapshot_id;
  // 3. Files.
  const std::string data = dir + "/data";
  if (!fs::is_directory(data, ec)) {
    AddProblem(v, "data/", 0, "missing: the snapshot has no data directory");
    return finish();
  }
  CheckFiles(data, *m, options.threads, v);
  // 4-6. The ledger (also after a bad file: it names the damaged block).
  if (options.check_chain) CheckLedger(data, *m, options.threads, v);
  return finish();
}

std::string DescribeProblems(const SnapshotVerification& v) {
  std::string out;
  for (const auto& p : v.problems) {
    if (!out.empty()) out += "\n";
    out += (p.file.empty() ? std::string("snapshot") : p.file) + ": " + p.what;
    if (p.block != 0 && p.what.find("block " + std::to_string(p.block)) == std::string::npos) {
      out += " (block " + std::to_string(p.block) + ")";
    }
  }
  return out;
}

nlohmann::json VerificationToJson(const SnapshotVerification& v) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& p : v.problems) {
    problems.push_back({{"file", p.file}, {"block", std::to_string(p.block)}, {"what", p.what}});
  }
  return {{"snapshotID", v.snapshot_id},
          {"result", v.ok ? "ok" : "failed"},
          {"filesChecked", std::to_string(v.files_checked)},
          {"bytesChecked", std::to_string(v.bytes_checked)},
          {"blocksVerified", std::to_string(v.blocks_verified)},
          {"genesisBlockID", std::to_string(v.genesis)},
          {"lastReachableBlockID", std::to_string(v.last_reachable)},
          {"lastBlockID", std::to_string(v.last_block_id)},
          {"durationMs", std::to_string(v.duration_ms)},
          {"problems", problems}};
}

Result<SnapshotVerification> VerificationFromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("result")) {
    return Status::Corruption("not a verifySnapshot report: " + text.substr(0, 200));
  }
  auto u64 = [&](const char* key) -> uint64_t {
    const std::string s = j.value(key, "0");
    return std::strtoull(s.c_str(), nullptr, 10);
  };
  SnapshotVerification v;
  v.snapshot_id = j.value("snapshotID", "");
  v.ok = j.value("result", "") == "ok";
  v.files_checked = u64("filesChecked");
  v.bytes_checked = u64("bytesChecked");
  v.blocks_verified = u64("blocksVerified");
  v.genesis = u64("genesisBlockID");
  v.last_reachable = u64("lastReachableBlockID");
  v.last_block_id = u64("lastBlockID");
  v.duration_ms = static_cast<int64_t>(u64("durationMs"));
  if (const auto p = j.find("problems"); p != j.end() && p->is_array()) {
    for (const auto& e : *p) {
      if (!e.is_object()) continue;
      v.problems.push_back(SnapshotProblem{e.value("file", ""),
                                           std::strtoull(e.value("block", "0").c_str(), nullptr, 10),
                                           e.value("what", "")});
    }
  }
  return v;
}

}  // namespace ledgerkeep
