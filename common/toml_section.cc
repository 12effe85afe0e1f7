#include "common/toml_section.h"

#include <algorithm>
#include <sstream>

namespace ledgerkeep {
namespace {

// "a string \"7002\"", "an integer 10", ...: what the file holds, so the
// message shows the value as written.
std::string Describe(const toml::node& node) {
  std::ostringstream out;
  switch (node.type()) {
    case toml::node_type::string: {
      std::string s = node.as_string()->get();
      if (s.size() > 40) s = s.substr(0, 40) + "...";
      out << "a string \"" << s << "\"";
      break;
    }
    case toml::node_type::integer:
      out << "an integer " << node.as_integer()->get();
      break;
    case toml::node_type::floating_point:
      out << "a floating-point number " << node.as_floating_point()->get();
      break;
    case toml::node_type::boolean:
      out << "a boolean " << (node.as_boolean()->get() ? "true" : "false");
      break;
    case toml::node_type::table:
      out << "a table";
      break;
    case toml::node_type::array:
      out << "an array";
      break;
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      out << "a date/time";
      break;
    case toml::node_type::none:
      out << "nothing";
      break;
  }
  return out.str();
}

}  // namespace

TomlSection::TomlSection(const toml::table* table, std::string file, std::string prefix)
    : table_(table), file_(std::move(file)), prefix_(std::move(prefix)) {}

const toml::node* TomlSection::Get(std::string_view key) {
  known_.emplace_back(key);
  return table_ == nullptr ? nullptr : table_->get(key);
}

Status TomlSection::Error(std::string_view key, const std::string& what) const {
  return Status::InvalidArgument(file_ + ": " + prefix_ + std::string(key) + " " + what);
}

Status TomlSection::WrongType(std::string_view key, const toml::node& node,
                              const std::string& expected) const {
  return Error(key, "must be " + expected + ", got " + Describe(node));
}

Status TomlSection::String(std::string_view key, std::string* out, bool allow_empty) {
  const toml::node* n = Get(key);
  if (n == nullptr) return Status::OK();
  const auto* s = n->as_string();
  if (s == nullptr) return WrongType(key, *n, allow_empty ? "a string" : "a non-empty string");
  if (!allow_empty && s->get().empty()) return Error(key, "must be a non-empty string");
  *out = s->get();
  return Status::OK();
}

Status TomlSection::Int(std::string_view key, int64_t min, int64_t max, int64_t* out, std::string_view hint) {
  const toml::node* n = Get(key);
  if (n == nullptr) return Status::OK();
  std::string expected = "a whole number from " + std::to_string(min) + " to " + std::to_string(max);
  if (!hint.empty()) expected += " (" + std::string(hint) + ")";
  const auto* i = n->as_integer();
  if (i == nullptr) return WrongType(key, *n, expected);
  if (i->get() < min || i->get() > max) return WrongType(key, *n, expected);
  *out = i->get();
  return Status::OK();
}

Status TomlSection::Int(std::string_view key, int64_t min, int64_t max, int* out, std::string_view hint) {
  int64_t v = *out;
  LK_RETURN_IF_ERROR(
      Int(key, std::max<int64_t>(min, INT32_MIN), std::min<int64_t>(max, INT32_MAX), &v, hint));
  *out = static_cast<int>(v);
  return Status::OK();
}

Status TomlSection::Bool(std::string_view key, bool* out, std::string_view hint) {
  const toml::node* n = Get(key);
  if (n == nullptr) return Status::OK();
  const auto* b = n->as_boolean();  // value<bool>() would take 0 and 1 too
  if (b == nullptr) {
    return WrongType(key, *n,
                     "true or false" + (hint.empty() ? std::string() : " (" + std::string(hint) + ")"));
  }
  *out = b->get();
  return Status::OK();
}

Status TomlSection::StringArray(std::string_view key, std::vector<std::string>* out) {
  const toml::node* n = Get(key);
  if (n == nullptr) return Status::OK();
  const auto* arr = n->as_array();
  if (arr == nullptr) return WrongType(key, *n, "an array of strings");
  std::vector<std::string> values;
  for (size_t i = 0; i < arr->size(); ++i) {
    const auto* s = (*arr)[i].as_string();
    if (s == nullptr) {
      return Error(key, "must be an array of strings, but element " + std::to_string(i + 1) + " is " +
                            Describe((*arr)[i]));
    }
    values.push_back(s->get());
  }
  *out = std::move(values);
  return Status::OK();
}

Result<TomlSection> TomlSection::Table(std::string_view key) {
  const toml::node* n = Get(key);
  const std::string prefix = prefix_ + std::string(key) + ".";
  if (n == nullptr) return TomlSection(nullptr, file_, prefix);
  const auto* t = n->as_table();
  if (t == nullptr) return WrongType(key, *n, "a table ([" + std::string(key) + "])");
  return TomlSection(t, file_, prefix);
}

Result<std::vector<TomlSection>> TomlSection::TableArray(std::string_view key) {
  const toml::node* n = Get(key);
  std::vector<TomlSection> out;
  if (n == nullptr) return out;
  const std::string expected = "an array of tables ([[" + std::string(key) + "]])";
  const auto* arr = n->as_array();
  if (arr == nullptr) return WrongType(key, *n, expected);
  for (size_t i = 0; i < arr->size(); ++i) {
    const std::string entry = "[[" + std::string(key) + "]] entry " + std::to_string(i + 1);
    const auto* t = (*arr)[i].as_table();
    if (t == nullptr) return Status::InvalidArgument(file_ + ": " + entry + " is not a table");
    out.emplace_back(t, file_, entry + ": ");
  }
  return out;
}

Status TomlSection::CheckNoUnknownKeys() const {
  if (table_ == nullptr) return Status::OK();
  for (const auto& [key, node] : *table_) {
    if (std::find(known_.begin(), known_.end(), key.str()) != known_.end()) continue;
    std::string takes;
    for (const auto& k : known_) takes += (takes.empty() ? "" : ", ") + k;
    std::string where = prefix_;
    while (!where.empty() && (where.back() == ' ' || where.back() == '.' || where.back() == ':'))
      where.pop_back();
    if (where.empty()) where = "the top level";
    (void)node;
    return Error(key.str(), "is not a known key (" + where + " takes " + takes +
                                "); a misspelt key would silently keep its default, so it is refused");
  }
  return Status::OK();
}

}  // namespace ledgerkeep
