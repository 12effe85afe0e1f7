// TempDir: a fresh directory under /tmp, removed with its contents when the
// object dies. Set LEDGERKEEP_KEEP_TEST_DIRS=1 to keep it for a post-mortem
// (its path is printed then).
#pragma once

#include <string>
#include <string_view>

namespace ledgerkeep::test {

class TempDir {
 public:
  // mkdtemp("/tmp/<prefix>XXXXXX"); a failure is a gtest failure and leaves
  // path() empty. Short /tmp paths keep ipc:// and unix socket names legal.
  explicit TempDir(std::string_view prefix = "lk-");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string operator/(std::string_view name) const;

 private:
  std::string path_;
};

}  // namespace ledgerkeep::test
