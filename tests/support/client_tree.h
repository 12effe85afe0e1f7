// The client node of the runbook as files under a test directory, and small
// file helpers, shared by the client archive tests (tests/backup) and the
// ClientBackup command tests (tests/agents).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/process.h"

namespace ledgerkeep::test {

namespace client_tree_fs = std::filesystem;

// Runs `sh -c script`; the result's output holds stdout + stderr.
inline ProcessResult Sh(const std::string& script) {
  auto r = ProcessRunner::Real()->Run({"sh", "-c", script}, 60'000);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : ProcessResult{};
}

inline std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  client_tree_fs::create_directories(client_tree_fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

inline void SetMtime(const std::string& path, time_t sec) {
  struct timespec ts[2] = {{sec, 0}, {sec, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW), 0) << path;
}

inline std::string Slurp(const std::string& path) { return ReadFileToString(path).value_or("<unreadable>"); }

inline std::string PseudoRandom(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// What the runbook's client node holds: three config files and a db dir
// (with a symlink, a 0600 file, a subdirectory and, as root, a file of
// another owner), under `root` as if it were '/'.
struct ClientTree {
  std::string root;
  std::vector<std::string> paths;  // what to archive (absolute)
  std::vector<std::string> names;  // what `tar tzf` must list
  uint64_t file_bytes = 0;
  bool chowned = false;

  explicit ClientTree(const std::string& r) : root(r) {
    const std::string p = root.substr(1);  // archive names lose the leading '/'
    auto file = [&](const std::string& rel, const std::string& content, mode_t mode) {
      WriteFile(root + "/" + rel, content, mode);
      file_bytes += content.size();
    };
    file("config/daml-ledger-api/environment-vars", "LEDGER_HOST=10.0.0.1\nLEDGER_PORT=6865\n", 0644);
    file("config/daml-index-db/environment-vars", "POSTGRES_PASSWORD=secret\n", 0640);
    file("config/telegraf/telegraf.conf", "[agent]\n  interval = \"10s\"\n", 0644);
    file("mnt/data/db/CURRENT", "MANIFEST-000001\n", 0644);
    file("mnt/data/db/MANIFEST-000001", PseudoRandom(4096, 1), 0600);
    file("mnt/data/db/000012.sst", PseudoRandom(300'000, 2) + std::string(200'000, 'x'), 0644);
    file("mnt/data/db/archive/old.log", "old log\n", 0644);
    client_tree_fs::create_symlink("CURRENT", root + "/mnt/data/db/LOG.link");
    if (::geteuid() == 0) {
      chowned = ::chown((root + "/mnt/data/db/archive/old.log").c_str(), 4321, 4322) == 0;
    }
    SetMtime(root + "/config/telegraf/telegraf.conf", 1'600'000'000);
    SetMtime(root + "/mnt/data/db/000012.sst", 1'650'000'000);
    SetMtime(root + "/mnt/data/db/LOG.link", 1'610'000'000);
    SetMtime(root + "/mnt/data/db/archive", 1'620'000'000);
    paths = {root + "/config/daml-ledger-api/environment-vars",
             root + "/config/daml-index-db/environment-vars", root + "/config/telegraf/telegraf.conf",
             root + "/mnt/data/db"};
    names = {p + "/config/daml-ledger-api/environment-vars",
             p + "/config/daml-index-db/environment-vars",
             p + "/config/telegraf/telegraf.conf",
             p + "/mnt/data/db/",
             p + "/mnt/data/db/000012.sst",
             p + "/mnt/data/db/CURRENT",
             p + "/mnt/data/db/LOG.link",
             p + "/mnt/data/db/MANIFEST-000001",
             p + "/mnt/data/db/archive/",
             p + "/mnt/data/db/archive/old.log"};
  }

  // Every archived entry below `root` matches its copy below `copy_root`:
  // type, content or link target, mode, mtime and owner.
  void ExpectReproducedUnder(const std::string& copy_root) const {
    const std::string p = root.substr(1);
    for (const auto& name : names) {
      std::string rel = name.substr(p.size() + 1);
      if (rel.back() == '/') rel.pop_back();
      const std::string a = root + "/" + rel;
      const std::string b = copy_root + "/" + p + "/" + rel;
      struct stat sa {
      }, sb{};
      ASSERT_EQ(::lstat(a.c_str(), &sa), 0) << a;
      ASSERT_EQ(::lstat(b.c_str(), &sb), 0) << b << " missing after extraction";
      EXPECT_EQ(sa.st_mode, sb.st_mode) << rel;
      EXPECT_EQ(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec) << rel;
      if (::geteuid() == 0) {
        EXPECT_EQ(sa.st_uid, sb.st_uid) << rel;
        EXPECT_EQ(sa.st_gid, sb.st_gid) << rel;
      }
      if (S_ISREG(sa.st_mode)) {
        EXPECT_EQ(Slurp(a), Slurp(b)) << rel;
      }
      if (S_ISLNK(sa.st_mode)) {
        EXPECT_EQ(client_tree_fs::read_symlink(a), client_tree_fs::read_symlink(b)) << rel;
      }
    }
  }
};

inline std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace ledgerkeep::test
