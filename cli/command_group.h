// What every command group of the `ledgerkeep` CLI shares: the global flags,
// the --node/--role/--all target flags, exit codes for a Status, issuing a
// command and waiting for it, and the table in which each group registers
// its commands with what runs them (cli_app.cc dispatches on it).
//
// A group is one function, Register<Group>Commands(app, flags, commands),
// that adds its subcommands to the CLI11 app and, for each command that
// runs, an entry in the CommandTable. Every flag value a command needs lives
// in state the run function owns (captured by it), so nothing dangles
// between parse and run. Thread-safety: one thread (the CLI's).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "client/broker_client.h"
#include "common/codec.h"
#include "common/status.h"

namespace CLI {
class App;
}

namespace ledgerkeep {

// The flags of the app itself (--config, --key, --json, --timeout-ms). Every
// subcommand falls through to them, so they may also follow it.
struct GlobalFlags {
  std::string config;
  std::string key;
  bool json = false;
  int64_t timeout_ms = 5000;
};

// --node, --role, --all of a command that goes to some agents.
struct TargetFlags {
  std::string node;
  std::string role;
  bool all = false;
};

// Adds --node/--role/--all (mutually exclusive) to `sub`, bound to `t`.
void AddTargetFlags(CLI::App* sub, TargetFlags& t);
// The wire target the flags name; no flag at all is every node.
wire::TargetT ToTarget(const TargetFlags& f);
// ToTarget, except that no flag at all means every replica.
wire::TargetT ReplicasByDefault(const TargetFlags& f);

// The exit code for `s` (cli_app.h): Unavailable and PermissionDenied are
// 3, InvalidArgument and NotFound 2, any other error 1.
int ExitCodeFor(const Status& s);
// Prints "ledgerkeep: <message>" to stderr; returns ExitCodeFor(s).
int Fail(const Status& s);
// kExitOk for OK, else Fail(s).
int ExitWith(const Status& s);

// The cluster config and operator key the global flags name (--key, else the
// config's [operator] key_file), with --timeout-ms.
Result<ClientOptions> LoadClientOptions(const GlobalFlags& g);
// LoadClientOptions, then a connected BrokerClient.
Result<std::unique_ptr<BrokerClient>> ConnectBroker(const GlobalFlags& g);

// Issues `body` to the targets, waits for all of them (up to wait_s, plus 5 s
// for the broker), and returns the final status (or the error to exit with).
Result<wire::CommandStatusT> RunCommand(const GlobalFlags& g, const wire::TargetT& target,
                                        wire::CommandBodyUnion body, int64_t wait_s);
// RunCommand to the one node `node`; its status, which has exactly one target.
Result<wire::CommandStatusT> RunOnNode(const GlobalFlags& g, const std::string& node,
                                       wire::CommandBodyUnion body, int64_t wait_s);

// A target's outcome: Ok or not, its result status name ("pending" without
// one), its message, and "<node>: <result>: <message>" as an Aborted Status.
bool TargetOk(const wire::TargetStatusT& t);
std::string TargetResult(const wire::TargetStatusT& t);
std::string TargetMessage(const wire::TargetStatusT& t);
Status TargetFailure(const std::string& node, const wire::TargetStatusT& t);

// The commands the groups registered, each with what runs it.
class CommandTable {
 public:
  // When argv named `command`, the dispatcher calls `run` and exits with
  // what it returns.
  void Add(CLI::App* command, std::function<int()> run);
  // The run function of the command argv named (the first parsed one in the
  // order added); nullptr when none was.
  const std::function<int()>* Parsed() const;

 private:
  std::vector<std::pair<CLI::App*, std::function<int()>>> commands_;
};

}  // namespace ledgerkeep
