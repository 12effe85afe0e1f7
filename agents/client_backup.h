// ClientBackupHandler: the ClientBackup command of client agents (DESIGN.md
// §6 "Client backup", runbook step 14): a .tar.gz of the node's config files
// and db directory, with its checksum, shipped to the backup destination.
//
// A run:
//   1. resolves the archive name (NewClientArchiveFileName: `NAME` or
//      `NAME.tar.gz` -> NAME.tar.gz, NAME of A-Z a-z 0-9 . _ -), the paths
//      (the command's, else the configured `[client] paths`) and the
//      destination (the command's target, else the configured one);
//   2. refuses to overwrite: `<dest>/NAME.tar.gz` or its .sha256 already
//      there is AlreadyExists (checked before archiving and again before
//      shipping); with `check_only` the run ends here;
//   3. writes `<work_dir>/NAME.tar.gz` (client_archive.h; progress phase
//      "archive") and `<work_dir>/NAME.tar.gz.sha256` in sha256sum format
//      ("<hex>  NAME.tar.gz\n", so `sha256sum -c` checks it in place);
//   4. ships both with rsync in one run (progress phase "transfer"), partial
//      data kept in a `.ledgerkeep-partial/` directory, retried and resumed
//      by RsyncRunner. Local and SSH destinations: into
//      `<dest>/.ledgerkeep-incoming/<node>/`, then published under the final
//      names with hard links (or `mv -n` where there are none), archive
//      first, .sha256 last, never replacing a file: a name another run took
//      meanwhile is AlreadyExists and leaves its archive as it was. rsync
//      daemons run no commands: rsync writes the final names itself with
//      --ignore-existing and the .sha256 read back must be ours; two runs
//      that start shipping one new name to a daemon at the same moment can
//      still both write it;
//   5. lists the destination to check the archive's size arrived;
//   6. deletes the local copies (also on failure).
// Destination layout: `<dest>/NAME.tar.gz`, `<dest>/NAME.tar.gz.sha256`. An
// archive without its .sha256 is incomplete.
//
// Crash behaviour: a run interrupted before step 4 leaves only local files in
// the work dir, which the next run removes (`*.tar.gz`, `*.tar.gz.tmp`,
// `*.tar.gz.sha256` directly in work_dir: the work dir must be the handler's
// own). One interrupted during step 4 may leave files in
// `<dest>/.ledgerkeep-incoming/<node>/` (partial ones in its
// `.ledgerkeep-partial/`), reused by a rerun with the same name.
//
// Thread-safety: Execute() runs on the "backup" lane, one command at a time;
// the handler holds no state between runs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "agents/command_handler.h"
#include "backup/client_archive.h"
#include "backup/backup_types.h"
#include "common/process.h"

namespace ledgerkeep {

struct ClientBackupTuning {
  // Extra ssh arguments for SSH destinations (node config [backup]
  // ssh_options). Default: none.
  std::vector<std::string> ssh_options;
  // rsync retry tuning (tests shorten it). Defaults: 60 s, 4, 1000 ms.
  int io_timeout_s = 60;
  int max_attempts = 4;
  int64_t backoff_base_ms = 1000;
  // gzip level of the archive. Default: 6.
  int compression_level = 6;
  // How often progress is reported while archiving. Default: 1000.
  int64_t progress_interval_ms = 1000;
};

class ClientBackupHandler final : public CommandHandler {
 public:
  // The configured destination: a target with an empty destination, or
  // NotFound, means "none configured". `runner` must outlive the handler.
  using DestinationSource = std::function<Result<BackupTarget>()>;

  // `paths`: the node config's `[client] paths` (absolute; may be empty).
  // `work_dir`: where archives are staged before shipping (created if
  // missing; needs room for one archive).
  ClientBackupHandler(std::string node_id, std::vector<std::string> paths, std::string work_dir,
                      DestinationSource configured_destination, ProcessRunner* runner,
                      ClientBackupTuning tuning = {});

  std::string Lane(const wire::Command&) const override { return "backup"; }

  // Success: detail ClientBackupResult (archive = destination path of the
  // .tar.gz in rsync syntax, sha256, bytes, entries, source_bytes,
  // duration_ms; with check_only only archive). Errors: InvalidArgument (bad name or path),
  // FailedPrecondition (no paths / no destination configured, saying what
  // to configure), AlreadyExists (that name is taken at the destination),
  // the archive's errors (NotFound, PermissionDenied, NoSpace, IOError) and
  // rsync's (Unavailable, PermissionDenied, NoSpace, Timeout, ...), Aborted
  // when the agent stops.
  CommandOutcome Execute(const CommandContext& ctx) override;

 private:
  // `path` (symlinks resolved) is one of paths_ or inside one.
  bool InsideConfiguredPaths(const std::string& path) const;
  std::string node_id_;
  std::vector<std::string> paths_;
  std::string work_dir_;
  DestinationSource configured_destination_;
  ProcessRunner* runner_;
  ClientBackupTuning tuning_;
};

}  // namespace ledgerkeep
