// `ledgerkeep keys add|remove|list`: edit the broker's key allowlist without
// a restart (issue 14, point 9).
//
// The allowlist is the cluster config's [[allow]] plus the keys file beside
// it (keys.toml, common/config.h KeysFilePath). `add` and `remove` rewrite
// the keys file crash-safely (tmp + fsync + rename + fsync dir, under an
// flock so two runs do not lose each other's entry) and load the config
// back to check it; the broker re-reads it within a second, says so in a
// "keys" event, and from then on refuses a removed key, open connections
// included (broker/allowlist_reload.h). Entries of cluster.toml itself are
// edited there (the broker picks that up too).
//
// Who may: `add` and `remove` need an operator key (--key or the config's
// [operator] key_file), as the broker's ctl rules do for commands; `list`
// needs only the config. Exit codes as for every command: 2 for bad input
// (unknown role, invalid or unreadable public key, a name or key already
// listed, a name not listed), 3 when the key is not an operator's.
#pragma once

#include <memory>
#include <string>

#include "cli/command_group.h"

namespace CLI {
class App;
}

namespace ledgerkeep {

// The global flags `keys` uses.
struct KeysCommandContext {
  std::string config;  // --config
  std::string key;     // --key ("" = [operator] key_file)
  bool json = false;   // --json
};

class KeysCommand {
 public:
  virtual ~KeysCommand() = default;
  // Whether `keys` (one of its subcommands) was on the command line.
  virtual bool parsed() const = 0;
  // Runs the parsed subcommand; the process exit code.
  virtual int Run(const KeysCommandContext& ctx) const = 0;
};

// Adds `keys` with add, remove and list to `app`. The returned object owns
// the flags' storage: keep it alive until Run.
std::unique_ptr<KeysCommand> RegisterKeysCommands(CLI::App& app);

// The `keys` group for the dispatcher (cli_app.cc): RegisterKeysCommands,
// run with the global --config, --key and --json.
void RegisterKeysCommand(CLI::App& app, const GlobalFlags& g, CommandTable& commands);

}  // namespace ledgerkeep
