#include "backup/rsync.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/process.h"
#include "tests/common/sshd_fixture.h"

namespace ledgerkeep {
namespace {

namespace fs = std::filesystem;
using testing::FreeLoopbackPort;
using testing::ReadWholeFile;
using testing::SshdServer;

// ---------------------------------------------------------------------------
// Helpers

std::string MakeTempDir(const std::string& tag) {
  std::string tmpl = "/tmp/lk-rsync-" + tag + "-XXXXXX";
  return ::mkdtemp(tmpl.data());
}

void WriteRandomFile(const std::string& path, uint64_t size, std::mt19937_64& rng) {
  std::string data(size, '\0');
  for (uint64_t i = 0; i + 8 <= size; i += 8) {
    uint64_t v = rng();
    std::memcpy(&data[i], &v, 8);
  }
  std::ofstream(path, std::ios::binary).write(data.data(), static_cast<std::streamsize>(size));
}

// A RocksDB-like tree: many small files in a few directories plus a few
// large ones. Returns the total size.
uint64_t WriteTree(const std::string& root, int small_files, int big_files, uint64_t big_size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  uint64_t total = 0;
  for (int d = 0; d < 4; ++d) fs::create_directories(root + "/dir" + std::to_string(d));
  for (int i = 0; i < small_files; ++i) {
    uint64_t size = 1000 + rng() % 90'000;
    WriteRandomFile(root + "/dir" + std::to_string(i % 4) + "/small-" + std::to_string(i) + ".sst", size, rng);
    total += size;
  }
  for (int i = 0; i < big_files; ++i) {
    WriteRandomFile(root + "/big-" + std::to_string(i) + ".sst", big_size, rng);
    total += big_size;
  }
  return total;
}

// "" when the regular files under a and b have the same names and bytes.
std::string TreeDiff(const std::string& a, const std::string& b) {
  std::vector<std::string> names_a, names_b;
  for (const auto& e : fs::recursive_directory_iterator(a))
    if (e.is_regular_file()) names_a.push_back(fs::relative(e.path(), a).string());
  for (const auto& e : fs::recursive_directory_iterator(b))
    if (e.is_regular_file()) names_b.push_back(fs::relative(e.path(), b).string());
  std::sort(names_a.begin(), names_a.end());
  std::sort(names_b.begin(), names_b.end());
  if (names_a != names_b)
    return "file sets differ: " + std::to_string(names_a.size()) + " vs " + std::to_string(names_b.size());
  for (const auto& n : names_a) {
    if (ReadWholeFile(a + "/" + n) != ReadWholeFile(b + "/" + n)) return "content differs: " + n;
  }
  return "";
}

// The pids of this process's children running `comm`.
std::vector<pid_t> ChildrenNamed(const std::string& comm) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = ReadWholeFile("/proc/" + name + "/stat");
    auto open = stat.find('(');
    auto close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close + 4 >= stat.size()) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == ::getpid() && stat.substr(open + 1, close - open - 1) == comm) out.push_back(std::stoi(name));
  }
  return out;
}

// Counts rsync/ssh runs on the way to the real runner.
class CountingRunner final : public ProcessRunner {
 public:
  Result<ProcessResult> Run(const std::vector<std::string>& argv, int64_t timeout_ms) override {
    return Real()->Run(argv, timeout_ms);
  }
  Result<ProcessResult> RunStreaming(const std::vector<std::string>& argv, const RunOptions& opts) override {
    ++runs;
    last_argv = argv;
    return Real()->RunStreaming(argv, opts);
  }
  Result<ProcessId> Spawn(const std::vector<std::string>& argv, const std::string& log) override {
    return Real()->Spawn(argv, log);
  }
  bool IsAlive(const ProcessId& id) override { return Real()->IsAlive(id); }
  Status Signal(const ProcessId& id, int sig) override { return Real()->Signal(id, sig); }

  int runs = 0;
  std::vector<std::string> last_argv;
};

// Progress events with their arrival times.
struct ProgressLog {
  std::vector<RsyncProgress> events;
  std::vector<int64_t> at_ms;

  std::function<void(const RsyncProgress&)> Callback() {
    return [this](const RsyncProgress& p) {
      events.push_back(p);
      at_ms.push_back(MonotonicMs());
    };
  }
  int64_t MaxGapMs() const {
    int64_t gap = 0;
    for (size_t i = 1; i < at_ms.size(); ++i) gap = std::max(gap, at_ms[i] - at_ms[i - 1]);
    return gap;
  }
  void ExpectMonotonicEndingAt100() const {
    ASSERT_FALSE(events.empty());
    for (size_t i = 1; i < events.size(); ++i) {
      EXPECT_GE(events[i].bytes_done, events[i - 1].bytes_done) << "event " << i;
      EXPECT_GE(events[i].percent, events[i - 1].percent) << "event " << i;
    }
    EXPECT_TRUE(events.back().final);
    EXPECT_EQ(events.back().percent, 100);
    EXPECT_EQ(events.back().bytes_done, events.back().bytes_total);
    for (size_t i = 0; i + 1 < events.size(); ++i) EXPECT_FALSE(events[i].final);
  }
};

RsyncOptions FastRetryOptions() {
  RsyncOptions o;
  o.backoff_base_ms = 50;
  o.backoff_max_ms = 200;
  o.io_timeout_s = 20;
  o.timeout_ms = 60'000;
  return o;
}

// ---------------------------------------------------------------------------
// Pure parsers

TEST(RsyncProgressParseTest, ParsesEndOfFileRecordsWithToChk) {
  auto p = ParseRsyncProgressLine("     12,800,000  64%    5.08MB/s    0:00:02 (xfr#32, to-chk=18/51)");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->bytes_done, 12'800'000u);
  EXPECT_EQ(p->percent, 64);
  EXPECT_EQ(p->bytes_total, 20'000'000u);
  EXPECT_EQ(p->rate_bps, static_cast<uint64_t>(5.08 * 1024 * 1024));
  EXPECT_EQ(p->files_done, 33u);
  EXPECT_EQ(p->files_total, 51u);
  EXPECT_EQ(p->eta_s, 1);  // derived: the clock of an end-of-file record is elapsed time

  auto brief = ParseRsyncProgressLine("  1,234,567  45%   12.34MB/s    0:00:03 (xfr#12, to-chk=34/100)");
  ASSERT_TRUE(brief.has_value());
  EXPECT_EQ(brief->bytes_done, 1'234'567u);
  EXPECT_EQ(brief->files_done, 66u);
  EXPECT_EQ(brief->files_total, 100u);

  auto raw = ParseRsyncProgressLine("       15600000  78%  549.85MB/s    0:00:00 (xfr#39, to-chk=11/51)");
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->bytes_done, 15'600'000u);

  auto nothing = ParseRsyncProgressLine("              0   0%    0.00kB/s    0:00:00 (xfr#0, to-chk=0/51)");
  ASSERT_TRUE(nothing.has_value());
  EXPECT_EQ(nothing->bytes_total, 0u);  // unknown at 0%
  EXPECT_EQ(nothing->files_done, 51u);

  auto done = ParseRsyncProgressLine("     20,000,000 100%    4.93MB/s    0:00:03 (xfr#50, to-chk=0/51)");
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->bytes_total, 20'000'000u);
  EXPECT_EQ(done->eta_s, 0);
}

TEST(RsyncProgressParseTest, ParsesIrChkAndMidFileRecords) {
  auto ir = ParseRsyncProgressLine("    105,906,176  12%  100.99MB/s    0:00:01 (xfr#1034, ir-chk=1011/2045)");
  ASSERT_TRUE(ir.has_value());
  EXPECT_EQ(ir->files_done, 1034u);
  EXPECT_EQ(ir->files_total, 2045u);
  EXPECT_EQ(ir->percent, 12);

  auto mid = ParseRsyncProgressLine("     16,098,304  80%    4.89MB/s    0:00:07  ");
  ASSERT_TRUE(mid.has_value());
  EXPECT_EQ(mid->bytes_done, 16'098'304u);
  EXPECT_EQ(mid->eta_s, 7);  // a mid-file record's clock is the time left
  EXPECT_EQ(mid->files_total, 0u);

  auto unknown_eta = ParseRsyncProgressLine("         32,768   0%    0.00kB/s    ??:??:??");
  ASSERT_TRUE(unknown_eta.has_value());
  EXPECT_EQ(unknown_eta->eta_s, -1);

  auto kb = ParseRsyncProgressLine("          3,072  10%  512.00kB/s    0:00:00");
  ASSERT_TRUE(kb.has_value());
  EXPECT_EQ(kb->rate_bps, 512u * 1024);
}

TEST(RsyncProgressParseTest, RejectsPartialAndForeignLines) {
  for (const char* line : {
           "",
           "  1,234,567  45%   12.3",
           "  1,234,567  45%   12.34MB/s    0:00:03 (xfr#12, to-chk=34/1",
           "  1,234,567  45%   12.34MB/s    0:00:03 (xfr#12,",
           "  1,234,567  145%   12.34MB/s    0:00:03",
           "sending incremental file list",
           "dir0/small-1.sst",
           "Number of files: 51 (reg: 50, dir: 1)",
           "total size is 20,000,000  speedup is 1.00",
           "sent 20,007,694 bytes  received 969 bytes  4,446,369.56 bytes/sec",
       }) {
    EXPECT_FALSE(ParseRsyncProgressLine(line).has_value()) << "'" << line << "'";
  }
}

TEST(RsyncStatsParseTest, ParsesTheStatsBlockWithOrWithoutSeparators) {
  const std::string with_commas =
      "\r     20,000,000 100%    4.92MB/s    0:00:03 (xfr#50, to-chk=0/51)\n\n"
      "Number of files: 51 (reg: 50, dir: 1)\n"
      "Number of created files: 51 (reg: 50, dir: 1)\n"
      "Number of deleted files: 0\n"
      "Number of regular files transferred: 50\n"
      "Total file size: 20,000,000 bytes\n"
      "Total transferred file size: 19,500,000 bytes\n"
      "Literal data: 20,000,000 bytes\n"
      "Matched data: 0 bytes\n"
      "Total bytes sent: 20,007,694\n"
      "Total bytes received: 969\n\n"
      "sent 20,007,694 bytes  received 969 bytes  4,446,369.56 bytes/sec\n"
      "total size is 20,000,000  speedup is 1.00\n";
  RsyncStats s = ParseRsyncStats(with_commas);
  EXPECT_TRUE(s.parsed);
  EXPECT_EQ(s.total_file_size, 20'000'000u);
  EXPECT_EQ(s.total_transferred_file_size, 19'500'000u);
  EXPECT_EQ(s.regular_files_transferred, 50u);
  EXPECT_EQ(s.total_bytes_sent, 20'007'694u);

  RsyncStats raw = ParseRsyncStats(
      "Number of regular files transferred: 0\nTotal file size: 20000000 bytes\n"
      "Total transferred file size: 0 bytes\nTotal bytes sent: 741\n");
  EXPECT_TRUE(raw.parsed);
  EXPECT_EQ(raw.total_file_size, 20'000'000u);
  EXPECT_EQ(raw.total_transferred_file_size, 0u);
  EXPECT_EQ(raw.total_bytes_sent, 741u);

  EXPECT_FALSE(ParseRsyncStats("rsync error: some files could not be transferred (code 23)\n").parsed);
}

TEST(RsyncEndpointTest, ClassifiesLocalSshAndDaemonDestinations) {
  EXPECT_EQ(ClassifyRsyncEndpoint("/backups/node1"), RsyncEndpointKind::kLocal);
  EXPECT_EQ(ClassifyRsyncEndpoint("./odd:name"), RsyncEndpointKind::kLocal);
  EXPECT_EQ(ClassifyRsyncEndpoint("backup@nas:/srv/lk"), RsyncEndpointKind::kSsh);
  EXPECT_EQ(ClassifyRsyncEndpoint("nas:relative"), RsyncEndpointKind::kSsh);
  EXPECT_EQ(ClassifyRsyncEndpoint("rsync://nas:8873/module/path"), RsyncEndpointKind::kDaemon);
  EXPECT_EQ(ClassifyRsyncEndpoint("nas::module/path"), RsyncEndpointKind::kDaemon);
}

TEST(RsyncFailureTest, ClassifiesByExitCodeAndStderr) {
  auto classify = [](int exit_code, const std::string& err, int sig = 0) {
    ProcessResult r;
    r.exit_code = sig != 0 ? -1 : exit_code;
    r.term_signal = sig;
    r.stderr_tail = err;
    return ClassifyRsyncFailure(r, "rsync to /dst");
  };
  auto nospace = classify(11, "rsync: [receiver] write failed on \"/dst/f11\": No space left on device (28)\n"
                              "rsync: [sender] write error: Broken pipe (32)\n");
  EXPECT_EQ(nospace.status.code(), StatusCode::kNoSpace);
  EXPECT_FALSE(nospace.retryable);
  // A remote receiver's ENOSPC arrives as a broken stream: still not retried.
  EXPECT_FALSE(classify(12, "No space left on device (28)\nrsync error: error in rsync protocol data stream").retryable);
  auto ssh_auth = classify(255, "root@127.0.0.1: Permission denied (publickey).\n");
  EXPECT_EQ(ssh_auth.status.code(), StatusCode::kPermissionDenied);
  EXPECT_FALSE(ssh_auth.retryable);
  auto refused = classify(255, "ssh: connect to host 127.0.0.1 port 1: Connection refused\n");
  EXPECT_EQ(refused.status.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(refused.retryable);
  EXPECT_EQ(classify(5, "@ERROR: auth failed on module secure\n").status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(classify(5, "@ERROR: Unknown module 'nomod'\n").status.code(), StatusCode::kNotFound);
  auto timeout = classify(30, "[sender] io timeout after 60 seconds -- exiting\n");
  EXPECT_EQ(timeout.status.code(), StatusCode::kTimeout);
  EXPECT_TRUE(timeout.retryable);
  EXPECT_TRUE(classify(0, "rsync: connection unexpectedly closed", SIGKILL).retryable);
  EXPECT_TRUE(classify(12, "rsync: connection unexpectedly closed (0 bytes received so far)").retryable);
  auto vanished = classify(24, "file has vanished: \"/src/000123.sst\"\n");
  EXPECT_EQ(vanished.status.code(), StatusCode::kIOError);
  EXPECT_FALSE(vanished.retryable);
  auto other = classify(11, "rsync: [receiver] something odd happened\n");
  EXPECT_EQ(other.status.code(), StatusCode::kIOError);
  EXPECT_NE(other.status.message().find("something odd happened"), std::string::npos);  // the stderr tail
  EXPECT_NE(other.status.message().find("exit 11: error in file I/O"), std::string::npos);
}

TEST(RsyncFailureTest, RemoteShellArgQuotesEveryElementForRsyncsOwnSplitting) {
  EXPECT_EQ(RsyncRemoteShellArg({"ssh", "-i", "/k dir/it's key", "-o", "A=\"b\"", ""}),
            "'ssh' '-i' '/k dir/it''s key' '-o' 'A=\"b\"' ''");
}

// A runner that replays a recorded rsync stdout in small chunks, then exits
// with the next scripted exit code.
class ReplayRunner final : public ProcessRunner {
 public:
  Result<ProcessResult> Run(const std::vector<std::string>&, int64_t) override {
    return Status::Internal("unused");
  }
  Result<ProcessResult> RunStreaming(const std::vector<std::string>& argv, const RunOptions& opts) override {
    last_argv = argv;
    last_background = opts.background;
    ProcessResult r;
    r.exit_code = exit_codes.at(static_cast<size_t>(runs++));
    r.stderr_tail = r.exit_code == 0 ? "" : "[sender] io timeout after 20 seconds -- exiting\n";
    for (size_t i = 0; i < stream.size(); i += 7) {
      std::string_view chunk = std::string_view(stream).substr(i, 7);
      if (opts.on_stdout) opts.on_stdout(chunk);
    }
    r.stdout_tail = stream;
    return r;
  }
  Result<ProcessId> Spawn(const std::vector<std::string>&, const std::string&) override {
    return Status::Internal("unused");
  }
  bool IsAlive(const ProcessId&) override { return false; }
  Status Signal(const ProcessId&, int) override { return Status::OK(); }

  std::string stream;
  std::vector<int> exit_codes;
  int runs = 0;
  std::vector<std::string> last_argv;
  bool last_background = false;
};

TEST(RsyncReplayTest, ABandwidthLimitIsBwlimitInWholeKiBAndBackgroundReachesTheRunner) {
  EXPECT_EQ(RsyncBwlimitArg(0), "");
  EXPECT_EQ(RsyncBwlimitArg(1), "--bwlimit=1");
  EXPECT_EQ(RsyncBwlimitArg(1024), "--bwlimit=1");
  EXPECT_EQ(RsyncBwlimitArg(1025), "--bwlimit=2");
  EXPECT_EQ(RsyncBwlimitArg(20u << 20), "--bwlimit=20480");
  EXPECT_EQ(RsyncBwlimitArg(kMaxBwlimitBytesPerS), "--bwlimit=1073741824");

  ReplayRunner fake;
  fake.stream = "Total file size: 0 bytes\n";
  fake.exit_codes = {0, 0};
  RsyncOptions o = FastRetryOptions();
  o.bwlimit_bytes_per_s = 20u << 20;
  o.background = true;
  RsyncRunner limited(&fake, o);
  ASSERT_TRUE(limited.Copy({"/src/"}, "/dst").ok());
  EXPECT_NE(std::find(fake.last_argv.begin(), fake.last_argv.end(), "--bwlimit=20480"), fake.last_argv.end());
  EXPECT_TRUE(fake.last_background);

  RsyncRunner plain(&fake, FastRetryOptions());
  ASSERT_TRUE(plain.Copy({"/src/"}, "/dst").ok());
  for (const auto& a : fake.last_argv) EXPECT_EQ(a.rfind("--bwlimit", 0), std::string::npos) << a;
  EXPECT_FALSE(fake.last_background);
}

TEST(RsyncReplayTest, RecordsSplitAcrossChunksAndATimeoutRetryKeepProgressMonotonic) {
  ReplayRunner fake;
  fake.stream =
      "\r         32,768   0%    0.00kB/s    0:00:00  \r      5,000,000  25%    5.00MB/s    0:00:01 "
      "(xfr#5, to-chk=15/20)\r     10,000,000  50%    5.00MB/s    0:00:02 (xfr#10, to-chk=10/20)\n\n"
      "Number of regular files transferred: 10\nTotal file size: 20,000,000 bytes\n"
      "Total transferred file size: 10,000,000 bytes\nTotal bytes sent: 10,001,234\n";
  fake.exit_codes = {30, 0};  // an I/O timeout, then success
  ProgressLog log;
  RsyncOptions o = FastRetryOptions();
  o.on_progress = log.Callback();
  RsyncRunner rsync(&fake, o);
  auto r = rsync.Copy({"/src/"}, "/dst");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->attempts, 2);
  EXPECT_EQ(fake.runs, 2);
  EXPECT_EQ(r->stats.total_transferred_file_size, 10'000'000u);
  log.ExpectMonotonicEndingAt100();
  std::vector<uint64_t> seen;
  for (const auto& e : log.events) seen.push_back(e.bytes_done);
  EXPECT_NE(std::find(seen.begin(), seen.end(), 5'000'000u), seen.end());
  EXPECT_NE(std::find(seen.begin(), seen.end(), 10'000'000u), seen.end());
  EXPECT_EQ(log.events.back().bytes_total, 20'000'000u);
  EXPECT_EQ(log.events.back().attempt, 2);
}

// ---------------------------------------------------------------------------
// Real rsync, local destinations

class RsyncLocalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    src_root_ = new std::string(MakeTempDir("src"));
    src_ = new std::string(*src_root_ + "/tree");
    // 300 files, ~30 MB: enough for rsync to print progress several times.
    src_bytes_ = WriteTree(*src_, 294, 6, 2'500'000, 42);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*src_root_);
    delete src_;
    delete src_root_;
  }
  void SetUp() override { dir_ = MakeTempDir("dst"); }
  void TearDown() override {
    for (const auto& m : mounts_) ::umount2(m.c_str(), MNT_DETACH);
    fs::remove_all(dir_);
  }

  // Mounts a tmpfs at dir_/name; false (test should skip) when not permitted.
  bool MountTmpfs(const std::string& name, const std::string& opts, unsigned long flags = 0) {
    const std::string at = dir_ + "/" + name;
    fs::create_directories(at);
    if (::mount("tmpfs", at.c_str(), "tmpfs", flags, opts.c_str()) != 0) return false;
    mounts_.push_back(at);
    return true;
  }

  static std::string* src_root_;
  static std::string* src_;
  static uint64_t src_bytes_;
  std::string dir_;
  std::vector<std::string> mounts_;
};
std::string* RsyncLocalTest::src_root_ = nullptr;
std::string* RsyncLocalTest::src_ = nullptr;
uint64_t RsyncLocalTest::src_bytes_ = 0;

TEST_F(RsyncLocalTest, CopiesAGeneratedTreeWithProgressEndingAt100) {
  ProgressLog log;
  RsyncOptions o = FastRetryOptions();
  o.on_progress = log.Callback();
  RsyncRunner rsync(ProcessRunner::Real(), o);
  auto r = rsync.Copy({*src_ + "/"}, dir_ + "/snap1/");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(TreeDiff(*src_, dir_ + "/snap1"), "");
  EXPECT_EQ(r->attempts, 1);
  EXPECT_TRUE(r->stats.parsed);
  EXPECT_EQ(r->stats.total_file_size, src_bytes_);
  EXPECT_EQ(r->stats.total_transferred_file_size, src_bytes_);
  EXPECT_EQ(r->stats.regular_files_transferred, 300u);
  EXPECT_GE(r->stats.total_bytes_sent, src_bytes_);
  EXPECT_GE(log.events.size(), 3u);
  log.ExpectMonotonicEndingAt100();
  EXPECT_EQ(log.events.back().bytes_total, src_bytes_);
  EXPECT_EQ(log.events.back().files_total, 305u);  // 300 files + tree root + 4 dirs
  bool saw_midway = false;
  for (const auto& e : log.events) saw_midway |= e.percent > 0 && e.percent < 100 && e.files_total > 0;
  EXPECT_TRUE(saw_midway);
}

TEST_F(RsyncLocalTest, ProgressArrivesAtLeastOncePerSecondOnASlowTransfer) {
  const std::string src = dir_ + "/slow-src";
  WriteTree(src, 0, 2, 1'500'000, 7);  // 3 MB at 1.5 MB/s: about two seconds
  ProgressLog log;
  RsyncOptions o = FastRetryOptions();
  o.extra_args = {"--bwlimit=1500"};
  o.on_progress = log.Callback();
  RsyncRunner rsync(ProcessRunner::Real(), o);
  const int64_t start = MonotonicMs();
  auto r = rsync.Copy({src + "/"}, dir_ + "/slow-dst/");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GE(MonotonicMs() - start, 1500);
  EXPECT_EQ(TreeDiff(src, dir_ + "/slow-dst"), "");
  EXPECT_GE(log.events.size(), 3u);
  EXPECT_LT(log.MaxGapMs(), 1000) << "events: " << log.events.size();
  log.ExpectMonotonicEndingAt100();
}

TEST_F(RsyncLocalTest, ABandwidthLimitHoldsARealCopyToIt) {
  const std::string src = dir_ + "/limited-src";
  WriteTree(src, 0, 3, 1'000'000, 11);  // 3 MB at 1 MiB/s: about three seconds
  RsyncOptions o = FastRetryOptions();
  o.bwlimit_bytes_per_s = 1 << 20;
  RsyncRunner rsync(ProcessRunner::Real(), o);
  const int64_t start = MonotonicMs();
  auto r = rsync.Copy({src + "/"}, dir_ + "/limited-dst/");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GE(MonotonicMs() - start, 2000) << "3 MB went faster than 1 MiB/s";
  EXPECT_EQ(TreeDiff(src, dir_ + "/limited-dst"), "");
}

TEST_F(RsyncLocalTest, LinkDestSecondSnapshotResendsNothingForUnchangedFiles) {
  RsyncOptions o = FastRetryOptions();
  RsyncRunner first(ProcessRunner::Real(), o);
  ASSERT_TRUE(first.Copy({*src_ + "/"}, dir_ + "/snap1/").ok());
  o.extra_args = {"--link-dest=" + dir_ + "/snap1", "--whole-file"};
  ProgressLog log;
  o.on_progress = log.Callback();
  RsyncRunner second(ProcessRunner::Real(), o);
  auto r = second.Copy({*src_ + "/"}, dir_ + "/snap2/");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(TreeDiff(*src_, dir_ + "/snap2"), "");
  EXPECT_EQ(r->stats.total_file_size, src_bytes_);
  EXPECT_EQ(r->stats.total_transferred_file_size, 0u);
  EXPECT_EQ(r->stats.regular_files_transferred, 0u);
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir_ + "/snap2")) {
    if (!e.is_regular_file()) continue;
    struct stat a {}, b {};
    const std::string rel = fs::relative(e.path(), dir_ + "/snap2").string();
    ASSERT_EQ(::stat((dir_ + "/snap1/" + rel).c_str(), &a), 0);
    ASSERT_EQ(::stat(e.path().c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino) << rel;
    ++files;
  }
  EXPECT_EQ(files, 300);
  log.ExpectMonotonicEndingAt100();  // 100% even though nothing moved
}

TEST_F(RsyncLocalTest, KilledMidTransferIsRetriedAndResumes) {
  CountingRunner runner;
  RsyncOptions o = FastRetryOptions();
  o.extra_args = {"--bwlimit=20000"};  // ~1.5 s for the tree: time to kill it midway
  bool killed = false;
  ProgressLog log;
  auto record = log.Callback();
  o.on_progress = [&](const RsyncProgress& p) {
    record(p);
    if (!killed && p.attempt == 1 && p.bytes_done > src_bytes_ / 3) {
      for (pid_t pid : ChildrenNamed("rsync")) ::kill(pid, SIGKILL);
      killed = true;
    }
  };
  RsyncRunner rsync(&runner, o);
  auto r = rsync.Copy({*src_ + "/"}, dir_ + "/snap/");
  ASSERT_TRUE(killed);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->attempts, 2);
  EXPECT_EQ(runner.runs, 2);
  EXPECT_EQ(TreeDiff(*src_, dir_ + "/snap"), "");
  // Resumed: the second attempt did not start over.
  EXPECT_LT(r->stats.total_transferred_file_size, src_bytes_ * 3 / 4);
  EXPECT_LT(r->stats.regular_files_transferred, 300u);
  log.ExpectMonotonicEndingAt100();
  EXPECT_EQ(log.events.back().attempt, 2);
}

TEST_F(RsyncLocalTest, FullDestinationIsNoSpaceWithoutRetryStorm) {
  if (!MountTmpfs("tiny", "size=1m")) GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  CountingRunner runner;
  RsyncRunner rsync(&runner, FastRetryOptions());
  auto r = rsync.Copy({*src_ + "/"}, dir_ + "/tiny/snap/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNoSpace) << r.status().ToString();
  EXPECT_EQ(runner.runs, 1);  // disk full is not retried
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("out of space"), std::string::npos) << m;
  EXPECT_NE(m.find("No space left on device"), std::string::npos) << m;
  EXPECT_NE(m.find(dir_ + "/tiny/snap/"), std::string::npos) << m;
}

TEST_F(RsyncLocalTest, ReadOnlyDestinationIsPermissionDenied) {
  if (!MountTmpfs("ro", "size=1m", MS_RDONLY)) GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  CountingRunner runner;
  RsyncRunner rsync(&runner, FastRetryOptions());
  auto r = rsync.Copy({*src_ + "/"}, dir_ + "/ro/snap/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().ToString();
  EXPECT_NE(r.status().message().find("read-only"), std::string::npos) << r.status().message();
  EXPECT_EQ(runner.runs, 1);
}

TEST_F(RsyncLocalTest, MissingSourceIsNotFoundWithTheReason) {
  RsyncRunner rsync(ProcessRunner::Real(), FastRetryOptions());
  auto r = rsync.Copy({dir_ + "/no-such-checkpoint/"}, dir_ + "/snap/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
  EXPECT_NE(r.status().message().find("no-such-checkpoint"), std::string::npos) << r.status().message();
}

TEST_F(RsyncLocalTest, CancellationStopsTheCopy) {
  std::atomic<bool> stop{false};
  RsyncOptions o = FastRetryOptions();
  o.extra_args = {"--bwlimit=5000"};
  o.on_progress = [&](const RsyncProgress& p) {
    if (p.bytes_done > 0) stop = true;
  };
  o.cancelled = [&] { return stop.load(); };
  RsyncRunner rsync(ProcessRunner::Real(), o);
  const int64_t start = MonotonicMs();
  auto r = rsync.Copy({*src_ + "/"}, dir_ + "/snap/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kAborted) << r.status().ToString();
  EXPECT_LT(MonotonicMs() - start, 4000);
}

TEST_F(RsyncLocalTest, ListRemoteReturnsNamesSizesAndTypes) {
  fs::create_directories(dir_ + "/snapshots/s1");
  std::ofstream(dir_ + "/snapshots/DONE") << "12345";
  fs::create_symlink("s1", dir_ + "/snapshots/latest");
  RsyncRunner rsync(ProcessRunner::Real(), FastRetryOptions());
  auto list = rsync.ListRemote(dir_ + "/snapshots");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0].name, "DONE");
  EXPECT_EQ((*list)[0].type, RemoteEntry::Type::kFile);
  EXPECT_EQ((*list)[0].size, 5u);
  EXPECT_EQ((*list)[1].name, "latest");
  EXPECT_EQ((*list)[1].type, RemoteEntry::Type::kSymlink);
  EXPECT_EQ((*list)[2].name, "s1");
  EXPECT_EQ((*list)[2].type, RemoteEntry::Type::kDirectory);

  // A listing larger than a ProcessResult's 64 KiB output tail.
  for (int i = 0; i < 1500; ++i) {
    fs::create_directories(dir_ + "/many/d" + std::to_string(i % 10));
    std::ofstream(dir_ + "/many/d" + std::to_string(i % 10) + "/file-" + std::to_string(i) + ".sst");
  }
  auto tree = rsync.ListRemote(dir_ + "/many", /*recursive=*/true);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  EXPECT_EQ(tree->size(), 1510u);  // 1500 files + 10 directories
  EXPECT_EQ(tree->front().name, "d0");
  EXPECT_EQ(tree->back().name, "d9/file-999.sst");

  auto missing = rsync.ListRemote(dir_ + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().ToString();
}

// ---------------------------------------------------------------------------
// Real rsync over a real sshd on loopback

class RsyncSshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SshdServer::Available()) GTEST_SKIP() << SshdServer::kSshd << " or ssh-keygen is not installed";
    Status s = sshd_.Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
    dir_ = MakeTempDir("ssh");
    src_ = dir_ + "/src";
    src_bytes_ = WriteTree(src_, 40, 2, 1'000'000, 3);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  SshdServer sshd_;
  std::string dir_, src_;
  uint64_t src_bytes_ = 0;
};

TEST_F(RsyncSshTest, CopiesOverSshWithTheGeneratedKeyAndProgressFlowsWhileRsyncIsSilent) {
  ProgressLog log;
  RsyncOptions o = FastRetryOptions();
  o.ssh_argv = sshd_.SshArgv(sshd_.client_key());
  // The remote rsync starts only after 1.5 s of silence: the heartbeat must
  // keep progress events coming meanwhile.
  o.extra_args = {"--rsync-path=sleep 1.5; rsync"};
  o.on_progress = log.Callback();
  RsyncRunner rsync(ProcessRunner::Real(), o);
  auto r = rsync.Copy({src_ + "/"}, "root@127.0.0.1:" + dir_ + "/dst/");
  ASSERT_TRUE(r.ok()) << r.status().ToString() << "\nsshd log:\n" << sshd_.log();
  EXPECT_EQ(TreeDiff(src_, dir_ + "/dst"), "");
  EXPECT_EQ(r->stats.total_file_size, src_bytes_);
  EXPECT_GE(log.events.size(), 3u);
  EXPECT_LT(log.MaxGapMs(), 1000);
  log.ExpectMonotonicEndingAt100();

  auto list = rsync.ListRemote("root@127.0.0.1:" + dir_ + "/dst");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 6u);  // big-0.sst big-1.sst dir0..dir3
  EXPECT_EQ((*list)[0].name, "big-0.sst");
  EXPECT_EQ((*list)[0].size, 1'000'000u);

  auto cmd = rsync.RunOnHost("root@127.0.0.1", {"sh", "-c", "echo \"$1\"; exit 3", "sh", "it's a 'quoted' arg"});
  ASSERT_TRUE(cmd.ok()) << cmd.status().ToString();
  EXPECT_EQ(cmd->exit_code, 3);
  EXPECT_EQ(cmd->stdout_tail, "it's a 'quoted' arg\n");
}

TEST_F(RsyncSshTest, UnreachableDestinationIsUnavailableAfterTheConfiguredAttempts) {
  CountingRunner runner;
  RsyncOptions o = FastRetryOptions();
  o.max_attempts = 3;
  o.ssh_argv = sshd_.SshArgv(sshd_.client_key(), FreeLoopbackPort());  // nothing listens there
  RsyncRunner rsync(&runner, o);
  auto r = rsync.Copy({src_ + "/"}, "root@127.0.0.1:" + dir_ + "/dst/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
  EXPECT_EQ(runner.runs, 3);
  const std::string& m = r.status().message();
  EXPECT_NE(m.find("Connection refused"), std::string::npos) << m;
  EXPECT_NE(m.find("cannot be reached"), std::string::npos) << m;
  EXPECT_NE(m.find("gave up after 3 attempts"), std::string::npos) << m;

  auto host = rsync.RunOnHost("root@127.0.0.1", {"true"});
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.status().code(), StatusCode::kUnavailable);
}

TEST_F(RsyncSshTest, WrongKeyIsPermissionDeniedWithoutRetries) {
  CountingRunner runner;
  RsyncOptions o = FastRetryOptions();
  o.ssh_argv = sshd_.SshArgv(sshd_.wrong_key());
  RsyncRunner rsync(&runner, o);
  auto r = rsync.Copy({src_ + "/"}, "root@127.0.0.1:" + dir_ + "/dst/");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied) << r.status().ToString();
  EXPECT_NE(r.status().message().find("SSH authentication failed"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("authorized_keys"), std::string::npos);
  EXPECT_EQ(runner.runs, 1);
}

// ---------------------------------------------------------------------------
// Real rsync against a real rsync daemon on loopback

class RsyncDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("daemon");
    fs::create_directories(dir_ + "/module");
    fs::create_directories(dir_ + "/readonly");
    src_ = dir_ + "/src";
    WriteTree(src_, 30, 1, 2'000'000, 9);
    port_ = FreeLoopbackPort();
    const std::string conf = dir_ + "/rsyncd.conf";
    std::ofstream(conf) << "pid file = " << dir_ << "/rsyncd.pid\n"
                        << "use chroot = no\n"
                        << "[backup]\n  path = " << dir_ << "/module\n  read only = no\n  uid = root\n  gid = root\n"
                        << "[ro]\n  path = " << dir_ << "/readonly\n  read only = yes\n"
                        << "[secure]\n  path = " << dir_ << "/module\n  read only = no\n  uid = root\n"
                        << "  gid = root\n  auth users = alice\n  secrets file = " << dir_ << "/secrets\n";
    std::ofstream(dir_ + "/secrets") << "alice:right-password\n";
    ::chmod((dir_ + "/secrets").c_str(), 0600);
    const std::string log = dir_ + "/rsyncd.log";
    auto id = ProcessRunner::Real()->Spawn({"rsync", "--daemon", "--no-detach", "--address=127.0.0.1",
                                            "--port=" + std::to_string(port_), "--config=" + conf,
                                            "--log-file=" + log},
                                           dir_ + "/rsyncd.out");
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    daemon_ = *id;
    Status s = testing::WaitUntilListening(daemon_, port_, dir_ + "/rsyncd.out");
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void TearDown() override {
    testing::StopDaemon(daemon_);
    fs::remove_all(dir_);
  }
  std::string Url(const std::string& module_path) const {
    return "rsync://127.0.0.1:" + std::to_string(port_) + "/" + module_path;
  }

  std::string dir_, src_;
  int port_ = 0;
  ProcessId daemon_;
};

TEST_F(RsyncDaemonTest, CopiesToAWritableModule) {
  ProgressLog log;
  RsyncOptions o = FastRetryOptions();
  o.on_progress = log.Callback();
  RsyncRunner rsync(ProcessRunner::Real(), o);
  auto r = rsync.Copy({src_ + "/"}, Url("backup/node1/"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(TreeDiff(src_, dir_ + "/module/node1"), "");
  log.ExpectMonotonicEndingAt100();
  auto list = rsync.ListRemote(Url("backup/node1"));
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->size(), 5u);  // big-0.sst dir0..dir3
}

TEST_F(RsyncDaemonTest, ReadOnlyMissingAndPasswordProtectedModulesAreClearErrors) {
  CountingRunner runner;
  RsyncRunner rsync(&runner, FastRetryOptions());
  auto ro = rsync.Copy({src_ + "/"}, Url("ro/node1/"));
  ASSERT_FALSE(ro.ok());
  EXPECT_EQ(ro.status().code(), StatusCode::kPermissionDenied) << ro.status().ToString();
  EXPECT_NE(ro.status().message().find("module is read-only"), std::string::npos) << ro.status().message();
  EXPECT_EQ(runner.runs, 1);

  auto missing = rsync.Copy({src_ + "/"}, Url("nomodule/node1/"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("no such module"), std::string::npos) << missing.status().message();
  EXPECT_NE(missing.status().message().find("nomodule"), std::string::npos);
  EXPECT_EQ(runner.runs, 2);

  RsyncOptions wrong = FastRetryOptions();
  wrong.env = {{"RSYNC_PASSWORD", "wrong-password"}};
  RsyncRunner bad_auth(&runner, wrong);
  auto denied = bad_auth.Copy({src_ + "/"}, "rsync://alice@127.0.0.1:" + std::to_string(port_) + "/secure/n1/");
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.status().code(), StatusCode::kPermissionDenied) << denied.status().ToString();
  EXPECT_NE(denied.status().message().find("rejected the credentials"), std::string::npos)
      << denied.status().message();
  EXPECT_EQ(runner.runs, 3);

  RsyncOptions right = FastRetryOptions();
  right.env = {{"RSYNC_PASSWORD", "right-password"}};
  RsyncRunner good_auth(ProcessRunner::Real(), right);
  auto allowed = good_auth.Copy({src_ + "/"}, "rsync://alice@127.0.0.1:" + std::to_string(port_) + "/secure/n1/");
  ASSERT_TRUE(allowed.ok()) << allowed.status().ToString();
  EXPECT_EQ(TreeDiff(src_, dir_ + "/module/n1"), "");
}

}  // namespace
}  // namespace ledgerkeep
