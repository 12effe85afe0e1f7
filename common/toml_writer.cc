#include "common/toml_writer.h"

#include <toml++/toml.h>

#include <cstdlib>
#include <sstream>

namespace ledgerkeep {
namespace {

void RequireBareKey(std::string_view name) {
  bool ok = !name.empty();
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
  }
  if (!ok) std::abort();  // a table or key name is the caller's constant
}

// toml++'s text of one value: a one-key table formatted with basic strings
// only (no literal or multi-line strings, whose rules are easier to misread),
// "key = value" with the key cut off; long arrays one element a line.
template <typename V>
std::string Formatted(V&& value) {
  toml::table one;
  one.insert("k", std::forward<V>(value));
  std::ostringstream out;
  out << toml::toml_formatter{one, toml::format_flags::indent_array_elements};
  std::string text = out.str();
  const std::string prefix = "k = ";
  return text.compare(0, prefix.size(), prefix) == 0 ? text.substr(prefix.size()) : text;
}

}  // namespace

void TomlWriter::Comment(std::string_view text) {
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = text.find('\n', start);
    const std::string_view line = text.substr(start, end == std::string_view::npos ? end : end - start);
    text_ += line.empty() ? "#\n" : "# " + std::string(line) + "\n";
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
}

void TomlWriter::Table(std::string_view name) {
  RequireBareKey(name);
  if (!text_.empty()) text_ += "\n";
  text_ += "[" + std::string(name) + "]\n";
}

void TomlWriter::TableArrayEntry(std::string_view name) {
  RequireBareKey(name);
  if (!text_.empty()) text_ += "\n";
  text_ += "[[" + std::string(name) + "]]\n";
}

void TomlWriter::Line(std::string_view key, std::string formatted_value) {
  RequireBareKey(key);
  text_ += std::string(key) + " = " + formatted_value + "\n";
}

void TomlWriter::String(std::string_view key, std::string_view value) { Line(key, Formatted(std::string(value))); }

void TomlWriter::Int(std::string_view key, int64_t value) { Line(key, Formatted(value)); }

void TomlWriter::Bool(std::string_view key, bool value) { Line(key, Formatted(value)); }

void TomlWriter::StringArray(std::string_view key, const std::vector<std::string>& values) {
  toml::array arr;
  for (const auto& v : values) arr.push_back(v);
  Line(key, Formatted(std::move(arr)));
}

Status TomlWriter::AppendDocument(std::string_view toml_text, std::string_view what) {
  toml::table doc;
  try {
    doc = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(std::string(what) + " is not valid TOML: " + std::string(e.description()) +
                                   " (line " + std::to_string(e.source().begin.line) + ")");
  }
  for (const auto& [key, node] : doc) {
    const auto* arr = node.as_array();
    if (node.is_table() || (arr != nullptr && arr->is_array_of_tables() && !arr->empty())) continue;
    return Status::InvalidArgument(std::string(what) + ": '" + std::string(key.str()) +
                                   "' must be a [table] or [[array of tables]], not a top-level value");
  }
  if (doc.empty()) return Status::OK();
  std::ostringstream out;
  out << toml::toml_formatter{doc, toml::format_flags::indent_array_elements};
  if (!text_.empty()) text_ += "\n";
  text_ += out.str();
  if (text_.back() != '\n') text_ += "\n";
  return Status::OK();
}

}  // namespace ledgerkeep
