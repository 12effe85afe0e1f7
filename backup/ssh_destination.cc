#include "backup/ssh_destination.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <sstream>

#include "backup/backup_engine.h"

namespace ledgerkeep {
namespace {

// What fits one remote command line with room to spare.
constexpr size_t kMaxInlineBytes = 96 * 1024;

// The snapshot's data on disk before DONE says it is complete (rsync
// itself syncs nothing): every file and directory under data/ is
// fdatasync'ed (cheap for what the flusher already flushed; a FIFO or
// socket copied from a stopped DB's directory cannot be, and holds no data).
// On an old host without `sync -d` (coreutils < 8.24), a whole `sync`.
constexpr char kSyncDataScript[] =
    "if sync -d -- \"$1/data\" 2>/dev/null; then "
    "find \"$1/data\" \\( -type f -o -type d \\) -exec sync -d -- {} + || exit 5; "
    "else sync || exit 5; fi; ";

// Exit code of kPublishScript when a final name is taken.
constexpr int kNameTakenExit = 17;
// Publishes $1 as $2, then $3 as $4, never replacing a file: a hard link
// (atomic; fails if the name exists), or where the filesystem has none
// `mv -n`. The file goes first, its checksum (what makes it complete)
// last; if that is taken, the file just published is taken back. Then
// the staged files go, and their directory $5 and its parent $6 if empty.
// Exit 17: a name was taken; nothing of ours stays under the final names.
constexpr char kPublishScript[] =
    "publish() { "
    "if ln -- \"$1\" \"$2\" 2>/dev/null; then rm -f -- \"$1\"; return 0; fi; "
    "if [ -e \"$2\" ] || [ -L \"$2\" ]; then return 17; fi; "
    "mv -n -- \"$1\" \"$2\" || return 1; "
    "if [ -e \"$1\" ]; then return 17; fi; return 0; }; "
    "s=0; "
    "if publish \"$1\" \"$2\"; then publish \"$3\" \"$4\" || { s=$?; rm -f -- \"$2\"; }; else s=$?; fi; "
    "rm -f -- \"$1\" \"$3\"; rmdir -- \"$5\" \"$6\" 2>/dev/null; exit $s";

// `find -printf '%y %P\n'` output of snapshots/, two levels deep.
SnapshotListing ParseFindListing(const std::string& text) {
  ListingBuilder b;
  std::istringstream in(text);
  std::string type, name;
  while (in >> type >> name) b.Add(name, type == "f");
  return b.Build();
}

}  // namespace

Result<ProcessResult> SshDestination::RunOnHost(const std::vector<std::string>& argv, int64_t timeout_ms,
                                                std::string* whole_stdout) {
  return rsync_.RunOnHost(where_.UserHost(), argv, timeout_ms, whole_stdout);
}

Result<ClaimResult> SshDestination::Claim(const std::string& owner, const std::string& create_snapshot) {
  std::string out;  // the listing of many snapshots is more than a 64 KiB tail
  LK_ASSIGN_OR_RETURN(
      auto r,
      RunOnHost(
          {"sh", "-c",
           "umask 077; d=$1; me=$2; snap=$3; o=\"$d/.ledgerkeep-owner\"; "
           "mkdir -p \"$d\" || exit 4; "
           "if ! test -f \"$o\"; then t=\"$o.$$.tmp\"; "
           "{ printf '%s\\n' \"$me\" > \"$t\" && sync \"$t\" 2>/dev/null; } || { rm -f \"$t\"; exit 4; }; "
           "if ln \"$t\" \"$o\" 2>/dev/null; then echo CLAIMED; "
           "elif ! test -f \"$o\"; then mv \"$t\" \"$o\" && echo CLAIMED; fi; "  // no hard links there
           "rm -f \"$t\"; fi; "
           "echo OWNER; cat \"$o\" || exit 4; echo LISTING; "
           "if test -d \"$d/snapshots\"; then (cd \"$d/snapshots\" && "
           "find . -mindepth 1 -maxdepth 2 -printf '%y %P\\n') || exit 4; fi; "
           "if test -n \"$snap\" && test \"$(cat \"$o\")\" = \"$me\"; then "
           "mkdir -p \"$d/snapshots/$snap/data\" || exit 4; fi",
           "sh", where_.path, owner, create_snapshot},
          60'000, &out));
  if (r.exit_code != 0) return RemoteWriteFailure("cannot claim backup destination " + Display(), r.output);
  ClaimResult c;
  if (out.rfind("CLAIMED\n", 0) == 0) {
    c.claimed_now = true;
    out.erase(0, 8);
  }
  const auto listing_at = out.find("LISTING\n");
  if (out.rfind("OWNER\n", 0) != 0 || listing_at == std::string::npos)
    return Status::IOError("unexpected answer from " + Display());
  c.owner = out.substr(6, listing_at - 6);
  while (!c.owner.empty() && (c.owner.back() == '\n' || c.owner.back() == ' ')) c.owner.pop_back();
  c.listing = ParseFindListing(out.substr(listing_at + 8));
  if (!create_snapshot.empty() && c.owner == owner) made_by_claim_ = create_snapshot;
  return c;
}

Result<SnapshotListing> SshDestination::ListSnapshots() {
  std::string text;
  LK_ASSIGN_OR_RETURN(auto r, RunOnHost({"sh", "-c",
                                         "test -d \"$1\" || exit 0; cd \"$1\" && "
                                         "find . -mindepth 1 -maxdepth 2 -printf '%y %P\\n'",
                                         "sh", HostPath("snapshots")},
                                        60'000, &text));
  if (r.exit_code != 0) return Status::IOError("cannot list " + Remote("snapshots") + ": " + r.output);
  return ParseFindListing(text);
}

Result<std::string> SshDestination::ReadSmallFile(const std::string& sub) {
  std::string text;  // a manifest of a large DB is more than a 64 KiB tail
  LK_ASSIGN_OR_RETURN(
      auto r, RunOnHost({"sh", "-c", "test -f \"$1\" || exit 3; cat \"$1\"", "sh", HostPath(sub)}, 60'000, &text));
  if (r.exit_code == 3) return Status::NotFound(Remote(sub) + " does not exist");
  if (r.exit_code != 0) return Status::IOError("cannot read " + Remote(sub) + ": " + r.output);
  return text;
}

Status SshDestination::WriteSmallFile(const std::string& sub, const std::string& content) {
  if (content.size() >= kMaxInlineBytes) return RsyncReachedDestination::WriteSmallFile(sub, content);
  LK_ASSIGN_OR_RETURN(
      auto r, RunOnHost({"sh", "-c",
                         "umask 077; mkdir -p \"$(dirname \"$1\")\" && printf '%s' \"$2\" > \"$1.tmp\" && sync "
                         "\"$1.tmp\" 2>/dev/null; mv \"$1.tmp\" \"$1\"",
                         "sh", HostPath(sub), content},
                        60'000, nullptr));
  if (r.exit_code != 0) return RemoteWriteFailure("cannot write " + Remote(sub), r.output);
  return Status::OK();
}

Status SshDestination::DeleteSnapshot(const std::string& id) {
  if (!IsSnapshotId(id)) return Status::InvalidArgument("bad snapshot id " + id);
  LK_ASSIGN_OR_RETURN(auto r, RunOnHost({"rm", "-rf", "--", HostPath("snapshots/" + id)}, 60'000, nullptr));
  if (r.exit_code != 0) return Status::IOError("delete snapshot " + id + ": " + r.output);
  return Status::OK();
}

Status SshDestination::MakeSnapshotDir(const std::string& id) {
  if (id == made_by_claim_) return Status::OK();
  LK_ASSIGN_OR_RETURN(auto r, RunOnHost({"sh", "-c", "umask 077; mkdir -p \"$1\"", "sh",
                                         HostPath("snapshots/" + id + "/data")},
                                        60'000, nullptr));
  if (r.exit_code != 0) return RemoteWriteFailure("cannot create " + Remote("snapshots/" + id + "/data"), r.output);
  return Status::OK();
}

Status SshDestination::SyncSnapshot(const std::string& id) {
  const std::string dir = "snapshots/" + id;
  LK_ASSIGN_OR_RETURN(auto r, RunOnHost({"sh", "-c", kSyncDataScript, "sh", HostPath(dir)}, 60'000, nullptr));
  if (r.exit_code != 0) return RemoteWriteFailure("cannot flush " + Remote(dir) + " to disk", r.output);
  return Status::OK();
}

Status SshDestination::Publish(const std::string& id, const std::string& manifest, const std::string& digest) {
  if (manifest.size() >= kMaxInlineBytes) return RsyncReachedDestination::Publish(id, manifest, digest);
  const std::string dir = "snapshots/" + id;
  LK_ASSIGN_OR_RETURN(
      auto r, RunOnHost({"sh", "-c",
                         "umask 077; " + std::string(kSyncDataScript) +
                             "w() { printf '%s' \"$2\" > \"$1.tmp\" && { sync \"$1.tmp\" 2>/dev/null; "
                             "mv \"$1.tmp\" \"$1\"; }; }; w \"$1/MANIFEST.json\" \"$2\" && w \"$1/DONE\" \"$3\"",
                         "sh", HostPath(dir), manifest, digest + "\n"},
                        60'000, nullptr));
  if (r.exit_code != 0) return RemoteWriteFailure("cannot publish " + Remote(dir), r.output);
  return Status::OK();
}

std::unique_ptr<SnapshotFlusher> SshDestination::StartFlusher(const std::string& id,
                                                              std::vector<SnapshotFlusher::File> files,
                                                              const std::string& python) {
  return SnapshotFlusher::OverSsh(context_.runner, DestinationRsyncOptions(where_, context_).ssh_argv,
                                  where_.UserHost(), HostPath("snapshots/" + id + "/data"), std::move(files),
                                  python);
}

void SshDestination::WarmUp(int connection) {
  RsyncRunner r(context_.runner, DestinationRsyncOptions(where_, context_, connection));
  auto res = r.RunOnHost(where_.UserHost(), {"true"});
  if (!res.ok()) spdlog::debug("ssh connection {} not opened ahead: {}", connection, res.status().ToString());
}

Status SshDestination::PublishStaged(const std::string& file, const std::string& checksum,
                                     const std::string& staging_sub) {
  const std::string from = HostPath(staging_sub) + "/";
  const std::string to = where_.path + "/";
  const std::string staging_parent = std::filesystem::path(HostPath(staging_sub)).parent_path().string();
  LK_ASSIGN_OR_RETURN(auto r, RunOnHost({"sh", "-c", kPublishScript, "sh", from + file, to + file, from + checksum,
                                         to + checksum, from, staging_parent},
                                        60'000, nullptr));
  if (r.exit_code == 0) return Status::OK();
  if (r.exit_code == kNameTakenExit) return Status::AlreadyExists(file);
  return Status::IOError("cannot publish " + Remote(file) + " (exit " + std::to_string(r.exit_code) +
                         "): " + r.output.substr(0, 500) + "; check the destination filesystem");
}

}  // namespace ledgerkeep
