#include "cli/command_group.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/cli_app.h"
#include "common/config.h"
#include "common/curve_keys.h"

namespace ledgerkeep {

void AddTargetFlags(CLI::App* sub, TargetFlags& t) {
  auto* node = sub->add_option("--node", t.node, "only this node");
  auto* role = sub->add_option("--role", t.role, "every node of this role (replica|client); no clones")
                   ->check(CLI::IsMember({"replica", "client"}));
  auto* all = sub->add_flag("--all", t.all, "every node (the default); clones only by --node");
  node->excludes(role)->excludes(all);
  role->excludes(all);
}

wire::TargetT ToTarget(const TargetFlags& f) {
  wire::TargetT t;
  t.node_id = f.node;
  if (!f.role.empty()) t.role = *ParseRole(f.role);
  t.all = f.node.empty() && f.role.empty();
  return t;
}

wire::TargetT ReplicasByDefault(const TargetFlags& f) {
  wire::TargetT t = ToTarget(f);
  if (t.all) {
    t.all = false;
    t.role = wire::Role::Replica;
  }
  return t;
}

int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kUnavailable:
    case StatusCode::kPermissionDenied:
      return kExitUnreachable;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
      return kExitUsage;
    default:
      return kExitFailed;
  }
}

int Fail(const Status& s) {
  std::fprintf(stderr, "ledgerkeep: %s\n", s.message().c_str());
  return ExitCodeFor(s);
}

int ExitWith(const Status& s) { return s.ok() ? kExitOk : Fail(s); }

Result<ClientOptions> LoadClientOptions(const GlobalFlags& g) {
  ClientOptions o;
  auto config = LoadClusterConfig(g.config);
  if (!config.ok()) return config.status();
  o.config = *config;
  std::string key_file = g.key.empty() ? o.config.operator_key_file : g.key;
  if (key_file.empty()) {
    return Status::InvalidArgument("no operator key: pass --key FILE or set [operator] key_file in " +
                                   o.config.path);
  }
  auto key = LoadKeyFile(key_file, /*need_secret=*/true);
  if (!key.ok()) return key.status();
  o.key = *key;
  o.timeout_ms = g.timeout_ms;
  return o;
}

Result<std::unique_ptr<BrokerClient>> ConnectBroker(const GlobalFlags& g) {
  LK_ASSIGN_OR_RETURN(auto opts, LoadClientOptions(g));
  return BrokerClient::Connect(std::move(opts));
}

Result<wire::CommandStatusT> RunCommand(const GlobalFlags& g, const wire::TargetT& target,
                                        wire::CommandBodyUnion body, int64_t wait_s) {
  LK_ASSIGN_OR_RETURN(auto client, ConnectBroker(g));
  LK_ASSIGN_OR_RETURN(auto issued,
                      client->Issue(target, std::move(body), static_cast<uint32_t>(wait_s * 1000)));
  return client->Wait(issued.cmd_id, wait_s * 1000 + 5000, nullptr);
}

Result<wire::CommandStatusT> RunOnNode(const GlobalFlags& g, const std::string& node,
                                       wire::CommandBodyUnion body, int64_t wait_s) {
  TargetFlags tf;
  tf.node = node;
  LK_ASSIGN_OR_RETURN(auto st, RunCommand(g, ToTarget(tf), std::move(body), wait_s));
  if (st.targets.size() != 1) {
    return Status::Internal("the broker reported " + std::to_string(st.targets.size()) +
                            " targets for node " + node);
  }
  return st;
}

bool TargetOk(const wire::TargetStatusT& t) { return t.result && t.result->status == wire::ResultStatus::Ok; }

std::string TargetResult(const wire::TargetStatusT& t) {
  if (!t.result) return "pending";
  return wire::EnumNameResultStatus(t.result->status);
}

std::string TargetMessage(const wire::TargetStatusT& t) { return t.result ? t.result->message : ""; }

Status TargetFailure(const std::string& node, const wire::TargetStatusT& t) {
  return Status(StatusCode::kAborted, node + ": " + TargetResult(t) + ": " + TargetMessage(t));
}

void CommandTable::Add(CLI::App* command, std::function<int()> run) {
  commands_.emplace_back(command, std::move(run));
}

const std::function<int()>* CommandTable::Parsed() const {
  for (const auto& [command, run] : commands_) {
    if (command->parsed()) return &run;
  }
  return nullptr;
}

}  // namespace ledgerkeep
