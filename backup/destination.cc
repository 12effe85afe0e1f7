#include "backup/destination.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <functional>

#include "backup/backup_engine.h"
#include "backup/destination_base.h"
#include "backup/local_destination.h"
#include "backup/rsync_daemon_destination.h"
#include "backup/ssh_destination.h"
#include "common/file_util.h"

namespace ledgerkeep {
namespace {

// The ssh ControlPath of a connection in `work_dir`. A Unix socket path
// holds 107 characters and ssh binds "<path>.<16 random>" first, with %C 40
// hex digits: a deep work dir falls back to /tmp, still one socket per work
// dir (agents on one host must not share a master connection: each node's
// transfers use its own network path).
std::string ControlPathFor(const std::string& work_dir, int connection) {
  constexpr size_t kSunPathMax = 107, kPercentC = 40, kBindSuffix = 17;
  const std::string name = connection == 0 ? "%C" : std::to_string(connection) + "-%C";
  const std::string in_work = work_dir + "/lk-ssh-" + name;
  // ssh parses `-o ControlPath=...` like a config line and expands %-tokens
  // in it: a work dir with a space, quote or '%' goes to /tmp as well.
  const bool plain = std::all_of(work_dir.begin(), work_dir.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' || c == '-';
  });
  if (plain && in_work.size() - 2 + kPercentC + kBindSuffix <= kSunPathMax) return in_work;
  char tag[17];
  std::snprintf(tag, sizeof tag, "%016zx", std::hash<std::string>{}(work_dir));
  return std::string("/tmp/lk-ssh-") + tag + "-" + name;
}

std::string TrimTrailingBlanks(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

RsyncOptions DestinationRsyncOptions(const BackupDestination& destination, const DestinationContext& context,
                                     int connection) {
  RsyncOptions r;
  // The node's own options (e.g. its known_hosts) go before our defaults:
  // ssh takes the first value of each option. Empty for kinds without ssh.
  std::vector<std::string> ssh = destination.SshArgv(context.ssh_options, context.work_dir + "/known_hosts");
  if (!ssh.empty()) {
    // One SSH connection per `connection` for the whole run: a run makes
    // several small calls (claim and listing, manifest, retention) besides
    // the transfer, and a handshake costs ~0.3 s.
    ssh.insert(ssh.end(), {"-o", "ControlMaster=auto", "-o", "ControlPersist=30", "-o",
                           "ControlPath=" + ControlPathFor(context.work_dir, connection)});
    r.ssh_argv = std::move(ssh);
  }
  r.io_timeout_s = context.io_timeout_s;
  r.max_attempts = context.max_attempts;
  r.backoff_base_ms = context.backoff_base_ms;
  r.cancelled = context.cancelled;
  r.bwlimit_bytes_per_s = context.bwlimit_bytes_per_s;
  r.background = context.background;
  return r;
}

Result<std::unique_ptr<Destination>> MakeDestination(const BackupDestination& destination,
                                                     const DestinationContext& context) {
  if (context.runner == nullptr) return Status::InvalidArgument("a destination needs a process runner");
  switch (destination.kind) {
    case BackupDestination::Kind::kLocal:
      return std::unique_ptr<Destination>(std::make_unique<LocalDestination>(destination, context));
    case BackupDestination::Kind::kSsh:
      return std::unique_ptr<Destination>(std::make_unique<SshDestination>(destination, context));
    case BackupDestination::Kind::kRsyncDaemon:
      return std::unique_ptr<Destination>(std::make_unique<RsyncDaemonDestination>(destination, context));
  }
  return Status::InvalidArgument("unknown destination kind");
}

Status RemoteWriteFailure(const std::string& what, const std::string& output) {
  if (output.find("No space") != std::string::npos) return Status::NoSpace(what + ": " + output);
  if (output.find("denied") != std::string::npos || output.find("Read-only") != std::string::npos) {
    return Status::PermissionDenied(what + ": " + output);
  }
  return Status::IOError(what + ": " + output);
}

void ListingBuilder::Add(const std::string& relative_path, bool is_file) {
  const auto slash = relative_path.find('/');
  const std::string id = relative_path.substr(0, slash);
  if (!IsSnapshotId(id)) return;
  bool& done = seen_[id];
  if (slash != std::string::npos && relative_path.substr(slash + 1) == "DONE" && is_file) done = true;
}

SnapshotListing ListingBuilder::Build() const {
  SnapshotListing l;
  for (const auto& [id, done] : seen_) (done ? l.complete : l.incomplete).push_back(id);
  return l;
}

RsyncReachedDestination::RsyncReachedDestination(BackupDestination where, DestinationContext context)
    : where_(std::move(where)),
      context_(std::move(context)),
      rsync_(context_.runner, DestinationRsyncOptions(where_, context_)) {
  CreateDirectories(context_.work_dir, 0700).IgnoreError();  // reported by the first write into it
}

RsyncOptions RsyncReachedDestination::OptionsFor(const TransferOptions& options) const {
  RsyncOptions ro = DestinationRsyncOptions(where_, context_, options.connection);
  ro.extra_args = options.extra_args;
  ro.allow_vanished_source_files = options.allow_vanished_source_files;
  ro.on_progress = options.on_progress;
  if (options.cancelled) ro.cancelled = options.cancelled;
  return ro;
}

Result<ClaimResult> RsyncReachedDestination::Claim(const std::string& owner, const std::string&) {
  ClaimResult c;
  auto found = ReadSmallFile(kOwnerMarkerFile);
  if (found.ok()) {
    c.owner = TrimTrailingBlanks(*found);
    return c;
  }
  if (found.status().code() != StatusCode::kNotFound) {
    return found.status().WithContext("cannot read the ownership marker of " + Display());
  }
  LK_RETURN_IF_ERROR(WriteSmallFile(kOwnerMarkerFile, owner + "\n"));
  // Read back: if two nodes raced for a new directory, only one wins.
  LK_ASSIGN_OR_RETURN(auto again, ReadSmallFile(kOwnerMarkerFile));
  c.owner = TrimTrailingBlanks(again);
  c.claimed_now = c.owner == owner;
  c.lost_race = !c.claimed_now;
  return c;
}

Result<SnapshotListing> RsyncReachedDestination::ListSnapshots() {
  auto entries = rsync_.ListRemote(Remote("snapshots"), /*recursive=*/true);
  if (!entries.ok()) {
    if (entries.status().code() == StatusCode::kNotFound) return SnapshotListing{};
    return entries.status();
  }
  ListingBuilder b;
  for (const auto& e : *entries) b.Add(e.name, e.type == RemoteEntry::Type::kFile);
  return b.Build();
}

Result<std::string> RsyncReachedDestination::ReadSmallFile(const std::string& sub) {
  LK_RETURN_IF_ERROR(CreateDirectories(context_.work_dir + "/fetch", 0700));
  const std::string local = context_.work_dir + "/fetch/" + std::filesystem::path(sub).filename().string();
  std::error_code ec;
  std::filesystem::remove(local, ec);
  auto r = Fetch(sub, local, {});
  if (!r.ok()) {
    if (r.status().message().find("No such file") != std::string::npos ||
        r.status().code() == StatusCode::kNotFound) {
      return Status::NotFound(Remote(sub) + " does not exist");
    }
    return r.status();
  }
  return ReadFileToString(local);
}

Status RsyncReachedDestination::WriteSmallFile(const std::string& sub, const std::string& content) {
  LK_RETURN_IF_ERROR(CreateDirectories(context_.work_dir + "/stage", 0700));
  const std::string local = context_.work_dir + "/stage/" + std::filesystem::path(sub).filename().string();
  LK_RETURN_IF_ERROR(WriteFileAtomically(local, content, kPrivateFileMode));
  TransferOptions t;
  t.extra_args = {"--mkpath", kPrivateChmod};
  return RsyncReachedDestination::Ship({local}, sub, t).status();
}

Result<RsyncResult> RsyncReachedDestination::Ship(const std::vector<std::string>& sources, const std::string& sub,
                                                  const TransferOptions& options) {
  RsyncRunner copier(context_.runner, OptionsFor(options));
  return copier.Copy(sources, Remote(sub));
}

Result<RsyncResult> RsyncReachedDestination::Fetch(const std::string& sub, const std::string& local_dir,
                                                   const TransferOptions& options) {
  RsyncRunner copier(context_.runner, OptionsFor(options));
  return copier.Copy({Remote(sub)}, local_dir);
}

Status RsyncReachedDestination::Publish(const std::string& id, const std::string& manifest,
                                        const std::string& digest) {
  const std::string dir = "snapshots/" + id;
  LK_RETURN_IF_ERROR(SyncSnapshot(id));
  LK_RETURN_IF_ERROR(WriteSmallFile(dir + "/MANIFEST.json", manifest));
  return WriteSmallFile(dir + "/DONE", digest + "\n");
}

Result<std::vector<RemoteEntry>> RsyncReachedDestination::ListDir(const std::string& sub) {
  auto listing = rsync_.ListRemote(Remote(sub));
  if (!listing.ok() && listing.status().code() == StatusCode::kNotFound) return std::vector<RemoteEntry>{};
  return listing;
}

Status RsyncReachedDestination::ShipNewFileWithChecksum(const std::string& file, const std::string& checksum,
                                                        const std::string& staging_sub,
                                                        const TransferOptions& options) {
  TransferOptions t = options;
  t.extra_args.insert(t.extra_args.end(), {"--mkpath", std::string("--partial-dir=") + kPartialDirName});
  LK_RETURN_IF_ERROR(Ship({file, checksum}, staging_sub + "/", t).status());
  return PublishStaged(std::filesystem::path(file).filename().string(),
                       std::filesystem::path(checksum).filename().string(), staging_sub);
}

Status RsyncReachedDestination::PublishStaged(const std::string&, const std::string&, const std::string&) {
  return Status::FailedPrecondition(Display() + " cannot publish files without replacing them");
}

Result<ProcessResult> RsyncReachedDestination::RunOnHost(const std::vector<std::string>&, int64_t,
                                                         std::string*) {
  return Status::FailedPrecondition(Display() + " runs no commands (only SSH destinations do)");
}

}  // namespace ledgerkeep
