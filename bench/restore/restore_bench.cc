// bench_restore: ledgerkeep's restore (RestoreSnapshot: rsync fetch over SSH,
// full verification — every XXH3 checksum, RocksDB open, digest chain, block
// ids — and an atomic publish) against a plain `rsync -a` over ssh of the
// same snapshot (what an operator would do by hand, with no verification);
// and the verifier's throughput on its own, in place.
//
// Usage: bench_restore [--gib 2.0] [--dir /tmp]
// Prints a table, then one JSON line:
//   {"restore_speedup_vs_rsync": ..., "verify_gb_per_s": ...}
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "backup/backup_engine.h"
#include "backup/snapshot_restore.h"
#include "backup/snapshot_verifier.h"
#include "bench/bench_ledger_util.h"
#include "tests/common/sshd_fixture.h"

int main(int argc, char** argv) {
  using namespace ledgerkeep;
  using namespace ledgerkeep::bench;
  namespace fs = std::filesystem;
  double gib = 2.0;
  std::string base = "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--gib"))
      gib = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dir"))
      base = argv[i + 1];
  }
  std::string root = base + "/lk-bench-restore-XXXXXX";
  if (::mkdtemp(root.data()) == nullptr) Die("mkdtemp");
  const std::string db = root + "/src/db";
  const std::string sock = root + "/src/ledgerd.sock";
  fs::create_directories(root + "/src");

  std::fprintf(stderr, "generating a %.1f GiB ledger in %s ...\n", gib, db.c_str());
  GrowLedger(db, sock, static_cast<uint64_t>(gib * (1ULL << 30)));

  testing::SshdServer sshd;
  if (Status s = sshd.Start(); !s.ok()) Die("sshd: " + s.ToString());
  const std::string plain_ssh =
      "ssh -i " + sshd.client_key() + " -p " + std::to_string(sshd.port()) +
      " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR";
  const std::vector<std::string> ssh_options = {
      "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"};
  auto dest = ParseDestination("root@127.0.0.1:" + root + "/backups/r1", "", sshd.client_key(),
                               static_cast<uint16_t>(sshd.port()));
  if (!dest.ok()) Die(dest.status().ToString());

  // The snapshot on the "backup server" (here: the same machine over ssh).
  std::fprintf(stderr, "taking the snapshot ...\n");
  BackupRunOptions o;
  o.destination = *dest;
  o.cluster_id = "bench";
  o.node_id = "r1";
  o.ledger_db = db;
  o.ledger_control = sock;  // ledgerd is stopped: the engine copies the DB under its lock
  o.ssh_options = ssh_options;
  BackupEngine engine(ProcessRunner::Real(), Clock::System(), root + "/work");
  auto snap = engine.Run(o);
  if (!snap.ok) Die("backup failed: " + snap.error);
  const std::string snap_dir = root + "/backups/r1/snapshots/" + snap.snapshot_id;
  fs::remove_all(db);  // the source is gone; only the backup remains
  const uint64_t bytes = DirBytes(snap_dir + "/data");

  // Warm the page cache so both methods read the snapshot from memory.
  Timed({"sh", "-c", "cat " + snap_dir + "/data/* > /dev/null"});

  // (a) plain rsync -a of the snapshot over ssh: no checks at all.
  const double rsync_s =
      Timed({"rsync", "-a", "-e", plain_ssh, "root@127.0.0.1:" + snap_dir + "/", root + "/plain/"});
  fs::remove_all(root + "/plain");

  // (b) ledgerkeep restore: fetch + full verification + publish.
  SnapshotAccess access;
  access.destination = *dest;
  access.ssh_options = ssh_options;
  access.work_dir = root + "/restore-work";
  RestoreRequest req;
  req.source_node = "r1";
  req.snapshot_id = "latest";
  req.db_dir = root + "/restored/db";
  RestoreResult res;
  double t0 = Now();
  Status s = RestoreSnapshot(ProcessRunner::Real(), access, req, &res);
  const double ours_s = Now() - t0;
  if (!s.ok()) Die("restore failed: " + s.ToString());

  // (c) verification alone, in place on the backup copy (page cache warm).
  Timed({"sh", "-c", "cat " + snap_dir + "/data/* > /dev/null"});
  t0 = Now();
  auto v = VerifySnapshotDir(snap_dir);
  const double verify_s = Now() - t0;
  if (!v.ok() || !v->ok) Die("verification failed");
  SnapshotVerifyOptions files_only;
  files_only.check_chain = false;
  t0 = Now();
  auto vf = VerifySnapshotDir(snap_dir, files_only);
  const double checksum_s = Now() - t0;
  if (!vf.ok() || !vf->ok) Die("checksum verification failed");

  const double gb = static_cast<double>(bytes) / 1e9;
  std::printf("snapshot: %.2f GiB, %llu files, %llu blocks; sshd on 127.0.0.1:%d; %u cores\n",
              static_cast<double>(bytes) / (1 << 30), static_cast<unsigned long long>(v->files_checked),
              static_cast<unsigned long long>(v->blocks_verified), sshd.port(),
              std::thread::hardware_concurrency());
  std::printf("%-52s %9s %9s %10s\n", "case", "seconds", "MiB/s", "vs rsync");
  auto row = [&](const char* name, double sec, double baseline) {
    std::printf("%-52s %9.2f %9.1f %10s\n", name, sec, static_cast<double>(bytes) / (1 << 20) / sec,
                baseline > 0 ? (std::to_string(baseline / sec).substr(0, 5) + "x").c_str() : "-");
  };
  row("plain rsync -a over ssh (no checks)", rsync_s, 0);
  row("ledgerkeep restore (fetch + verify + publish)", ours_s, rsync_s);
  std::printf("  of which fetch %.2f s, verify %.2f s\n", static_cast<double>(res.fetch_ms) / 1000.0,
              static_cast<double>(res.verify_ms) / 1000.0);
  row("verify in place: checksums + RocksDB + chain", verify_s, 0);
  row("verify in place: checksums only", checksum_s, 0);
  std::error_code ec;
  fs::remove_all(root, ec);
  std::printf("{\"restore_speedup_vs_rsync\": %.2f, \"verify_gb_per_s\": %.2f}\n", rsync_s / ours_s,
              gb / verify_s);
  return 0;
}
