// TomlSection: checked reads of one table of a TOML config file (the cluster
// config, a node config), so that a config error is never a silent default.
//
// Every read names the key it wants and the type (and range) it takes:
//  - a key that is absent leaves the caller's default untouched;
//  - a key present with another type, or out of range, is InvalidArgument
//    naming the file, the key's path and what it must be
//    ("cluster config /etc/lk/cluster.toml: broker.ctl_port must be a whole
//    number from 1 to 65535 (a TCP port), got a string \"7002\"");
//  - CheckNoUnknownKeys() then refuses every key of the table that no read
//    asked for (a misspelt key would otherwise keep its default unnoticed),
//    listing the keys the table takes.
// Only for config loaders (it exposes toml++ types). Not thread-safe; a
// section borrows its table from the caller's parsed document.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ledgerkeep {

class TomlSection {
 public:
  // `file` names the document ("cluster config /path"); `prefix` is put in
  // front of every key in messages ("" for the root, "broker." for a table,
  // "[[allow]] entry 2: " for an entry of an array of tables). `table` may
  // be null: an absent section, whose reads all find nothing.
  TomlSection(const toml::table* table, std::string file, std::string prefix);

  // A string. `allow_empty` = false refuses "".
  Status String(std::string_view key, std::string* out, bool allow_empty = true);
  // An integer in [min, max]; `hint` (optional) says what it is for.
  Status Int(std::string_view key, int64_t min, int64_t max, int64_t* out, std::string_view hint = "");
  Status Int(std::string_view key, int64_t min, int64_t max, int* out, std::string_view hint = "");
  // true or false (not 0 or 1).
  Status Bool(std::string_view key, bool* out, std::string_view hint = "");
  // An array whose every element is a string.
  Status StringArray(std::string_view key, std::vector<std::string>* out);
  // A sub-table (`prefix` + key + "."); absent gives an empty section.
  Result<TomlSection> Table(std::string_view key);
  // An array of tables ([[key]]); absent gives none. Entries are named
  // "[[key]] entry N: " (1-based) in messages.
  Result<std::vector<TomlSection>> TableArray(std::string_view key);

  // InvalidArgument naming the first key of this table that no read above
  // asked for.
  Status CheckNoUnknownKeys() const;

  // InvalidArgument "<file>: <prefix><key> <what>", for the caller's own
  // checks of a value it read.
  Status Error(std::string_view key, const std::string& what) const;
  const std::string& prefix() const { return prefix_; }

 private:
  const toml::node* Get(std::string_view key);
  Status WrongType(std::string_view key, const toml::node& node, const std::string& expected) const;

  const toml::table* table_;
  std::string file_;
  std::string prefix_;
  std::vector<std::string> known_;  // every key asked for, in order
};

}  // namespace ledgerkeep
