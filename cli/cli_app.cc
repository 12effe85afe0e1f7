// The dispatcher: the app and its global flags, each command group's
// registration, the numeric ranges and fall-through every command gets, then
// the one command argv named.
#include "cli/cli_app.h"

#include <CLI/CLI.hpp>
#include <functional>

#include "cli/backup_commands.h"
#include "cli/bus_commands.h"
#include "cli/command_group.h"
#include "cli/config_command.h"
#include "cli/keygen_command.h"
#include "cli/keys_command.h"
#include "cli/ledger_commands.h"
#include "cli/maintenance_commands.h"
#include "cli/number_flags.h"
#include "cli/restore_command.h"

namespace ledgerkeep {
namespace {

// Lets the global flags follow any subcommand, at every level.
void FallThroughEverywhere(CLI::App* app) {
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) {
    sub->fallthrough();
    FallThroughEverywhere(sub);
  }
}

}  // namespace

int RunCli(int argc, char** argv) {
  CLI::App app{
      "ledgerkeep: operate a ledgerkeep cluster (coordinated, verifiable backups of a "
      "replicated RocksDB ledger).\n"
      "The broker and keys come from --config FILE or $LEDGERKEEP_CONFIG "
      "(`./run cluster up` prints the export line).\n"
      "Exit codes: 0 ok, 1 a target failed, 2 usage error, 3 broker unreachable."};
  app.require_subcommand(1);
  GlobalFlags g;
  app.add_option("--config", g.config, "cluster config (TOML)")->envname("LEDGERKEEP_CONFIG");
  app.add_option("--key", g.key, "operator key file (default: [operator] key_file of the config)")
      ->envname("LEDGERKEEP_KEY");
  app.add_flag("--json", g.json, "machine-readable output");
  app.add_option("--timeout-ms", g.timeout_ms, "how long to wait for the broker to answer")
      ->capture_default_str();

  // The command groups, in the order `ledgerkeep --help` lists them.
  CommandTable commands;
  RegisterKeygenCommand(app, g, commands);
  RegisterBusCommands(app, g, commands);          // nodes, ping, events
  RegisterLedgerCommands(app, g, commands);       // node, blocks, wedge, unwedge, health
  RegisterBackupCommands(app, g, commands);       // backup ...
  RegisterRestoreCommand(app, g, commands);       // restore
  RegisterMaintenanceCommands(app, g, commands);  // maintenance run|abort
  RegisterConfigCommand(app, g, commands);        // config init
  RegisterKeysCommand(app, g, commands);          // keys add|remove|list

  FallThroughEverywhere(&app);
  if (Status limits = ApplyNumberLimits(&app); !limits.ok()) return Fail(limits);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (const std::function<int()>* run = commands.Parsed()) return (*run)();
  return kExitUsage;
}

}  // namespace ledgerkeep
