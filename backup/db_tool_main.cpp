// ledgerkeep-db: the ledger DB tool (ledger/db_tool.h) plus
// `ledgerkeep-db <snapshot-dir> verifySnapshot`, which checks a backup
// snapshot with the backup library's verifier: run by `ledgerkeep backup
// verify` on the backup host over ssh, and by operators. Exit codes as the
// DB commands'; verifySnapshot: 1 the snapshot failed verification, 2 not a
// snapshot directory. It lives here, not in ledger/, because ledger/ must
// not depend on backup/.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <vector>

#include "backup/snapshot_verifier.h"
#include "ledger/db_tool.h"

namespace {

namespace lg = ledgerkeep::ledger;

int VerifySnapshot(const std::string& dir, const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::cerr << "ledgerkeep-db: usage: ledgerkeep-db <snapshot-dir> verifySnapshot\n";
    return lg::kDbToolExitUsage;
  }
  // A directory without any part of a snapshot is not one: a usage error,
  // not a failed verification (that is for snapshots, complete or not).
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec) && !std::filesystem::exists(dir + "/data", ec) &&
      !std::filesystem::exists(dir + "/MANIFEST.json", ec) && !std::filesystem::exists(dir + "/DONE", ec)) {
    std::cerr << "ledgerkeep-db: not a ledgerkeep snapshot: " << dir
              << " has no data/, MANIFEST.json or DONE; give <destination>/snapshots/<id>\n";
    return lg::kDbToolExitUsage;
  }
  auto v = ledgerkeep::VerifySnapshotDir(dir);
  if (!v.ok()) {
    std::cerr << "ledgerkeep-db: " << v.status().message() << "\n";
    return lg::kDbToolExitUsage;
  }
  std::cout << ledgerkeep::VerificationToJson(*v).dump() << "\n";
  if (!v->ok)
    std::cerr << "ledgerkeep-db: snapshot verification failed:\n" << ledgerkeep::DescribeProblems(*v) << "\n";
  return v->ok ? lg::kDbToolExitOk : lg::kDbToolExitFailed;
}

}  // namespace

int main(int argc, char** argv) {
  const lg::DbToolDirCommand verify_snapshot{
      "verifySnapshot",
      "  <snapshot-dir> verifySnapshot       a backup snapshot (data/, MANIFEST.json, DONE): DONE, every\n"
      "                                       checksum, RocksDB opens, digest chain, block ids (exit 1 naming\n"
      "                                       each bad file and block)\n",
      VerifySnapshot};
  return lg::RunDbTool(std::vector<std::string>(argv + 1, argv + argc), {verify_snapshot});
}
