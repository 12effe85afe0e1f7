// Restore command handlers (DESIGN.md §8):
//
// RestoreSnapshot — clone agents only (`ledgerkeep-agent --clone`). A live
//   member of the cluster refuses it (the broker refuses it first). The
//   clone stops its components (ledgerd), restores the snapshot from the
//   source node's destination into its node config's [ledger] db
//   (snapshot_restore.h: fetch, verify, atomic publish), starts its
//   components again — on a clone ledgerd runs with --read-only — waits
//   until ledgerd serves and reports a RestoreResult. Progress: phases
//   resolve, fetch (rsync bytes), verify, publish, start. A snapshot that
//   fails verification is not published; the clone's previous DB and
//   ledgerd are started again as they were.
// RestoreClientArchive — client agents: fetches `<NAME>.tar.gz` and its
//   `.sha256` from the configured destination, checks the SHA-256, extracts
//   into `<to_dir>.restore-tmp` (absolute and ".." entries refused, owner,
//   modes and mtimes restored when root) and renames it to `to_dir`, which
//   must not exist or be empty: a refused or damaged archive leaves nothing
//   behind, in or outside the target.
// Both run on the "node" lane (the supervisor's lane).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agents/command_handler.h"
#include "agents/node_handlers.h"
#include "backup/backup_types.h"
#include "common/process.h"

namespace ledgerkeep {

struct RestoreHandlerOptions {
  std::string node_id;
  wire::Role role = wire::Role::Replica;
  bool clone = false;
  std::shared_ptr<NodeServices> services;
  std::string work_dir;  // the handlers' scratch space (fetched archives, ssh sockets)
  // The configured backup destination (client restore). NotFound = none.
  std::function<Result<BackupTarget>()> configured_destination;
  ProcessRunner* runner = ProcessRunner::Real();
  // rsync tuning. Defaults: 60 s, 4, 1000 ms.
  int io_timeout_s = 60;
  int max_attempts = 4;
  int64_t backoff_base_ms = 1000;
};

// The handlers for this node: RestoreSnapshot on replicas (clones restore,
// members refuse), RestoreClientArchive on clients.
HandlerMap RestoreHandlers(const RestoreHandlerOptions& options);

}  // namespace ledgerkeep
