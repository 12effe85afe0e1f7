// ledgerkeep-db <db> COMMAND [ARGS]: the commands on a ledger DB and the
// dispatch (ledger/db_tool.h).
#include <charconv>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ledger/block.h"
#include "ledger/ledger_store.h"
#include "ledger/db_tool.h"
#include "ledger/db_tool_generate.h"

namespace {

using ledgerkeep::Result;
using ledgerkeep::Status;
using ledgerkeep::StatusCode;
using nlohmann::json;
namespace lg = ledgerkeep::ledger;

constexpr int kExitOk = lg::kDbToolExitOk;
constexpr int kExitFailed = lg::kDbToolExitFailed;
constexpr int kExitUsage = lg::kDbToolExitUsage;

struct Command {
  std::string args;
  std::string help;
  size_t min_args;
  size_t max_args;
  std::function<int(lg::LedgerStore&, const std::vector<std::string>&, json&)> run;
};

std::string Str(uint64_t v) { return std::to_string(v); }

Result<uint64_t> ParseId(const std::string& s, const char* what) {
  uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    return Status::InvalidArgument(std::string(what) + " must be a non-negative integer, got '" + s + "'");
  }
  return v;
}

bool Printable(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

int Fail(const Status& s) {
  std::cerr << "ledgerkeep-db: " << s.ToString() << "\n";
  return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
}

std::map<std::string, Command> Commands() {
  std::map<std::string, Command> c;
  c["getGenesisBlockID"] = {"", "first block in the chain", 0, 0, [](auto& db, auto&, json& out) {
                              out["genesisBlockID"] = Str(db.GetBlockIds().genesis);
                              return kExitOk;
                            }};
  c["getLastReachableBlockID"] = {"", "top of the contiguous chain from genesis", 0, 0,
                                  [](auto& db, auto&, json& out) {
                                    out["lastReachableBlockID"] = Str(db.GetBlockIds().last_reachable);
                                    return kExitOk;
                                  }};
  c["getLastStateTransferBlockID"] = {"", "top of st_chain (0 = no state transfer in progress)", 0, 0,
                                      [](auto& db, auto&, json& out) {
                                        out["lastStateTransferBlockID"] = Str(db.GetBlockIds().last_state_transfer);
                                        return kExitOk;
                                      }};
  c["getLastBlockID"] = {"", "highest block present (blocks or st_chain)", 0, 0, [](auto& db, auto&, json& out) {
                           out["lastBlockID"] = Str(db.GetBlockIds().last);
                           return kExitOk;
                         }};
  c["getBlockInfo"] = {"ID", "parent digest, digest, number of updates, size and keys of a block", 1, 1,
                       [](auto& db, auto& args, json& out) {
                         auto id = ParseId(args[0], "ID");
                         if (!id.ok()) return Fail(id.status());
                         auto raw = db.GetRawBlock(*id);
                         if (!raw.ok()) return Fail(raw.status());
                         auto block = lg::ParseBlock(*raw);
                         if (!block.ok()) return Fail(block.status().WithContext("block " + args[0]));
                         out["blockID"] = Str(*id);
                         out["parentDigest"] = lg::DigestToHex(block->parent_digest);
                         out["digest"] = lg::DigestToHex(lg::ComputeBlockDigest(*id, *raw));
                         out["numUpdates"] = Str(block->updates.size());
                         out["size"] = Str(raw->size());
                         json keys = json::array();
                         for (const auto& kv : block->updates) keys.push_back(kv.key);
                         out["keys"] = keys;
                         return kExitOk;
                       }};
  c["getRawBlock"] = {"ID", "the serialized block, hex encoded", 1, 1, [](auto& db, auto& args, json& out) {
                        auto id = ParseId(args[0], "ID");
                        if (!id.ok()) return Fail(id.status());
                        auto raw = db.GetRawBlock(*id);
                        if (!raw.ok()) return Fail(raw.status());
                        out["blockID"] = Str(*id);
                        out["encoding"] = "hex";
                        out["rawBlock"] = lg::BytesToHex(*raw);
                        return kExitOk;
                      }};
  c["getValue"] = {"KEY [AT_BLOCK]", "value of KEY as of AT_BLOCK (default: last reachable)", 1, 2,
                   [](auto& db, auto& args, json& out) {
                     uint64_t at = 0;
                     if (args.size() == 2) {
                       auto parsed = ParseId(args[1], "AT_BLOCK");
                       if (!parsed.ok()) return Fail(parsed.status());
                       at = *parsed;
                     }
                     auto v = db.GetValue(args[0], at);
                     if (!v.ok()) return Fail(v.status());
                     out["key"] = v->key;
                     out["blockVersion"] = Str(v->block_id);
                     out["atBlockID"] = Str(at == 0 ? db.GetBlockIds().last_reachable : at);
                     out["size"] = Str(v->value.size());
                     if (Printable(v->value)) out["value"] = v->value;
                     out["valueHex"] = lg::BytesToHex(v->value);
                     return kExitOk;
                   }};
  c["verifyChain"] = {"[FROM TO]", "recompute digests and parent links; exit 1 naming the first bad block", 0, 2,
                      [](auto& db, auto& args, json& out) {
                        if (args.size() == 1) return Fail(Status::InvalidArgument("verifyChain takes FROM and TO, or neither"));
                        uint64_t from = 0, to = 0;
                        if (args.size() == 2) {
                          auto f = ParseId(args[0], "FROM");
                          auto t = ParseId(args[1], "TO");
                          if (!f.ok()) return Fail(f.status());
                          if (!t.ok()) return Fail(t.status());
                          from = *f;
                          to = *t;
                        }
                        auto report = db.VerifyChain(from, to);
                        if (!report.ok()) return Fail(report.status());
                        out["from"] = Str(report->from);
                        out["to"] = Str(report->to);
                        out["blocksVerified"] = Str(report->blocks_verified);
                        if (report->ok()) {
                          out["result"] = "ok";
                          return kExitOk;
                        }
                        out["result"] = "failed";
                        out["firstBadBlock"] = Str(*report->first_bad_block);
                        out["error"] = report->error;
                        std::cerr << "ledgerkeep-db: chain verification failed: " << report->error << "\n";
                        return kExitFailed;
                      }};
  c["compareTo"] = {"OTHER_DB", "first mismatching block over the range both chains hold (exit 1 if any)", 1, 1,
                    [](auto& db, auto& args, json& out) {
                      auto other = lg::LedgerStore::OpenReadOnly(args[0]);
                      if (!other.ok()) return Fail(other.status());
                      auto report = db.CompareTo(**other);
                      if (!report.ok()) return Fail(report.status());
                      out["otherDB"] = args[0];
                      out["commonFrom"] = Str(report->from);
                      out["commonTo"] = Str(report->to);
                      if (report->first_mismatch) {
                        out["result"] = "mismatch";
                        out["firstMismatch"] = Str(*report->first_mismatch);
                        return kExitFailed;
                      }
                      out["result"] = "match";
                      out["firstMismatch"] = nullptr;
                      return kExitOk;
                    }};
  c["listColumnFamilies"] = {"", "column families of the DB", 0, 0, [](auto& db, auto&, json& out) {
                               out["columnFamilies"] = db.ColumnFamilyNames();
                               return kExitOk;
                             }};
  c["rangeStats"] = {"FROM TO", "blocks, bytes, updates, distinct keys, min/max/avg block size in [FROM, TO]",
                     2, 2, [](auto& db, auto& args, json& out) {
                       auto f = ParseId(args[0], "FROM");
                       auto t = ParseId(args[1], "TO");
                       if (!f.ok()) return Fail(f.status());
                       if (!t.ok()) return Fail(t.status());
                       auto stats = db.GetRangeStats(*f, *t);
                       if (!stats.ok()) return Fail(stats.status());
                       out["from"] = Str(stats->from);
                       out["to"] = Str(stats->to);
                       out["blocks"] = Str(stats->blocks);
                       out["bytes"] = Str(stats->bytes);
                       out["updates"] = Str(stats->updates);
                       out["distinctKeys"] = Str(stats->distinct_keys);
                       out["minBlockBytes"] = Str(stats->min_block_bytes);
                       out["maxBlockBytes"] = Str(stats->max_block_bytes);
                       out["avgBlockBytes"] = Str(stats->blocks == 0 ? 0 : stats->bytes / stats->blocks);
                       return kExitOk;
                     }};
  return c;
}

void Usage(std::ostream& os, const std::map<std::string, Command>& commands,
           const std::vector<lg::DbToolDirCommand>& dir_commands) {
  os << "Usage: ledgerkeep-db <db> COMMAND [ARGS]\n\n"
        "Offline tool for a ledgerkeep ledger DB (stopped, copied or restored). Opens the\n"
        "DB read-only and never modifies it (generate only creates a new one). Prints one\n"
        "JSON object; block ids are strings.\n"
        "Exit codes: 0 ok; 1 negative answer or error (verification failed, mismatch,\n"
        "not found); 2 usage error, missing directory, or not a ledgerkeep ledger.\n\nCommands:\n";
  for (const auto& dc : dir_commands) os << dc.usage;
  for (const auto& [name, cmd] : commands) {
    std::string head = "  " + name + (cmd.args.empty() ? "" : " " + cmd.args);
    if (head.size() < 36) head.resize(36, ' ');
    os << head << " " << cmd.help << "\n";
  }
}

}  // namespace

namespace ledgerkeep::ledger {

int RunDbTool(const std::vector<std::string>& args, const std::vector<DbToolDirCommand>& extra_dir_commands) {
  const auto commands = Commands();
  std::vector<DbToolDirCommand> dir_commands = extra_dir_commands;
  dir_commands.push_back(GenerateCommand());
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      Usage(std::cout, commands, dir_commands);
      return kExitOk;
    }
  }
  if (args.size() < 2) {
    Usage(std::cerr, commands, dir_commands);
    return kExitUsage;
  }
  const std::string db_path = args[0];
  for (const auto& dc : dir_commands) {
    if (args[1] == dc.name) return dc.run(db_path, std::vector<std::string>(args.begin() + 2, args.end()));
  }
  const auto it = commands.find(args[1]);
  if (it == commands.end()) {
    std::cerr << "ledgerkeep-db: unknown command '" << args[1] << "'\n";
    Usage(std::cerr, commands, dir_commands);
    return kExitUsage;
  }
  const std::vector<std::string> rest(args.begin() + 2, args.end());
  if (rest.size() < it->second.min_args || rest.size() > it->second.max_args) {
    std::cerr << "ledgerkeep-db: usage: ledgerkeep-db <db> " << it->first << " " << it->second.args << "\n";
    return kExitUsage;
  }
  auto store = lg::LedgerStore::OpenReadOnly(db_path);
  if (!store.ok()) {
    std::cerr << "ledgerkeep-db: " << store.status().message() << "\n";
    const auto code = store.status().code();
    return code == StatusCode::kNotFound || code == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  json out = json::object();
  const int rc = it->second.run(**store, rest, out);
  if (rc == kExitOk || !out.empty()) std::cout << out.dump() << "\n";
  return rc;
}

}  // namespace ledgerkeep::ledger
