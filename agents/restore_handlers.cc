#include "agents/restore_handlers.h"

#include "wire/backup_wire.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "agents/client_backup.h"
#include "backup/backup_destination.h"
#include "backup/destination.h"
#include "backup/client_archive.h"
#include "backup/ledger_probe.h"
#include "backup/rsync.h"
#include "backup/snapshot_places.h"
#include "backup/snapshot_restore.h"
#include "common/file_util.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;

// A live member of the cluster never takes a restore (DESIGN §8).
class RefuseRestoreHandler final : public CommandHandler {
 public:
  explicit RefuseRestoreHandler(std::string node_id) : node_id_(std::move(node_id)) {}
  CommandOutcome Execute(const CommandContext&) override {
    return Fail(Status::FailedPrecondition(
        node_id_ +
        " is a live member of the cluster, not a clone: restoring onto it would replace its ledger. "
        "Restore onto a clone agent (`ledgerkeep-agent --role replica --clone`)"));
  }

 private:
  std::string node_id_;
};

class RestoreSnapshotHandler final : public CommandHandler {
 public:
  explicit RestoreSnapshotHandler(RestoreHandlerOptions o) : o_(std::move(o)) {}
  std::string Lane(const wire::Command&) const override { return "node"; }

  CommandOutcome Execute(const CommandContext& ctx) override {
    const auto* cmd = ctx.command().body_as_RestoreSnapshot();
    const NodeConfig& nc = o_.services->config;
    if (nc.ledger_db.empty()) {
      return Fail(Status::FailedPrecondition(
          "clone " + o_.node_id + " has no [ledger] db in its node config: nowhere to restore to"));
    }
    for (const auto& c : nc.components) {
      if (c.name == "ledgerd" && c.managed() &&
          std::find(c.exec.begin(), c.exec.end(), "--read-only") == c.exec.end()) {
        return Fail(Status::FailedPrecondition(
            "clone " + o_.node_id + ": its ledgerd component must run with --read-only (node config " +
            nc.path + ")"));
      }
    }
    const std::string source_node = cmd->source_node() ? cmd->source_node()->str() : "";
    // Where to look: the destination the command names, else every place
    // the broker recorded for the source node ("latest" = newest over all).
    SnapshotPlaces places;
    const BackupTarget target = FromWire(cmd->source());
    if (!target.destination.empty()) {
      SnapshotPlace only;
      only.target = target;
      places.push_back(std::move(only));
    } else if (cmd->places() != nullptr) {
      wire::RestoreSnapshotT unpacked;
      cmd->UnPackTo(&unpacked);
      places = PlacesFromWire(unpacked.places);
    }
    if (places.empty()) {
      return Fail(
          Status::InvalidArgument("no backup destination for " + source_node + " in the restore command"));
    }
    std::vector<SnapshotAccess> access;
    for (const auto& place : places) {
      auto dest = ParseDestination(place.target, source_node);
      if (!dest.ok()) return Fail(dest.status().WithContext("backup destination of " + source_node));
      SnapshotAccess a;
      a.destination = *dest;
      a.ssh_options = nc.backup_ssh_options;
      a.work_dir = o_.work_dir;
      a.io_timeout_s = o_.io_timeout_s;
      a.max_attempts = o_.max_attempts;
      a.backoff_base_ms = o_.backoff_base_ms;
      a.on_progress = [&](const TransferProgress& p) { ctx.ReportProgress(p); };
      a.cancelled = [&] { return ctx.cancelled(); };
      a.newest_recorded = place.newest_snapshot_id;
      access.push_back(std::move(a));
    }
    RestoreRequest req;
    req.source_node = source_node;
    req.snapshot_id = cmd->snapshot_id() ? cmd->snapshot_id()->str() : "";
    req.db_dir = nc.ledger_db;

    // ledgerd holds the DB: stop it for the swap, start it again after
    // (on the restored DB, or on the old one when the restore failed).
    auto* sup = o_.services->supervisor.get();
    if (sup != nullptr && !sup->empty()) {
      ctx.Note("info", "stopping the clone's components for the restore");
      Status stopped = sup->Stop({});
      if (!stopped.ok()) return Fail(stopped.WithContext("cannot stop the clone's components"));
    }
    RestoreResult res;
    Status restored = RestoreSnapshot(o_.runner, access, req, &res);
    CommandOutcome out;
    if (std::error_code ec; sup != nullptr && !sup->empty() && fs::exists(nc.ledger_db, ec)) {
      wire::ProgressT p;
      p.phase = "start";
      p.percent = 100;
      ctx.ReportProgress(std::move(p));
      Status started = sup->Start({});
      if (started.ok() && !nc.ledger_control.empty()) {
        const int64_t deadline = MonotonicMs() + 30'000;
        while (!LedgerdListening(nc.ledger_control) && MonotonicMs() < deadline && !ctx.cancelled()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        res.ledgerd_started = LedgerdListening(nc.ledger_control);
        if (!res.ledgerd_started) started = Status::Timeout("ledgerd --read-only does not serve after 30 s");
      }
      if (restored.ok() && !started.ok()) restored = started.WithContext("restored, but");
    }
    out.status = restored;
    out.detail.Set(ToWire(res));
    return out;
  }

 private:
  RestoreHandlerOptions o_;
};

class RestoreClientArchiveHandler final : public CommandHandler {
 public:
  explicit RestoreClientArchiveHandler(RestoreHandlerOptions o) : o_(std::move(o)) {}
  std::string Lane(const wire::Command&) const override { return "node"; }

  CommandOutcome Execute(const CommandContext& ctx) override {
    const auto* cmd = ctx.command().body_as_RestoreClientArchive();
    const int64_t started = MonotonicMs();
    auto file = ClientArchiveFileName(cmd->archive_name() ? cmd->archive_name()->str() : "");
    if (!file.ok()) return Fail(file.status());
    std::string to_dir = cmd->to_dir() ? cmd->to_dir()->str() : "";
    if (to_dir.empty() || to_dir[0] != '/') {
      return Fail(Status::InvalidArgument("--to-dir must be an absolute path on " + o_.node_id + ", got '" +
                                          to_dir + "'"));
    }
    to_dir = fs::path(to_dir).lexically_normal().string();
    while (to_dir.size() > 1 && to_dir.back() == '/') to_dir.pop_back();
    std::error_code ec;
    if (fs::exists(to_dir, ec) && !(fs::is_directory(to_dir, ec) && fs::is_empty(to_dir, ec))) {
      return Fail(
          Status::FailedPrecondition(to_dir + " exists and is not empty: restore into a new directory"));
    }
    auto target = o_.configured_destination ? o_.configured_destination()
                                            : Result<BackupTarget>(Status::NotFound("none"));
    if (!target.ok() || target->destination.empty()) {
      return Fail(Status::FailedPrecondition("no backup destination configured on " + o_.node_id +
                                             ": set it with `ledgerkeep backup configure`"));
    }
    auto dest = ParseDestination(*target, o_.node_id);
    if (!dest.ok()) return Fail(dest.status());

    // Fetch the archive and its checksum.
    const std::string work = o_.work_dir + "/client-restore";
    fs::remove_all(work, ec);
    if (Status s = CreateDirectories(work, 0700); !s.ok()) return Fail(s);
    struct Cleanup {
      std::string dir;
      ~Cleanup() {
        std::error_code e;
        fs::remove_all(dir, e);
      }
    } cleanup{work};
    BackupRunOptions ro;
    ro.destination = *dest;
    ro.ssh_options = o_.services ? o_.services->config.backup_ssh_options : std::vector<std::string>{};
    ro.io_timeout_s = o_.io_timeout_s;
    ro.max_attempts = o_.max_attempts;
    ro.backoff_base_ms = o_.backoff_base_ms;
    ro.cancelled = [&] { return ctx.cancelled(); };
    auto place = MakeDestination(*dest, DestinationContextOf(ro, o_.runner, work));
    if (!place.ok()) return Fail(place.status());
    const std::string local = work + "/" + *file;
    wire::ProgressT p;
    p.phase = "fetch";
    ctx.ReportProgress(wire::ProgressT(p));
    auto got = (*place)->Fetch(*file, local, {});
    if (!got.ok()) return Fail(got.status().WithContext("fetching " + dest->RsyncPath(*file)));
    auto got_sum = (*place)->Fetch(*file + ".sha256", local + ".sha256", {});
    if (!got_sum.ok()) {
      return Fail(got_sum.status().WithContext("fetching the checksum " + dest->RsyncPath(*file + ".sha256") +
                                               " (an archive without it is incomplete)"));
    }
    auto sum_text = ReadFileToString(local + ".sha256");
    if (!sum_text.ok()) return Fail(sum_text.status());
    const std::string expected = sum_text->substr(0, sum_text->find_first_of(" \t\n"));
    if (expected.size() != 64) {
      return Fail(Status::Corruption(dest->RsyncPath(*file + ".sha256") + " holds no SHA-256"));
    }
    p.phase = "checksum";
    ctx.ReportProgress(wire::ProgressT(p));
    auto actual = Sha256File(local);
    if (!actual.ok()) return Fail(actual.status());
    if (*actual != expected) {
      return Fail(Status::Corruption("archive " + dest->RsyncPath(*file) +
                                     " is damaged or truncated: its sha256 is " + *actual +
                                     ", its .sha256 says " + expected + "; nothing was extracted"));
    }

    // Extract beside the target, then rename: all or nothing.
    p.phase = "extract";
    ctx.ReportProgress(wire::ProgressT(p));
    const std::string tmp = to_dir + ".restore-tmp";
    fs::remove_all(tmp, ec);
    ExtractOptions xo;
    xo.expected_sha256 = expected;
    xo.cancelled = [&] { return ctx.cancelled(); };
    auto x = ExtractTarGz(local, tmp, xo);
    if (!x.ok()) {
      fs::remove_all(tmp, ec);
      return Fail(
          x.status().WithContext("restoring " + *file + " into " + to_dir + " (nothing was written there)"));
    }
    if (fs::exists(to_dir, ec)) fs::remove(to_dir, ec);  // empty (checked above)
    fs::rename(tmp, to_dir, ec);
    if (ec) {
      Status s = Status::FromErrno(ec.value(), "rename " + tmp + " to " + to_dir);
      fs::remove_all(tmp, ec);
      return Fail(s);
    }
    wire::ClientRestoreResultT r;
    r.archive = dest->RsyncPath(*file);
    r.sha256 = expected;
    r.to_dir = to_dir;
    r.entries = x->entries;
    r.bytes = x->bytes;
    r.duration_ms = MonotonicMs() - started;
    spdlog::info("restored client archive {} into {}: {} entries, {} bytes", r.archive, to_dir, r.entries,
                 r.bytes);
    CommandOutcome out;
    out.detail.Set(std::move(r));
    return out;
  }

 private:
  RestoreHandlerOptions o_;
};

}  // namespace

HandlerMap RestoreHandlers(const RestoreHandlerOptions& options) {
  HandlerMap m;
  if (options.role == wire::Role::Replica) {
    if (options.clone) {
      m[wire::CommandBody::RestoreSnapshot] = std::make_shared<RestoreSnapshotHandler>(options);
    } else {
      m[wire::CommandBody::RestoreSnapshot] = std::make_shared<RefuseRestoreHandler>(options.node_id);
    }
  } else if (options.role == wire::Role::Client) {
    m[wire::CommandBody::RestoreClientArchive] = std::make_shared<RestoreClientArchiveHandler>(options);
  }
  return m;
}

}  // namespace ledgerkeep
