// BackupService: a replica agent's backups (DESIGN.md §6) — its persisted
// configuration (mode, destination, schedule, retention), the scheduler that
// runs while the broker is down, and the command handlers ScheduleBackup,
// UnscheduleBackup, RunBackupNow, ConfigureBackup, GetBackupStatus,
// ListSnapshots and VerifyBackup.
//
// Modes: "rsync" (intermittent backup: snapshots to a destination) or
// "checkpoint" (local RocksDB checkpoints, keep N). A node runs one mode; a
// schedule for the other is refused with how to switch.
// Persistence: <data_dir>/backup/config.json and state.json, written
// crash-safely; a restarted agent keeps its schedule and, if it missed a
// scheduled run while down, runs once at start.
// Concurrency: one run at a time per node — scheduled runs and run-now
// commands queue on one mutex and never interleave.
// Thread-safety: handlers run on the agent's lanes; the scheduler on its own
// thread; state is guarded by mu_.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "agents/command_handler.h"
#include "common/node_config.h"
#include "backup/backup_engine.h"
#include "backup/backup_schedule.h"
#include "backup/maintenance_checkpoint.h"
#include "backup/snapshot_places.h"
#include "backup/snapshot_restore.h"
#include "wire/backup_wire.h"

namespace ledgerkeep {

struct BackupConfig {
  std::string mode = "none";  // none | rsync | checkpoint
  bool scheduled = false;
  std::string destination;    // as given (may hold {node})
  std::string rsync_user;
  std::string ssh_key;
  uint16_t ssh_port = 0;
  std::string known_hosts;
  bool accept_new_host_key = false;
  std::string frequency;
  std::string time_zone = "UTC";
  uint32_t keep_last = 0;
  uint64_t max_age_s = 0;
  uint64_t min_free_bytes = 1ULL << 30;
  // Transfers at most this fast; 0 = the node's [backup] bwlimit.
  uint64_t bwlimit_bytes_per_s = 0;
  int64_t scheduled_since_ms = 0;    // when the schedule was set
  int64_t last_scheduled_run_ms = 0;  // start of the last scheduled run
  // Every place of this node's snapshots, the home (`destination`) first
  // (backup/snapshot_places.h). Updated by each successful run.
  SnapshotPlaces places;
};

// The destination fields of `c` as a target, {node} expanded.
BackupTarget ExpandedTarget(const BackupConfig& c, const std::string& node_id);
// Sets `c`'s destination fields from `t`.
void SetDestination(BackupConfig& c, const BackupTarget& t);

// A run the service finished (scheduled, run-now, or a maintenance ship).
struct FinishedBackupRun {
  // snapshot_count counts the home destination's complete snapshots; 0 for
  // a run to a one-off destination (it says nothing about the home).
  BackupResult result;
  int64_t finished_at_ms = 0;  // the service's clock when the run ended
};

// The newest run and the newest successful one, as persisted (state.json).
struct BackupHistory {
  std::optional<FinishedBackupRun> last;
  std::optional<FinishedBackupRun> last_ok;
};

struct BackupServiceOptions {
  std::string cluster_id;
  std::string node_id;
  std::string data_dir;   // the agent's data dir
  NodeConfig node;
  ProcessRunner* runner = ProcessRunner::Real();
  const Clock* clock = Clock::System();
  // rsync retry tuning (tests shorten it). Defaults: 60 s, 4, 1000 ms.
  int io_timeout_s = 60;
  int max_attempts = 4;
  int64_t backoff_base_ms = 1000;
};

class BackupService {
 public:
  explicit BackupService(BackupServiceOptions options);
  ~BackupService();  // Stop()

  // Loads the persisted configuration (a missing file = no backups yet).
  Status Load();
  // Where scheduled runs report progress and results (set before Start).
  void SetReporter(std::function<void(wire::ReportBodyUnion)> reporter);
  // Told about every run this service finishes (the agent's metrics), on
  // the thread that ran it, after its result is saved, without the state
  // lock held (the run lock is: it must not start a run). Set before
  // StartScheduler and before commands run.
  void SetRunObserver(std::function<void(const FinishedBackupRun&)> observer);
  // The persisted newest and newest successful runs (empty before any run).
  BackupHistory History();
  void StartScheduler();
  void Stop();

  // The handlers of the backup commands, to merge into the agent's map.
  HandlerMap Handlers();

  // For the handlers.
  CommandOutcome Schedule(const wire::ScheduleBackup& cmd);
  CommandOutcome Unschedule();
  CommandOutcome Configure(const wire::ConfigureBackup& cmd);
  CommandOutcome RunNow(const CommandContext& ctx, const wire::RunBackupNow& cmd);
  // The online maintenance window's checkpoint (issue 15): check the space
  // for one, take one at the stop point, or release one (rollback).
  CommandOutcome Checkpoint(const wire::MaintenanceCheckpoint& cmd);
  CommandOutcome GetStatus();
  CommandOutcome List();
  // Verifies the destination's copy of this node's snapshots
  // (snapshot_restore.h VerifyBackup); fails naming every bad file/block.
  CommandOutcome Verify(const CommandContext& ctx, const wire::VerifyBackup& cmd);
  // The configured destination (what `backup configure` set); NotFound if none.
  Result<BackupTarget> ConfiguredTarget();

 private:
  CommandOutcome GetStatusLocked();  // mu_ held
  Status SaveConfig();
  Status SaveState();
  Result<BackupRunOptions> RunOptionsFor(const BackupConfig& c, bool scheduled);
  // How to reach every place of this node's snapshots (list, verify),
  // home first; FailedPrecondition when it has none.
  Result<std::vector<SnapshotAccess>> AccessToEveryPlace(const std::string& work_dir);
  // The places to look at: the recorded ones, or the home alone for a
  // config written before places were recorded.
  static SnapshotPlaces PlacesOf(const BackupConfig& c, const std::string& node_id);
  // `ship`: a maintenance checkpoint to ship as its set's snapshot instead
  // of taking a new source (null = a normal run).
  BackupResult RunLocked(const BackupConfig& c, bool scheduled,
                         const std::function<void(const TransferProgress&)>& progress,
                         const std::function<bool()>& cancelled, const MaintenanceCheckpointInfo* ship = nullptr);
  // RunNow for a maintenance run's checkpoint.
  CommandOutcome ShipCheckpoint(const CommandContext& ctx, const BackupConfig& c, uint64_t run);
  BackupResult RunCheckpoint(const BackupConfig& c, bool scheduled);
  Status CheckpointDirAllowed(const std::string& dir) const;
  // A Note event through the reporter, if one is set (mu_ not held).
  void ReportNote(const std::string& level, const std::string& text);
  Result<int64_t> NextRun(const BackupConfig& c) const;
  void SchedulerLoop();
  void ScheduleTurns();    // SchedulerLoop without its exception boundary
  Status LoadUnguarded();  // Load without its exception boundary

  BackupServiceOptions opt_;
  BackupEngine engine_;
  MaintenanceCheckpoints checkpoints_;
  std::mutex run_mu_;  // one run at a time
  std::mutex mu_;      // guards the fields below
  BackupConfig config_;
  std::unique_ptr<BackupResult> last_;
  std::unique_ptr<BackupResult> last_ok_;
  int64_t last_finished_ms_ = 0;     // when last_ ended (0 = unknown)
  int64_t last_ok_finished_ms_ = 0;  // when last_ok_ ended
  std::function<void(const FinishedBackupRun&)> observer_;
  bool running_ = false;
  std::function<void(wire::ReportBodyUnion)> reporter_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  std::thread scheduler_;
};

}  // namespace ledgerkeep
