// The names of client archives (backup/client_archive.h, "names").
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "backup/client_archive.h"

namespace ledgerkeep {

namespace {

constexpr char kArchiveSuffix[] = ".tar.gz";

bool HasSuffix(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Trimmed(const std::string& s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

}  // namespace

Result<std::string> NewClientArchiveFileName(const std::string& archive_name) {
  std::string name = archive_name;
  if (HasSuffix(name, kArchiveSuffix)) name.resize(name.size() - (sizeof(kArchiveSuffix) - 1));
  if (name.empty()) {
    return Status::InvalidArgument("no archive name: give one with --name (e.g. --name client1-2024-06-01)");
  }
  // The shown name is cut and cleaned: it may be hostile.
  std::string shown;
  for (size_t i = 0; i < archive_name.size() && i < 60; ++i) {
    const unsigned char c = static_cast<unsigned char>(archive_name[i]);
    shown += c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c);
  }
  if (archive_name.size() > 60) shown += "...";
  if (name.size() > kMaxArchiveNameBytes) {
    return Status::InvalidArgument("archive name '" + shown + "' is longer than " +
                                   std::to_string(kMaxArchiveNameBytes) + " characters");
  }
  const bool safe = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
  if (!safe) {
    return Status::InvalidArgument(
        "archive name '" + shown +
        "' may only hold the letters A-Z and a-z, digits, '.', '_' and '-' (no '/', "
        "spaces or other characters): pick such a name, e.g. client1-2024-06-01");
  }
  if (name.front() == '.' || name.front() == '-') {
    return Status::InvalidArgument("archive name '" + shown + "' starts with '" + name.front() +
                                   "': start it with a letter or digit");
  }
  return name + kArchiveSuffix;
}

Result<std::string> ClientArchiveFileName(const std::string& archive_name) {
  std::string name = Trimmed(archive_name);
  if (HasSuffix(name, kArchiveSuffix)) name.resize(name.size() - (sizeof(kArchiveSuffix) - 1));
  if (name.empty()) {
    return Status::InvalidArgument("no archive name: give one with --name (e.g. --name client1-2024-06-01)");
  }
  if (name.find('/') != std::string::npos) {
    return Status::InvalidArgument(
        "archive name '" + archive_name +
        "' contains '/': give a plain file name; the directory is the destination");
  }
  if (name.front() == '.') {
    return Status::InvalidArgument("archive name '" + archive_name +
                                   "' starts with '.': pick a visible name");
  }
  if (std::any_of(name.begin(), name.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return Status::InvalidArgument("archive name '" + archive_name + "' contains control characters");
  }
  if (name.size() > 200) return Status::InvalidArgument("archive name is longer than 200 bytes");
  return name + kArchiveSuffix;
}

}  // namespace ledgerkeep
