// `ledgerkeep config init`: the keys, cluster.toml, node configs (and, for
// an SSH backup server, its keys and known_hosts) of a cluster, written under
// one directory by common/config_init.h and loaded back to check. No broker
// is involved: it is how a cluster's files come to exist.
//
//   ledgerkeep config init --out DIR [--replicas 4] [--clients 1] [--clones 0]
//       [--cluster-id local] [--broker-host 127.0.0.1] [--bind-host H] [--port-base 7001]
//       [--heartbeat-ms 1000] [--data-root DIR/data] [--bin-dir DIR] [--blocks-per-sec 20]
//       [--payload-bytes 16384] [--genesis-ms now] [--backup-host H] [--backup-dir /srv/backups]
//       [--keep-existing | --force]
//
// Usage: AddConfigCommand() before the app parses argv (numeric options get
// their ranges from the CLI's table like every other), then, if
// `init->parsed()`, RunConfigInit(). Output: what was written (or kept), one
// JSON object with --json. Errors: InvalidArgument for a bad option,
// AlreadyExists for a config or foreign files in the way (see
// common/config_init.h), IOError for a file that cannot be written.
#pragma once

#include <memory>

#include "cli/command_group.h"
#include "common/config_init.h"
#include "common/status.h"

namespace CLI {
class App;
}

namespace ledgerkeep {

// The `config` group's subcommands and the values argv gave them. Owned by
// the caller; must outlive the parse.
struct ConfigCommand {
  CLI::App* group = nullptr;  // `config`
  CLI::App* init = nullptr;   // `config init`
  ConfigInitOptions options;
  int port_base = 7001;
  bool keep_existing = false;
  bool force = false;
};

std::unique_ptr<ConfigCommand> AddConfigCommand(CLI::App* app);

// Runs `config init` with the parsed values; prints to stdout.
Status RunConfigInit(const ConfigCommand& command, bool json);

// The `config` group for the dispatcher (cli_app.cc): AddConfigCommand, and
// `config init` in `commands` running RunConfigInit with the global --json.
void RegisterConfigCommand(CLI::App& app, const GlobalFlags& g, CommandTable& commands);

}  // namespace ledgerkeep
