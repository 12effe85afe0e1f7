#include "cli/keygen_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/cli_app.h"
#include "cli/output.h"
#include "common/curve_keys.h"

namespace ledgerkeep {
namespace {

struct KeygenFlags {
  std::string out_dir = ".";
  std::vector<std::string> names;
  bool force = false;
  bool bare = false;
};

int RunKeygen(const GlobalFlags& g, const KeygenFlags& f) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& name : f.names) {
    auto pair = GenerateCurveKeyPair(name);
    if (!pair.ok()) return Fail(pair.status());
    Status s = WriteKeyFiles(f.out_dir, *pair, f.force);
    if (!s.ok()) return Fail(s);
    j[name] = pair->public_z85;
    if (f.bare && !g.json) {
      std::printf("%s\n", pair->public_z85.c_str());
    } else if (!g.json) {
      std::printf("%s: public %s\n  secret in %s/%s.key (mode 0600), public in %s/%s.pub\n", name.c_str(),
                  pair->public_z85.c_str(), f.out_dir.c_str(), name.c_str(), f.out_dir.c_str(), name.c_str());
    }
  }
  if (g.json) PrintJson(j);
  return kExitOk;
}

}  // namespace

void RegisterKeygenCommand(CLI::App& app, const GlobalFlags& g, CommandTable& commands) {
  auto f = std::make_shared<KeygenFlags>();
  auto* keygen = app.add_subcommand("keygen", "write CURVE key pairs: NAME.key (secret, 0600) and NAME.pub");
  keygen->add_option("--out", f->out_dir, "directory for the key files")->capture_default_str();
  keygen->add_option("names", f->names, "key names (node ids, 'broker', 'operator', ...)")->required();
  keygen->add_flag("--force", f->force, "replace existing key files");
  keygen->add_flag("--bare", f->bare, "print only each public key (Z85), one a line: what `keys add --pub` takes");
  commands.Add(keygen, [&g, f] { return RunKeygen(g, *f); });
}

}  // namespace ledgerkeep
