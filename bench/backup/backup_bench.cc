// bench_backup: ledgerkeep's replica backup (BackupEngine: checksums,
// whole-file rsync over SSH, --link-dest snapshots) against the runbook's
// method (`rsync -a` over ssh with default options) on the same generated
// ledger, over a real sshd on loopback, all in one run. Also a run with no
// change, and `cp -a` of the same data as the local physical limit.
//
// Usage: bench_backup [--gib 2.0] [--dir /tmp] [--incr-pct 1] [--streams 2] [--reps 3] [--db DIR]
// (--db: bench a copy of an existing ledger DB instead of generating one)
// (full runs: the best of --reps alternating runbook/ledgerkeep pairs, plus one
// ledgerkeep run with a single stream and one without flush_as_written, for
// comparison)
// Prints a table, then one JSON line:
//   {"full_speedup_vs_runbook": ..., "incr_speedup_vs_runbook": ...,
//    "nochange_s": ..., "full_time_vs_cp": ..., "full_speedup_median_pair": ...}
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "backup/backup_engine.h"
#include "bench/bench_ledger_util.h"
#include "common/clock.h"
#include "common/process.h"
#include "tests/common/sshd_fixture.h"

namespace {

using namespace ledgerkeep;
using namespace ledgerkeep::bench;
namespace fs = std::filesystem;

}  // namespace

int main(int argc, char** argv) {
  double gib = 2.0;
  double incr_pct = 1.0;
  std::string base = "/tmp";
  int streams = BackupRunOptions{}.transfer_streams;
  int reps = 3;
  std::string existing_db;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--gib"))
      gib = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dir"))
      base = argv[i + 1];
    else if (!std::strcmp(argv[i], "--incr-pct"))
      incr_pct = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--streams"))
      streams = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps"))
      reps = std::max(1, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--db"))
      existing_db = argv[i + 1];
    else
      Die(std::string("unknown option ") + argv[i] +
          " (--gib G --dir D --incr-pct P --streams N --reps N --db DIR)");
  }
  std::string root = base + "/lk-bench-backup-XXXXXX";
  if (::mkdtemp(root.data()) == nullptr) Die("mkdtemp");
  const std::string db = root + "/src/db";
  const std::string sock = root + "/src/ledgerd.sock";
  fs::create_directories(root + "/src");

  if (!existing_db.empty()) {
    std::fprintf(stderr, "copying the ledger %s to %s ...\n", existing_db.c_str(), db.c_str());
    Timed({"cp", "-a", existing_db, db});
  } else {
    std::fprintf(stderr, "generating a %.1f GiB ledger in %s ...\n", gib, db.c_str());
    GrowLedger(db, sock, static_cast<uint64_t>(gib * (1ULL << 30)));
  }
  const uint64_t full_bytes = DirBytes(db);

  testing::SshdServer sshd;
  if (Status s = sshd.Start(); !s.ok()) Die("sshd: " + s.ToString());
  const std::string runbook_ssh =
      "ssh -i " + sshd.client_key() + " -p " + std::to_string(sshd.port()) +
      " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR";

  // Warm the page cache once so every method reads the source from memory.
  Timed({"sh", "-c", "cat " + db + "/* > /dev/null"});

  BackupRunOptions o;
  auto dest_at = [&](const std::string& dir) {
    return *ParseDestination("root@127.0.0.1:" + root + "/" + dir, "", sshd.client_key(),
                             static_cast<uint16_t>(sshd.port()));
  };
  o.transfer_streams = streams;
  o.cluster_id = "bench";
  o.node_id = "r1";
  o.ledger_db = db;
  o.ledger_control = sock;  // ledgerd is stopped: the engine copies the DB under its lock
  o.ssh_options = {
      "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"};
  BackupEngine engine(ProcessRunner::Real(), Clock::System(), root + "/work");

  // (d) cp -a: the local physical limit.
  // Every timed case starts with no dirty pages of an earlier one left to
  // write back (the kernel would throttle the next writer for them: the last
  // case measured would pay for the ones before).
  auto settle = [] { Timed({"sync"}); };
  settle();
  const double cp_s = Timed({"cp", "-a", db, root + "/cp"});
  // (a) full baseline: `reps` alternating pairs into fresh directories, the
  // best time of each method (the least disturbed by anything else running).
  double runbook_full_s = 1e9, ours_full_s = 1e9;
  std::vector<double> pair_ratios;  // runbook / ledgerkeep of each pair
  BackupResult full;
  for (int rep = 0; rep < reps; ++rep) {
    const std::string rb = root + "/runbook-" + std::to_string(rep);
    const double rb_s = Timed({"rsync", "-a", "-e", runbook_ssh, db + "/", "root@127.0.0.1:" + rb + "/"});
    runbook_full_s = std::min(runbook_full_s, rb_s);
    if (rep + 1 < reps) Timed({"rm", "-rf", rb});
    settle();
    o.destination = dest_at("ours-" + std::to_string(rep));
    const double t0 = Now();
    full = engine.Run(o);
    const double ours_s = Now() - t0;
    ours_full_s = std::min(ours_full_s, ours_s);
    pair_ratios.push_back(rb_s / ours_s);
    std::fprintf(stderr, "full, pair %d: runbook %.2f s, ledgerkeep %.2f s (%.2fx)\n", rep + 1, rb_s, ours_s,
                 rb_s / ours_s);
    if (!full.ok) Die("full backup failed: " + full.error);
    if (rep + 1 < reps) Timed({"rm", "-rf", root + "/ours-" + std::to_string(rep)});
    settle();
  }
  const std::string runbook_dir = root + "/runbook-" + std::to_string(reps - 1) + "/";
  // The comparison rows below run with a work dir of their own, which starts
  // with the node's manifest cache: the main one must still hold the last
  // pair's manifest for the incremental, as a node backing up to one
  // destination has (otherwise the incremental reads the previous manifest
  // from the destination, a round trip no node makes).
  fs::create_directories(root + "/work-extra");
  fs::copy_file(root + "/work/last_manifest.json", root + "/work-extra/last_manifest.json");
  BackupEngine extra(ProcessRunner::Real(), Clock::System(), root + "/work-extra");
  // The same engine with one stream, for the effect of parallel streams.
  double single_full_s = 0;
  if (streams > 1) {
    BackupRunOptions one = o;
    one.transfer_streams = 1;
    one.destination = dest_at("ours-single");
    const double t0 = Now();
    auto r = extra.Run(one);
    single_full_s = Now() - t0;
    if (!r.ok) Die("single-stream backup failed: " + r.error);
    Timed({"rm", "-rf", root + "/ours-single"});
  }
  // The same engine without flushing the new files as they are written
  // (flush_as_written off), for the effect of the flusher.
  double unflushed_full_s = 0;
  {
    BackupRunOptions kept = o;
    kept.flush_as_written = false;
    kept.destination = dest_at("ours-unflushed");
    settle();
    const double t0 = Now();
    auto r = extra.Run(kept);
    unflushed_full_s = Now() - t0;
    if (!r.ok) Die("unflushed backup failed: " + r.error);
    Timed({"rm", "-rf", root + "/ours-unflushed"});
  }
  double t0 = 0;

  // (b) incremental after about incr_pct% new blocks.
  GrowLedger(db, sock,
             full_bytes + static_cast<uint64_t>(static_cast<double>(full_bytes) * incr_pct / 100.0));
  Timed({"sh", "-c", "cat " + db + "/* > /dev/null"});
  settle();
  const double runbook_incr_s =
      Timed({"rsync", "-a", "-e", runbook_ssh, db + "/", "root@127.0.0.1:" + runbook_dir});
  settle();
  t0 = Now();
  auto incr = engine.Run(o);
  const double ours_incr_s = Now() - t0;
  if (!incr.ok) Die("incremental backup failed: " + incr.error);
  // New SST bytes: files of the new snapshot that the previous one lacks.
  uint64_t new_sst_bytes = 0;
  const std::string ours_dir = root + "/ours-" + std::to_string(reps - 1);
  const std::string prev_dir = ours_dir + "/snapshots/" + full.snapshot_id + "/data/";
  for (const auto& e : fs::directory_iterator(ours_dir + "/snapshots/" + incr.snapshot_id + "/data/")) {
    std::error_code size_ec;
    if (e.path().extension() == ".sst" && !fs::exists(prev_dir + e.path().filename().string())) {
      new_sst_bytes += e.file_size(size_ec);
    }
  }

  // (c) no change at all.
  settle();
  t0 = Now();
  auto none = engine.Run(o);
  const double nochange_s = Now() - t0;
  if (!none.ok) Die("no-change backup failed: " + none.error);

  std::printf(
      "ledger: %.2f GiB, %llu files; sshd on 127.0.0.1:%d; %u cores; %d transfer streams; "
      "full runs: best of %d\n",
      static_cast<double>(full_bytes) / (1 << 30), static_cast<unsigned long long>(full.files_total),
      sshd.port(), std::thread::hardware_concurrency(), streams, reps);
  std::printf("%-34s %10s %10s %12s\n", "case", "seconds", "MiB/s", "vs runbook");
  auto row = [&](const char* name, double s, uint64_t bytes, double baseline) {
    std::printf("%-34s %10.2f %10.1f %12s\n", name, s, static_cast<double>(bytes) / (1 << 20) / s,
                baseline > 0 ? (std::to_string(baseline / s).substr(0, 5) + "x").c_str() : "-");
  };
  row("full: runbook rsync -a over ssh", runbook_full_s, full_bytes, 0);
  row("full: ledgerkeep snapshot", ours_full_s, full_bytes, runbook_full_s);
  if (single_full_s > 0) row("full: ledgerkeep, 1 stream", single_full_s, full_bytes, runbook_full_s);
  row("full: ledgerkeep, not flushed", unflushed_full_s, full_bytes, runbook_full_s);
  row("incremental: runbook rsync -a", runbook_incr_s, incr.bytes_total, 0);
  row("incremental: ledgerkeep snapshot", ours_incr_s, incr.bytes_total, runbook_incr_s);
  row("no change: ledgerkeep snapshot", nochange_s, none.bytes_total, 0);
  row("cp -a (local physical limit)", cp_s, full_bytes, 0);
  std::printf(
      "incremental: ledgerkeep sent %.1f MiB for %.1f MiB of new SST files (%.2fx)\n",
      static_cast<double>(incr.bytes_transferred) / (1 << 20), static_cast<double>(new_sst_bytes) / (1 << 20),
      new_sst_bytes ? static_cast<double>(incr.bytes_transferred) / static_cast<double>(new_sst_bytes) : 0.0);
  std::sort(pair_ratios.begin(), pair_ratios.end());
  const double median_ratio = pair_ratios[pair_ratios.size() / 2];
  std::printf("full: ratio of each pair (runbook then ledgerkeep, back to back):");
  for (double r : pair_ratios) std::printf(" %.2fx", r);
  std::printf("; median %.2fx\n", median_ratio);
  std::error_code ec;
  fs::remove_all(root, ec);
  std::printf(
      "{\"full_speedup_vs_runbook\": %.2f, \"incr_speedup_vs_runbook\": %.2f, \"nochange_s\": %.2f, "
      "\"full_time_vs_cp\": %.2f, \"full_speedup_median_pair\": %.2f}\n",
      runbook_full_s / ours_full_s, runbook_incr_s / ours_incr_s, nochange_s, ours_full_s / cp_s,
      median_ratio);
  return 0;
}
