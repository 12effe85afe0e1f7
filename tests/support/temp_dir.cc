#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace ledgerkeep::test {

TempDir::TempDir(std::string_view prefix) {
  std::string tmpl = "/tmp/" + std::string(prefix) + "XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp(" << tmpl << "): " << std::strerror(errno);
    return;
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  const char* keep = std::getenv("LEDGERKEEP_KEEP_TEST_DIRS");
  if (keep != nullptr && *keep != '\0' && std::string(keep) != "0") {
    std::fprintf(stderr, "[harness] keeping test directory %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  // A test may have made parts read-only; removal must still succeed.
  std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::add, ec);
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

}  // namespace ledgerkeep::test
