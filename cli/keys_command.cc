#include "cli/keys_command.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/cli_app.h"
#include "cli/output.h"
#include "common/config.h"
#include "common/curve_keys.h"
#include "common/file_util.h"

namespace ledgerkeep {
namespace {

int Fail(const Status& s, int code) {
  std::fprintf(stderr, "ledgerkeep: %s\n", s.message().c_str());
  return code;
}

// Usage errors (exit 2): bad flags, config, names or keys.
int Usage(const Status& s) { return Fail(s, kExitUsage); }

std::string Trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

// The public key in `path`: the bare Z85 text `keygen --bare` prints, or a
// key file (NAME.pub / NAME.key) as `keygen` writes.
Result<std::string> ReadPublicKey(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return Status::InvalidArgument("cannot read --pub " + path + ": " + text.status().message());
  const std::string bare = Trim(*text);
  // A key file is TOML (`public_key = "..."`: spaces and quotes); Z85 has
  // neither, but it does have '=', '#' and the other TOML punctuation.
  if (bare.find_first_of(" \t\r\n\"'") == std::string::npos) {
    LK_RETURN_IF_ERROR(ValidateZ85Key(bare, "the public key in --pub " + path));
    return bare;
  }
  auto pair = LoadKeyFile(path, /*need_secret=*/false);
  if (!pair.ok()) {
    return Status::InvalidArgument("--pub " + path +
                                   " holds neither a bare Z85 public key (`ledgerkeep keygen --bare`) nor a key "
                                   "file: " + pair.status().message());
  }
  return pair->public_z85;
}

// Refused (exit 3) unless `key_file` (or the config's operator key) is an
// operator's key in the allowlist.
Status CheckOperator(const ClusterConfig& config, const std::string& key_flag, const std::string& what) {
  const std::string key_file = key_flag.empty() ? config.operator_key_file : key_flag;
  if (key_file.empty()) {
    return Status::InvalidArgument("no operator key: pass --key FILE or set [operator] key_file in " + config.path);
  }
  LK_ASSIGN_OR_RETURN(CurveKeyPair key, LoadKeyFile(key_file, /*need_secret=*/true));
  const AllowEntry* e = config.FindKey(key.public_z85);
  if (e == nullptr) {
    return Status::PermissionDenied("keys " + what + " needs an operator key; the key in " + key_file +
                                    " is not in the allowlist");
  }
  if (e->role != wire::Role::Operator) {
    return Status::PermissionDenied("keys " + what + " needs an operator key; the key in " + key_file +
                                    " belongs to '" + e->node_id + "' (" + RoleName(e->role) + ")");
  }
  return Status::OK();
}

int ExitFor(const Status& s) {
  if (s.code() == StatusCode::kPermissionDenied) return Fail(s, kExitUnreachable);
  if (s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kNotFound) return Usage(s);
  return Fail(s, kExitFailed);
}

// Holds an exclusive flock on `<keys file>.lock` while it lives.
class KeysFileLock {
 public:
  static Result<KeysFileLock> Take(const std::string& keys_path) {
    const std::string path = keys_path + ".lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Status::FromErrno(errno, "open " + path);
    if (::flock(fd, LOCK_EX) != 0) {
      Status s = Status::FromErrno(errno, "lock " + path);
      ::close(fd);
      return s;
    }
    return KeysFileLock(fd);
  }
  KeysFileLock(KeysFileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  KeysFileLock(const KeysFileLock&) = delete;
  KeysFileLock& operator=(const KeysFileLock&) = delete;
  KeysFileLock& operator=(KeysFileLock&&) = delete;
  ~KeysFileLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit KeysFileLock(int fd) : fd_(fd) {}
  int fd_;
};

// Writes the keys file with `entries` and loads the config back to check.
Status WriteKeysFile(const ClusterConfig& config, const std::vector<AllowEntry>& entries) {
  const std::string path = KeysFilePath(config.path);
  LK_RETURN_IF_ERROR(WriteFileAtomically(path, FormatKeysFile(entries), 0644));
  auto back = LoadClusterConfig(config.path);
  if (!back.ok()) return back.status().WithContext("the config does not load back after writing " + path);
  return Status::OK();
}

std::vector<AllowEntry> KeysFileEntries(const ClusterConfig& config) {
  std::vector<AllowEntry> out;
  for (const auto& e : config.allow)
    if (e.in_keys_file) out.push_back(e);
  return out;
}

class KeysCommandImpl final : public KeysCommand {
 public:
  explicit KeysCommandImpl(CLI::App& app) {
    keys_ = app.add_subcommand("keys", "the broker's key allowlist: add, remove and list keys without a restart");
    keys_->require_subcommand(1);
    add_ = keys_->add_subcommand(
        "add", "allow a key: NAME (a node id) with --role, its public key from --pub FILE; live within a second");
    add_->add_option("name", name_, "node id the key is bound to (letters, digits, '-', '_')")->required();
    add_->add_option("--role", role_, "what the key may do")
        ->required()
        ->check(CLI::IsMember({"replica", "client", "operator", "subscriber"}));
    add_->add_option("--pub", pub_file_,
                     "file with the public key: the bare Z85 key (`ledgerkeep keygen --bare NAME`) or NAME.pub")
        ->required();
    remove_ = keys_->add_subcommand(
        "remove", "refuse a key added with `keys add` from now on, its open connections included");
    remove_->add_option("name", name_, "node id of the key")->required();
    list_ = keys_->add_subcommand("list", "every key of the allowlist: node id, role, public key, which file");
    for (CLI::App* sub : {keys_, add_, remove_, list_}) sub->fallthrough();
  }

  bool parsed() const override { return keys_->parsed(); }

  int Run(const KeysCommandContext& ctx) const override {
    auto config = LoadClusterConfig(ctx.config);
    if (!config.ok()) return ExitFor(config.status());
    if (list_->parsed()) return List(*config, ctx);
    const std::string what = add_->parsed() ? "add" : "remove";
    if (Status s = CheckOperator(*config, ctx.key, what); !s.ok()) return ExitFor(s);
    std::string pub;
    if (add_->parsed()) {  // bad input is refused before anything is touched
      if (Status s = ValidateNodeId(name_); !s.ok()) return Usage(s.WithContext("keys add"));
      auto read = ReadPublicKey(pub_file_);
      if (!read.ok()) return Usage(read.status());
      pub = *read;
      if (Status s = CheckAddable(*config, pub); !s.ok()) return Usage(s);
    } else if (Status s = CheckRemovable(*config); !s.ok()) {
      return Usage(s);
    }
    auto lock = KeysFileLock::Take(KeysFilePath(config->path));
    if (!lock.ok()) return ExitFor(lock.status());
    // Again under the lock: another run may have just written the file.
    config = LoadClusterConfig(ctx.config);
    if (!config.ok()) return ExitFor(config.status());
    return add_->parsed() ? Add(*config, ctx, pub) : Remove(*config, ctx);
  }

 private:
  int List(const ClusterConfig& config, const KeysCommandContext& ctx) const {
    const std::string keys_file = KeysFilePath(config.path);
    if (ctx.json) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& e : config.allow) {
        arr.push_back({{"node", e.node_id},
                       {"role", RoleName(e.role)},
                       {"public_key", e.public_z85},
                       {"file", e.in_keys_file ? keys_file : config.path}});
      }
      std::printf("%s\n", arr.dump().c_str());
      return kExitOk;
    }
    Table t({"NODE", "ROLE", "PUBLIC KEY", "FROM"});
    for (const auto& e : config.allow) {
      t.Add({e.node_id, RoleName(e.role), e.public_z85, e.in_keys_file ? "keys file" : "cluster config"});
    }
    t.Print(stdout);
    return kExitOk;
  }

  int Add(const ClusterConfig& config, const KeysCommandContext& ctx, const std::string& pub) const {
    const std::string keys_file = KeysFilePath(config.path);
    if (Status s = CheckAddable(config, pub); !s.ok()) return Usage(s);
    std::vector<AllowEntry> entries = KeysFileEntries(config);
    AllowEntry added;
    added.node_id = name_;
    added.role = *ParseRole(role_);
    added.public_z85 = pub;
    added.in_keys_file = true;
    entries.push_back(added);
    if (Status s = WriteKeysFile(config, entries); !s.ok()) return ExitFor(s);
    if (ctx.json) {
      std::printf("%s\n", nlohmann::json({{"added", name_}, {"role", role_}, {"file", keys_file}}).dump().c_str());
    } else {
      std::printf("added %s (%s) to %s; the broker allows it within a second\n", name_.c_str(), role_.c_str(),
                  keys_file.c_str());
    }
    return kExitOk;
  }

  // A name and key the allowlist does not have yet.
  Status CheckAddable(const ClusterConfig& config, const std::string& pub) const {
    if (const AllowEntry* e = config.FindNode(name_)) {
      return Status::InvalidArgument("'" + name_ + "' is already in the allowlist (" + RoleName(e->role) +
                                     ", in " + (e->in_keys_file ? KeysFilePath(config.path) : config.path) +
                                     "); remove it first to bind the name to another key");
    }
    if (const AllowEntry* e = config.FindKey(pub)) {
      return Status::InvalidArgument("the key in " + pub_file_ + " is already bound to '" + e->node_id +
                                     "'; every node needs its own key");
    }
    return Status::OK();
  }

  // Only a name the keys file lists can be removed with `keys remove`.
  Status CheckRemovable(const ClusterConfig& config) const {
    const AllowEntry* e = config.FindNode(name_);
    if (e == nullptr) {
      return Status::NotFound("no key '" + name_ + "' in the allowlist (see `ledgerkeep keys list`)");
    }
    if (!e->in_keys_file) {
      return Status::InvalidArgument("'" + name_ + "' is in the cluster config's [[allow]] (" + config.path +
                                     "), not added with `keys add`: remove it there (the broker picks that up "
                                     "live too)");
    }
    return Status::OK();
  }

  int Remove(const ClusterConfig& config, const KeysCommandContext& ctx) const {
    if (Status s = CheckRemovable(config); !s.ok()) return Usage(s);
    std::vector<AllowEntry> entries;
    for (const auto& k : KeysFileEntries(config))
      if (k.node_id != name_) entries.push_back(k);
    if (Status s = WriteKeysFile(config, entries); !s.ok()) return ExitFor(s);
    const std::string keys_file = KeysFilePath(config.path);
    if (ctx.json) {
      std::printf("%s\n", nlohmann::json({{"removed", name_}, {"file", keys_file}}).dump().c_str());
    } else {
      std::printf("removed %s from %s; the broker refuses it within a second, open connections included\n",
                  name_.c_str(), keys_file.c_str());
    }
    return kExitOk;
  }

  CLI::App* keys_ = nullptr;
  CLI::App* add_ = nullptr;
  CLI::App* remove_ = nullptr;
  CLI::App* list_ = nullptr;
  std::string name_;
  std::string role_;
  std::string pub_file_;
};

}  // namespace

std::unique_ptr<KeysCommand> RegisterKeysCommands(CLI::App& app) { return std::make_unique<KeysCommandImpl>(app); }

void RegisterKeysCommand(CLI::App& app, const GlobalFlags& g, CommandTable& commands) {
  std::shared_ptr<KeysCommand> keys = RegisterKeysCommands(app);
  commands.Add(app.get_subcommand("keys"), [keys, &g] { return keys->Run({g.config, g.key, g.json}); });
}

}  // namespace ledgerkeep
