// FaultyDestination: a Destination that wraps a real one and fails the
// operations a FaultPlan names, the way RocksDB's tests wrap an Env. Lets
// unit tests drive the backup engine into a full disk, an unreachable host,
// a stalled link or permission errors without root, tmpfs or a network.
//
//   auto plan = std::make_shared<test::FaultPlan>();
//   BackupEngine engine(runner, clock, work, test::FaultyDestinations(plan));
//   plan->Fail(test::DestinationOp::kShip, Status::NoSpace("..."), /*after_inner=*/true);
//
// Thread-safety: the plan may be changed while a run is going (it is locked);
// the wrapper is as thread-safe as the destination it wraps.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "backup/destination.h"

namespace ledgerkeep::test {

enum class DestinationOp {
  kClaim, kList, kRead, kWrite, kDelete, kMakeSnapshotDir, kShip, kFetch, kRunOnHost, kSync, kPublish
};

class FaultPlan {
 public:
  struct Fault {
    Status status;             // what the operation returns
    bool after_inner = false;  // do the real operation first (data half written), then fail
    int64_t stall_ms = 0;      // > 0: hang this long (or until cancelled) first
  };

  // From now on `op` fails with `status`.
  void Fail(DestinationOp op, Status status, bool after_inner = false) {
    std::lock_guard<std::mutex> l(mu_);
    faults_[op] = Fault{std::move(status), after_inner, 0};
  }
  // A full disk: shipping writes part of the data, then NoSpace; small
  // files and publishing cannot be written.
  void FullDisk() {
    const Status s = Status::NoSpace("rsync: write failed: No space left on device (28)");
    Fail(DestinationOp::kShip, s, /*after_inner=*/true);
    Fail(DestinationOp::kWrite, s);
    Fail(DestinationOp::kPublish, s);
    Fail(DestinationOp::kMakeSnapshotDir, s);
  }
  // The host is gone: every operation is Unavailable.
  void Unreachable() {
    const Status s = Status::Unavailable("ssh: connect to host nas port 22: No route to host");
    for (auto op : {DestinationOp::kClaim, DestinationOp::kList, DestinationOp::kRead, DestinationOp::kWrite,
                    DestinationOp::kDelete, DestinationOp::kMakeSnapshotDir, DestinationOp::kShip,
                    DestinationOp::kFetch, DestinationOp::kRunOnHost, DestinationOp::kSync,
                    DestinationOp::kPublish})
      Fail(op, s);
  }
  // The link stalls mid-transfer: Ship hangs for `stall_ms`, then reports
  // rsync's I/O timeout (or Aborted if the run is cancelled meanwhile).
  void StalledLink(int64_t stall_ms) {
    std::lock_guard<std::mutex> l(mu_);
    faults_[DestinationOp::kShip] =
        Fault{Status::Timeout("rsync: [sender] io timeout after " + std::to_string(stall_ms) +
                              " ms -- exiting (no data moved)"),
              false, stall_ms};
  }
  // The destination is read-only to this node: every write is refused.
  void ReadOnly() {
    const Status s = Status::PermissionDenied("mkdir: cannot create directory: Permission denied");
    for (auto op : {DestinationOp::kClaim, DestinationOp::kWrite, DestinationOp::kDelete,
                    DestinationOp::kMakeSnapshotDir, DestinationOp::kShip, DestinationOp::kSync,
                    DestinationOp::kPublish})
      Fail(op, s);
  }
  void Clear() {
    std::lock_guard<std::mutex> l(mu_);
    faults_.clear();
  }
  std::optional<Fault> FaultFor(DestinationOp op) {
    std::lock_guard<std::mutex> l(mu_);
    ++calls_[op];
    auto it = faults_.find(op);
    if (it == faults_.end()) return std::nullopt;
    return it->second;
  }
  // How often `op` was called.
  int Calls(DestinationOp op) {
    std::lock_guard<std::mutex> l(mu_);
    return calls_[op];
  }

 private:
  std::mutex mu_;
  std::map<DestinationOp, Fault> faults_;
  std::map<DestinationOp, int> calls_;
};

class FaultyDestination final : public Destination {
 public:
  FaultyDestination(std::unique_ptr<Destination> inner, std::shared_ptr<FaultPlan> plan,
                    std::function<bool()> cancelled = {})
      : inner_(std::move(inner)), plan_(std::move(plan)), cancelled_(std::move(cancelled)) {}

  const BackupDestination& where() const override { return inner_->where(); }
  Result<ClaimResult> Claim(const std::string& owner, const std::string& create_snapshot) override {
    return Do(DestinationOp::kClaim, [&] { return inner_->Claim(owner, create_snapshot); });
  }
  Result<SnapshotListing> ListSnapshots() override {
    return Do(DestinationOp::kList, [&] { return inner_->ListSnapshots(); });
  }
  Result<std::string> ReadSmallFile(const std::string& sub) override {
    return Do(DestinationOp::kRead, [&] { return inner_->ReadSmallFile(sub); });
  }
  Status WriteSmallFile(const std::string& sub, const std::string& content) override {
    return DoStatus(DestinationOp::kWrite, [&] { return inner_->WriteSmallFile(sub, content); });
  }
  Status DeleteSnapshot(const std::string& id) override {
    return DoStatus(DestinationOp::kDelete, [&] { return inner_->DeleteSnapshot(id); });
  }
  Status MakeSnapshotDir(const std::string& id) override {
    return DoStatus(DestinationOp::kMakeSnapshotDir, [&] { return inner_->MakeSnapshotDir(id); });
  }
  Result<RsyncResult> Ship(const std::vector<std::string>& sources, const std::string& sub,
                           const TransferOptions& options) override {
    return Do(DestinationOp::kShip, [&] { return inner_->Ship(sources, sub, options); }, options.cancelled);
  }
  Result<RsyncResult> Fetch(const std::string& sub, const std::string& local_dir,
                            const TransferOptions& options) override {
    return Do(DestinationOp::kFetch, [&] { return inner_->Fetch(sub, local_dir, options); }, options.cancelled);
  }
  Result<ProcessResult> RunOnHost(const std::vector<std::string>& argv, int64_t timeout_ms,
                                  std::string* whole_stdout) override {
    return Do(DestinationOp::kRunOnHost, [&] { return inner_->RunOnHost(argv, timeout_ms, whole_stdout); });
  }
  Status SyncSnapshot(const std::string& id) override {
    return DoStatus(DestinationOp::kSync, [&] { return inner_->SyncSnapshot(id); });
  }
  Status Publish(const std::string& id, const std::string& manifest, const std::string& digest) override {
    return DoStatus(DestinationOp::kPublish, [&] { return inner_->Publish(id, manifest, digest); });
  }
  std::unique_ptr<SnapshotFlusher> StartFlusher(const std::string& id, std::vector<SnapshotFlusher::File> files,
                                                const std::string& python) override {
    return inner_->StartFlusher(id, std::move(files), python);
  }
  void WarmUp(int connection) override { inner_->WarmUp(connection); }
  std::string LocalPath(const std::string& sub) const override { return inner_->LocalPath(sub); }
  Result<std::vector<RemoteEntry>> ListDir(const std::string& sub) override {
    return Do(DestinationOp::kList, [&] { return inner_->ListDir(sub); });
  }
  Status ShipNewFileWithChecksum(const std::string& file, const std::string& checksum, const std::string& staging_sub,
                                 const TransferOptions& options) override {
    return DoStatus(DestinationOp::kShip,
                    [&] { return inner_->ShipNewFileWithChecksum(file, checksum, staging_sub, options); });
  }

 private:
  // Runs `real` unless the plan fails `op`; a stall waits first (ending
  // early, Aborted, when the run is cancelled).
  template <typename F>
  auto Do(DestinationOp op, F real, const std::function<bool()>& cancelled = {}) -> decltype(real()) {
    auto fault = plan_->FaultFor(op);
    if (!fault) return real();
    if (fault->stall_ms > 0) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(fault->stall_ms);
      while (std::chrono::steady_clock::now() < until) {
        if ((cancelled && cancelled()) || (cancelled_ && cancelled_())) {
          return Status::Aborted("cancelled while the link to " + Display() + " stalled");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    if (fault->after_inner) {
      auto done = real();
      if (!done.ok()) return done;
    }
    return fault->status;
  }
  template <typename F>
  Status DoStatus(DestinationOp op, F real) {
    auto fault = plan_->FaultFor(op);
    if (!fault) return real();
    if (fault->after_inner) LK_RETURN_IF_ERROR(real());
    return fault->status;
  }

  std::unique_ptr<Destination> inner_;
  std::shared_ptr<FaultPlan> plan_;
  std::function<bool()> cancelled_;
};

// A DestinationFactory (BackupEngine's) that wraps the real destination of
// every run in a FaultyDestination following `plan`.
inline DestinationFactory FaultyDestinations(std::shared_ptr<FaultPlan> plan) {
  return [plan](const BackupDestination& where,
                const DestinationContext& context) -> Result<std::unique_ptr<Destination>> {
    LK_ASSIGN_OR_RETURN(auto inner, MakeDestination(where, context));
    return std::unique_ptr<Destination>(
        std::make_unique<FaultyDestination>(std::move(inner), plan, context.cancelled));
  };
}

}  // namespace ledgerkeep::test
