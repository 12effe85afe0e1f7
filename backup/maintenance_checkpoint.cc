#include "backup/maintenance_checkpoint.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backup/backup_engine.h"
#include "common/file_util.h"
#include "ledger/control_client.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPrefix = ".ledgerkeep-maintenance-";

std::string Gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// Sum of the regular files under `dir`: with only_sst, of the SST files (what
// a checkpoint pins: compaction deletes them); with only_unshared, of those
// no other directory links (st_nlink == 1: the DB has deleted its copy).
uint64_t TreeBytes(const std::string& dir, bool only_sst, bool only_unshared) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (only_sst && it->path().extension() != ".sst") continue;
    if (only_unshared && st.st_nlink > 1) continue;
    total += static_cast<uint64_t>(st.st_size);
  }
  return total;
}

// The run named by a checkpoint entry's file name, 0 when it is not one.
uint64_t RunOfEntry(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0) return 0;
  std::string rest = name.substr(std::char_traits<char>::length(kPrefix));
  if (rest.size() > 5 && rest.compare(rest.size() - 5, 5, ".json") == 0) rest.resize(rest.size() - 5);
  if (rest.empty() || rest.size() > 19 || rest.find_first_not_of("0123456789") != std::string::npos) return 0;
  return std::stoull(rest);
}

}  // namespace

MaintenanceCheckpoints::MaintenanceCheckpoints(std::string ledger_db, std::string ledger_control,
                                               const Clock* clock)
    : ledger_db_(std::move(ledger_db)),
      ledger_control_(std::move(ledger_control)),
      parent_(fs::path(ledger_db_).parent_path().string()),
      clock_(clock) {}

std::string MaintenanceCheckpoints::DirOf(uint64_t run) const {
  return parent_ + "/" + kPrefix + std::to_string(run);
}

std::string MaintenanceCheckpoints::RecordOf(uint64_t run) const { return DirOf(run) + ".json"; }

Result<CheckpointSpace> MaintenanceCheckpoints::Space() const {
  if (ledger_db_.empty()) {
    return Status::FailedPrecondition("this agent has no [ledger] db in its node config");
  }
  CheckpointSpace s;
  // The DB's own file system: where the pinned SSTs stay.
  struct statvfs vfs {};
  if (::statvfs(ledger_db_.c_str(), &vfs) != 0) return Status::FromErrno(errno, "statvfs " + ledger_db_);
  s.free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  s.db_bytes = TreeBytes(ledger_db_, true, false);
  std::error_code ec;
  for (fs::directory_iterator it(parent_, ec), end; !ec && it != end; it.increment(ec)) {
    if (RunOfEntry(it->path().filename().string()) != 0 && it->is_directory()) {
      s.held_bytes += TreeBytes(it->path().string(), false, true);
    }
  }
  return s;
}

Status MaintenanceCheckpoints::CheckSpace(uint64_t min_free_bytes) const {
  LK_ASSIGN_OR_RETURN(CheckpointSpace s, Space());
  const uint64_t need = min_free_bytes != 0 ? min_free_bytes : s.db_bytes;
  if (s.free_bytes >= need) return Status::OK();
  return Status::NoSpace(Gib(s.free_bytes) + " free on the file system of " + ledger_db_ + ", but a maintenance "
                         "checkpoint can hold up to " + Gib(need) +
                         (min_free_bytes != 0 ? " (--min-free)" : " (the DB's SST files)") +
                         " while it ships: free space there, or run `ledgerkeep maintenance run --offline`");
}

Result<MaintenanceCheckpointInfo> MaintenanceCheckpoints::Find(uint64_t run) const {
  auto text = ReadFileToString(RecordOf(run));
  if (!text.ok()) return Status::NotFound("no checkpoint of maintenance run " + std::to_string(run) + " here");
  auto j = nlohmann::json::parse(*text, nullptr, false);
  MaintenanceCheckpointInfo i;
  try {
    i.run = j.at("run").get<uint64_t>();
    i.stop_point = j.at("stop_point").get<uint64_t>();
    i.checkpoint.dir = DirOf(run);
    i.checkpoint.genesis = j.at("genesis").get<uint64_t>();
    i.checkpoint.last_reachable = j.at("last_reachable").get<uint64_t>();
    i.checkpoint.last = j.at("last").get<uint64_t>();
    i.stop_digest = j.at("stop_digest").get<std::string>();
    i.taken_at_ms = j.at("taken_at_ms").get<int64_t>();
    i.wedged_since_ms = j.value("wedged_since_ms", int64_t{0});
    i.took_ms = j.value("took_ms", int64_t{0});
    i.snapshot_id = j.at("snapshot_id").get<std::string>();
    i.shipped = j.value("shipped", false);
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(RecordOf(run) + ": " + e.what());
  }
  if (i.run != run || !IsSnapshotId(i.snapshot_id)) return Status::Corruption(RecordOf(run) + ": wrong run or id");
  return i;
}

Status MaintenanceCheckpoints::WriteRecord(const MaintenanceCheckpointInfo& i) const {
  nlohmann::json j = {{"run", i.run},
                      {"stop_point", i.stop_point},
                      {"genesis", i.checkpoint.genesis},
                      {"last_reachable", i.checkpoint.last_reachable},
                      {"last", i.checkpoint.last},
                      {"stop_digest", i.stop_digest},
                      {"taken_at_ms", i.taken_at_ms},
                      {"wedged_since_ms", i.wedged_since_ms},
                      {"took_ms", i.took_ms},
                      {"snapshot_id", i.snapshot_id},
                      {"shipped", i.shipped}};
  return WriteFileAtomically(RecordOf(i.run), j.dump() + "\n", 0600);
}

void MaintenanceCheckpoints::RemoveOtherRuns(uint64_t keep) const {
  std::error_code ec;
  for (fs::directory_iterator it(parent_, ec), end; !ec && it != end; it.increment(ec)) {
    const uint64_t run = RunOfEntry(it->path().filename().string());
    if (run == 0 || run == keep) continue;
    std::error_code rm;
    fs::remove_all(it->path(), rm);
    spdlog::info("removed {} of an earlier maintenance run ({})", it->path().string(),
                 rm ? rm.message() : "done");
  }
}

Result<MaintenanceCheckpointInfo> MaintenanceCheckpoints::Take(uint64_t run, uint64_t stop_point,
                                                              uint64_t min_free_bytes) {
  if (run == 0) return Status::InvalidArgument("maintenance run 0");
  if (ledger_control_.empty()) {
    return Status::FailedPrecondition("this agent has no [ledger] control socket: ledgerd cannot checkpoint");
  }
  std::error_code ec;
  if (auto had = Find(run); had.ok()) {
    if (had->stop_point != stop_point) {
      return Status::FailedPrecondition("run " + std::to_string(run) + " has a checkpoint at stop point " +
                                        std::to_string(had->stop_point) + ", not " + std::to_string(stop_point));
    }
    if (had->shipped || fs::is_directory(had->checkpoint.dir, ec)) return *had;
  }
  fs::remove_all(DirOf(run), ec);  // a torn take (no record)
  fs::remove(RecordOf(run), ec);

  ledger::ControlClientOptions co;
  co.timeout = std::chrono::milliseconds(5000);
  ledger::LedgerControlClient client(ledger_control_, co);
  LK_ASSIGN_OR_RETURN(ledger::LedgerStatus st, client.GetStatus());
  if (!st.wedged || st.stop_point != stop_point) {
    return Status::FailedPrecondition("ledgerd is not wedged at stop point " + std::to_string(stop_point) +
                                      " (stop point " + std::to_string(st.stop_point) + ", last reachable " +
                                      std::to_string(st.last_reachable) + ", last " + std::to_string(st.last) +
                                      ")");
  }
  LK_RETURN_IF_ERROR(CheckSpace(min_free_bytes));

  MaintenanceCheckpointInfo i;
  i.run = run;
  i.stop_point = stop_point;
  i.wedged_since_ms = st.wedged_since_ms;
  i.taken_at_ms = clock_->NowMs();
  i.snapshot_id = SnapshotIdFor(i.taken_at_ms);
  const int64_t t0 = clock_->MonotonicNowMs();
  LK_ASSIGN_OR_RETURN(ledger::CheckpointInfo cp, client.Checkpoint(DirOf(run)));
  i.took_ms = clock_->MonotonicNowMs() - t0;
  i.checkpoint = {DirOf(run), cp.genesis, cp.last_reachable, cp.last};
  if (cp.last_reachable != stop_point || cp.last != stop_point) {
    fs::remove_all(DirOf(run), ec);
    return Status::FailedPrecondition("the checkpoint ends at block " + std::to_string(cp.last_reachable) + "/" +
                                      std::to_string(cp.last) + " (last reachable/last), not at the stop point " +
                                      std::to_string(stop_point));
  }
  auto block = client.GetBlock(stop_point);
  if (!block.ok()) {
    fs::remove_all(DirOf(run), ec);
    return block.status().WithContext("reading block " + std::to_string(stop_point));
  }
  i.stop_digest = block->digest_hex;
  if (Status s = WriteRecord(i); !s.ok()) {
    fs::remove_all(DirOf(run), ec);
    return s;
  }
  RemoveOtherRuns(run);
  spdlog::info("maintenance run {}: checkpoint at block {} in {} ms ({})", run, stop_point, i.took_ms,
               i.checkpoint.dir);
  return i;
}

Status MaintenanceCheckpoints::MarkShipped(uint64_t run) {
  LK_ASSIGN_OR_RETURN(MaintenanceCheckpointInfo i, Find(run));
  i.shipped = true;
  LK_RETURN_IF_ERROR(WriteRecord(i));  // first: a crash between leaves a shipped record, never a lost checkpoint
  std::error_code ec;
  fs::remove_all(i.checkpoint.dir, ec);
  if (ec) return Status::FromErrno(ec.value(), "delete " + i.checkpoint.dir);
  spdlog::info("maintenance run {}: snapshot {} complete, checkpoint deleted", run, i.snapshot_id);
  return Status::OK();
}

Status MaintenanceCheckpoints::Release(uint64_t run) {
  std::error_code ec;
  fs::remove_all(DirOf(run), ec);
  if (ec) return Status::FromErrno(ec.value(), "delete " + DirOf(run));
  fs::remove(RecordOf(run), ec);
  if (ec) return Status::FromErrno(ec.value(), "delete " + RecordOf(run));
  return Status::OK();
}

}  // namespace ledgerkeep
