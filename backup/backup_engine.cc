#include "backup/backup_engine.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <thread>

#include "backup/backup_source.h"
#include "backup/destination_base.h"
#include "backup/retention.h"
#include "backup/rsync.h"
#include "backup/snapshot_flusher.h"
#include "backup/transfer_progress.h"
#include "common/file_util.h"
#include "common/background_priority.h"
#include "common/parallel_for.h"
#include "ledger/ledger_store.h"

namespace ledgerkeep {

bool IsSnapshotId(const std::string& name) {
  static const std::regex re(R"(^\d{8}T\d{6}\.\d{3}Z$)");
  return std::regex_match(name, re);
}

std::string SnapshotIdFor(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

namespace {

// How long the flusher's last pass may take after the transfer (it flushes
// what is still dirty; the publisher's sync covers anything it leaves).
constexpr int64_t kFlusherFinishMs = 120'000;


// The manifest of snapshot `id`: `cached` (the one this node published
// last) when it is that snapshot's, otherwise the destination's copy.
Result<SnapshotManifest> LoadManifest(Destination& dest, const std::string& id,
                                      const std::optional<SnapshotManifest>& cached) {
  if (cached && cached->snapshot_id == id) return *cached;
  LK_ASSIGN_OR_RETURN(auto text, dest.ReadSmallFile("snapshots/" + id + "/MANIFEST.json"));
  return SnapshotManifest::Parse(text);
}

// Joins its threads when it goes out of scope (every early return of a run
// waits for the work it started alongside).
struct ThreadJoiner {
  std::vector<std::thread> threads;
  void JoinAll() {
    for (auto& t : threads) {
      if (t.joinable()) t.join();
    }
    threads.clear();
  }
  ~ThreadJoiner() { JoinAll(); }
};

}  // namespace


struct BackupEngine::Impl {
  const BackupRunOptions& o;
  const Clock* clock;
  std::string work;
  std::unique_ptr<Destination> dest;

  Impl(const BackupRunOptions& opts, const Clock* c, std::string w, std::unique_ptr<Destination> d)
      : o(opts), clock(c), work(std::move(w)), dest(std::move(d)) {
    CreateDirectories(work, 0700).IgnoreError();  // reported by the first write into it
  }

  // The claim's listing, when the destination listed on the way: used by
  // the first listing only (later listings are fresh).
  std::optional<SnapshotListing> claimed_listing;

  Status Claim(const std::string& create_snapshot) {
    const std::string me = o.cluster_id + " " + o.node_id;
    LK_ASSIGN_OR_RETURN(auto c, dest->Claim(me, create_snapshot));
    claimed_listing = std::move(c.listing);
    if (c.owner == me) {
      if (c.claimed_now) spdlog::info("claimed backup destination {}", dest->Display());
      return Status::OK();
    }
    if (c.lost_race) {
      return Status::FailedPrecondition("backup destination " + dest->Display() + " was just claimed by '" +
                                        c.owner + "'");
    }
    return Status::FailedPrecondition(
        "backup destination " + dest->Display() + " belongs to '" + c.owner + "' (cluster node), not to '" + me +
        "'. Every replica needs its own backup directory: use another destination, e.g. "
        "--destination '/backups/{node}'");
  }

  Result<SnapshotListing> ListSnapshots() {
    if (claimed_listing) {
      SnapshotListing l = std::move(*claimed_listing);
      claimed_listing.reset();
      return l;
    }
    return dest->ListSnapshots();
  }

  static TransferProgress ToProgress(const RsyncProgress& p, const std::string& phase) {
    return ToTransferProgress(p, phase);
  }

  // Phase timings, logged with the result ("claim 12 ms, transfer 900 ms, ...").
  std::string timings;
  int64_t phase_start = 0;
  std::string phase_name;
  void EndPhase() {
    if (phase_name.empty()) return;
    timings += (timings.empty() ? "" : ", ") + phase_name + " " +
               std::to_string(MonotonicMs() - phase_start) + " ms";
    phase_name.clear();
  }

  void Emit(const std::string& phase, double percent) {
    EndPhase();
    phase_name = phase;
    phase_start = MonotonicMs();
    if (!o.on_progress) return;
    TransferProgress p;
    p.phase = phase;
    p.percent = percent;
    o.on_progress(p);
  }

  // Splits `files` into the ones rsync sends (new, or changed since
  // `previous` by size or mtime) and the ones it hard-links.
  static void SplitNewFiles(const std::vector<ManifestFile>& files, const SnapshotManifest* previous,
                            std::vector<const ManifestFile*>* fresh,
                            std::vector<const ManifestFile*>* unchanged) {
    std::map<std::string, const ManifestFile*> before;
    if (previous) {
      for (const auto& f : previous->files) before[f.path] = &f;
    }
    for (const auto& f : files) {
      auto it = before.find(f.path);
      const bool same = it != before.end() && it->second->size == f.size && it->second->mtime == f.mtime;
      (same ? unchanged : fresh)->push_back(&f);
    }
  }

  // One parallel transfer stream: the files it copies and their bytes.
  struct Stream {
    std::vector<std::string> paths;
    uint64_t bytes = 0;      // all files of the stream
    uint64_t new_bytes = 0;  // files not in the previous snapshot (to send)
  };

  // Splits the files over o.transfer_streams streams, balancing the bytes
  // to send (largest new file first onto the lightest stream); unchanged
  // files, which rsync only hard-links, are dealt round-robin. Returns a
  // single stream when parallelism cannot pay: a live source (rsync must see
  // the whole tree to tolerate vanishing files), fewer than two new files,
  // under o.min_stream_bytes to send per stream, or a bandwidth limit.
  std::vector<Stream> PlanStreams(const std::vector<ManifestFile>& files, const SnapshotManifest* previous,
                                  bool consistent) const {
    std::vector<const ManifestFile*> fresh, unchanged;
    SplitNewFiles(files, previous, &fresh, &unchanged);
    uint64_t fresh_bytes = 0;
    for (const ManifestFile* f : fresh) fresh_bytes += f->size;
    size_t n = static_cast<size_t>(std::clamp(o.transfer_streams, 1, 8));
    n = std::min<size_t>(
        {n, fresh.size(), static_cast<size_t>(fresh_bytes / std::max<uint64_t>(1, o.min_stream_bytes))});
    // A bandwidth limit bounds the transfer, not the cores: one stream
    // (rsync's --bwlimit is per rsync).
    if (!consistent || n < 2 || o.bwlimit_bytes_per_s > 0) return {Stream{}};
    std::vector<Stream> out(n);
    std::sort(fresh.begin(), fresh.end(), [](auto* a, auto* b) { return a->size > b->size; });
    for (const ManifestFile* f : fresh) {
      auto lightest = std::min_element(
          out.begin(), out.end(), [](const Stream& a, const Stream& b) { return a.new_bytes < b.new_bytes; });
      lightest->paths.push_back(f->path);
      lightest->bytes += f->size;
      lightest->new_bytes += f->size;
    }
    for (size_t i = 0; i < unchanged.size(); ++i) {
      out[i % n].paths.push_back(unchanged[i]->path);
      out[i % n].bytes += unchanged[i]->size;
    }
    return out;
  }

  // Runs one rsync per stream (`--files-from`), each on its own thread with
  // its own retries; progress of all streams is summed and reported from
  // this thread about twice a second. The first stream to fail for good
  // stops the others; its error is the result.
  Result<RsyncResult> TransferInStreams(const std::string& id, const std::string& src_dir,
                                        const std::vector<Stream>& streams,
                                        const std::vector<std::string>& args, const std::string& sub) {
    const size_t n = streams.size();
    // The streams would race to create the snapshot directory (--mkpath:
    // "File exists"): it must exist first.
    LK_RETURN_IF_ERROR(dest->MakeSnapshotDir(id));
    std::vector<std::string> lists(n);
    for (size_t i = 0; i < n; ++i) {
      lists[i] = work + "/stream-" + id + "-" + std::to_string(i) + ".list";
      std::string text;
      for (const auto& p : streams[i].paths) text += p + "\n";
      LK_RETURN_IF_ERROR(WriteFileAtomically(lists[i], text, 0600));
    }
    struct Slot {
      std::atomic<uint64_t> done{0};
      std::atomic<uint64_t> rate{0};
      std::atomic<int> attempt{1};
      std::optional<Result<RsyncResult>> result;
    };
    std::vector<Slot> slots(n);
    std::atomic<bool> failed{false};
    std::mutex mu;
    std::condition_variable cv;
    size_t finished = 0;
    std::vector<std::thread> threads;
    threads.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        TransferOptions ro;
        ro.connection = static_cast<int>(i);
        ro.extra_args = args;
        ro.extra_args.push_back("--files-from=" + lists[i]);
        ro.on_progress = [&, i](const RsyncProgress& p) {
          // progress2 counts every file of the stream, the hard-linked ones
          // included: scale its percent onto the stream's bytes.
          slots[i].done = streams[i].bytes * static_cast<uint64_t>(std::clamp(p.percent, 0, 100)) / 100;
          slots[i].rate = p.rate_bps;
          slots[i].attempt = p.attempt;
        };
        ro.cancelled = [&] { return failed.load() || (o.cancelled && o.cancelled()); };
        auto r = dest->Ship({src_dir + "/"}, sub, ro);
        if (!r.ok()) failed = true;
        std::lock_guard<std::mutex> l(mu);
        slots[i].result = std::move(r);
        ++finished;
        cv.notify_all();
      });
    }
    uint64_t total = 0;
    for (const auto& s : streams) total += s.bytes;
    {
      std::unique_lock<std::mutex> l(mu);
      while (finished < n) {
        cv.wait_for(l, std::chrono::milliseconds(500));
        if (finished == n || !o.on_progress) continue;
        RsyncProgress sum;
        for (const auto& s : slots) {
          sum.bytes_done += s.done;
          sum.rate_bps += s.rate;
          sum.attempt = std::max(sum.attempt, s.attempt.load());
        }
        sum.bytes_total = total;
        sum.percent = total ? static_cast<int>(sum.bytes_done * 100 / total) : 0;
        sum.eta_s = sum.rate_bps ? static_cast<int64_t>((total - sum.bytes_done) / sum.rate_bps) : -1;
        l.unlock();
        o.on_progress(ToProgress(sum, "transfer"));
        l.lock();
      }
    }
    for (auto& t : threads) t.join();
    for (const auto& l : lists) ::unlink(l.c_str());
    RsyncResult all;
    std::optional<Status> first_error;
    for (auto& s : slots) {
      auto& r = *s.result;
      if (!r.ok()) {
        // A stream stopped because another failed reports Aborted: prefer
        // the failure that caused it.
        if (!first_error ||
            (first_error->code() == StatusCode::kAborted && r.status().code() != StatusCode::kAborted))
          first_error = r.status();
        continue;
      }
      all.attempts = std::max(all.attempts, r->attempts);
      all.elapsed_ms = std::max(all.elapsed_ms, r->elapsed_ms);
      all.stats.parsed = r->stats.parsed;
      all.stats.total_file_size += r->stats.total_file_size;
      all.stats.total_transferred_file_size += r->stats.total_transferred_file_size;
      all.stats.regular_files_transferred += r->stats.regular_files_transferred;
      all.stats.total_bytes_sent += r->stats.total_bytes_sent;
    }
    if (first_error) return *first_error;
    spdlog::info("snapshot {}: sent in {} parallel streams", id, n);
    return all;
  }

  // RocksDB block checksums of every SST this run has not shipped before
  // (new, or changed since the previous snapshot - an SST never changes, so
  // that is a corruption candidate). Checked before the transfer: a corrupted
  // file fails the run instead of becoming a "verified" snapshot, because the
  // manifest's checksum only proves the copy equals the (bad) source. Files
  // carried over unchanged were verified when they were first shipped.
  Status VerifyNewSstFiles(const std::string& dir, const std::vector<ManifestFile>& files,
                           const SnapshotManifest* previous) {
    std::map<std::string, std::string> shipped;
    if (previous != nullptr) {
      for (const auto& f : previous->files) shipped[f.path] = f.xxh128;
    }
    std::vector<const ManifestFile*> to_check;
    for (const auto& f : files) {
      if (std::filesystem::path(f.path).extension() != ".sst") continue;
      auto p = shipped.find(f.path);
      if (p != shipped.end() && p->second == f.xxh128) continue;
      to_check.push_back(&f);
    }
    std::vector<Status> results(to_check.size());
    ParallelFor(to_check.size(), Parallelism(),
                [&](size_t i) { results[i] = ledger::VerifySstFile(dir + "/" + to_check[i]->path); });
    for (size_t i = 0; i < to_check.size(); ++i) {
      const Status& s = results[i];
      if (s.code() == StatusCode::kNotFound) continue;  // a live copy's file that compaction deleted
      if (s.code() == StatusCode::kCorruption) {
        const std::string& path = to_check[i]->path;
        const bool changed = shipped.count(path) != 0;
        return Status::Corruption(
            "the ledger DB of " + o.node_id + " holds a corrupted SST file " + path +
            (changed ? " (changed since snapshot " + previous->snapshot_id + ", SSTs never change)" : "") +
            "; nothing was shipped. Rebuild this replica's DB from its peers. " + s.message());
      }
      LK_RETURN_IF_ERROR(s);
    }
    return Status::OK();
  }

  // Threads for checksumming and checking the source: as many as transfer
  // streams (the node's configured share of its cores for backups).
  int Parallelism() const { return std::clamp(o.transfer_streams, 1, 8); }

  // The manifest this node published last (cached in the work dir when it
  // published it), if any: the source of carried-over checksums.
  std::optional<SnapshotManifest> CachedManifest() const {
    auto text = ReadFileToString(work + "/last_manifest.json");
    if (!text.ok()) return std::nullopt;
    auto m = SnapshotManifest::Parse(*text);
    if (!m.ok()) return std::nullopt;
    return std::move(*m);
  }

  // What claiming the destination learns about it.
  struct DestinationState {
    SnapshotListing listing;
    std::optional<SnapshotManifest> previous;  // the newest complete snapshot's manifest
    std::optional<SnapshotManifest> done;      // the run's own snapshot, when complete already
  };

  Result<DestinationState> ClaimAndList(const std::string& id,
                                        const std::optional<SnapshotManifest>& cached) {
    LK_RETURN_IF_ERROR(Claim(id));
    DestinationState d;
    LK_ASSIGN_OR_RETURN(d.listing, ListSnapshots());
    // A given id (a resumed snapshot) may be older than the newest: it is
    // named for when its checkpoint was taken.
    if (o.snapshot_id.empty() && !d.listing.complete.empty() && id <= d.listing.complete.back()) {
      return Status::FailedPrecondition("the newest snapshot " + d.listing.complete.back() +
                                        " is from the future; is this node's clock right?");
    }
    if (std::find(d.listing.complete.begin(), d.listing.complete.end(), id) != d.listing.complete.end()) {
      // Complete already (a repeated request): nothing to send.
      LK_ASSIGN_OR_RETURN(d.done, LoadManifest(*dest, id, cached));
      return d;
    }
    if (!d.listing.complete.empty()) {
      auto m = LoadManifest(*dest, d.listing.complete.back(), cached);
      if (m.ok()) {
        d.previous = std::move(*m);
      } else {
        spdlog::warn("previous manifest unreadable ({}); checksumming everything", m.status().ToString());
      }
    }
    return d;
  }

  // The run's snapshot is complete at the destination already: the answer
  // is its manifest's, if it holds what this run would have sent.
  Status AnswerComplete(BackupResult& res, const SnapshotManifest& done, const BackupSource& src,
                        int64_t started, size_t complete_snapshots) {
    if (done.last != src.last || done.set_run != o.set_run) {
      return Status::FailedPrecondition("snapshot " + res.snapshot_id + " exists already with other contents (block " +
                                        std::to_string(done.last) + ")");
    }
    spdlog::info("snapshot {} is complete already; nothing to send", res.snapshot_id);
    res.bytes_total = done.bytes_total;
    res.files_total = done.files.size();
    res.manifest_digest = Sha256Hex(done.Serialize());
    res.snapshot_count = static_cast<uint32_t>(std::min<size_t>(complete_snapshots, UINT32_MAX));
    res.duration_ms = clock->NowMs() - started;
    return Status::OK();
  }

  Status RunInto(BackupResult& res) {
    // Checksums on this thread and the ones it starts, rsync and ssh: at the
    // lowest priority when the node asks for it (they inherit it).
    ScopedBackgroundPriority low(o.background);
    const int64_t started = clock->NowMs();
    LK_RETURN_IF_ERROR(CheckSshFiles(o.destination));
    LK_RETURN_IF_ERROR(CreateDirectories(work, 0700));
    const std::string id = o.snapshot_id.empty() ? SnapshotIdFor(started) : o.snapshot_id;
    if (!IsSnapshotId(id)) return Status::InvalidArgument("'" + id + "' is not a snapshot id");
    // Checksums of unchanged SSTs are carried over from the manifest this
    // node published last (cached locally). Without the cache (a new work
    // dir) everything is checksummed, without waiting for the claim.
    const std::optional<SnapshotManifest> carried = CachedManifest();
    // The claim (round trips to the destination) runs alongside the local
    // work: checkpoint, listing and checksumming the source. Nothing is
    // written to the destination before the claim has succeeded.
    std::optional<Result<DestinationState>> claimed;
    int64_t claim_ms = 0;
    ThreadJoiner claimer, warmers;
    Emit("claim", 0);
    phase_name.clear();  // timed on its own thread, below
    claimer.threads.emplace_back([&] {
      const int64_t t0 = MonotonicMs();
      claimed = ClaimAndList(id, carried);
      claim_ms = MonotonicMs() - t0;
    });
    Emit("checkpoint", 0);
    LK_ASSIGN_OR_RETURN(auto src, o.prepared.dir.empty() ? TakeBackupSource(o.ledger_db, o.ledger_control, id)
                                                          : UsePreparedCheckpoint(o.prepared));
    res.consistent = src->consistent;
    res.genesis = src->genesis;
    res.last_reachable = src->last_reachable;
    res.last_block_id = src->last;

    // A given snapshot id may name a snapshot that is complete already (a
    // repeated request): then the claim's answer is awaited first, so a
    // repeat does not checksum the whole source only to send nothing.
    if (!o.snapshot_id.empty()) {
      claimer.JoinAll();
      if (claimed->ok() && (*claimed)->done) {
        const SnapshotManifest& done = *(*claimed)->done;
        EndPhase();
        res.snapshot_id = id;
        res.set_run = o.set_run;
        res.set_block = o.set_block;
        return AnswerComplete(res, done, *src, started, (*claimed)->listing.complete.size());
      }
    }

    Emit("checksum", 0);
    LK_ASSIGN_OR_RETURN(auto files, ListTree(src->dir));
    const SnapshotManifest* before = carried ? &*carried : nullptr;
    // Open the extra streams' connections (SSH) while checksumming.
    for (size_t k = 1, n = PlanStreams(files, before, src->consistent).size(); k < n; ++k)
      warmers.threads.emplace_back([this, k] { dest->WarmUp(static_cast<int>(k)); });
    ScanStats scan;
    LK_RETURN_IF_ERROR(ChecksumFiles(src->dir, files, before, Parallelism(), &scan));
    LK_RETURN_IF_ERROR(VerifyNewSstFiles(src->dir, files, before));
    uint64_t total = 0;
    for (const auto& f : files) total += f.size;
    res.bytes_total = total;
    res.files_total = files.size();
    spdlog::info("snapshot {}: {} files, {} bytes from {} ({} checksums computed, {} carried over)", id,
                 files.size(), total, src->kind, scan.files_hashed, scan.files_reused);

    claimer.JoinAll();
    LK_ASSIGN_OR_RETURN(auto state, std::move(*claimed));
    EndPhase();
    timings += " (claim " + std::to_string(claim_ms) + " ms alongside)";
    const SnapshotListing& listing = state.listing;
    const std::optional<SnapshotManifest>& previous = state.previous;
    res.snapshot_id = id;
    res.set_run = o.set_run;
    res.set_block = o.set_block;
    warmers.JoinAll();
    if (state.done) return AnswerComplete(res, *state.done, *src, started, state.listing.complete.size());

    // Transfer.
    // --modify-window=-1: mtimes compared to the nanosecond. With --link-dest
    // rsync's size+mtime quick check would otherwise hard-link the previous
    // snapshot's CURRENT (or OPTIONS) when the DB rewrote it to the same size
    // within the same second, leaving a snapshot that points at a MANIFEST
    // it does not hold.
    // --chmod: snapshots are private (issue 13) whatever the source's modes.
    std::vector<std::string> transfer_args = {"--whole-file", "--mkpath", "--modify-window=-1", kPrivateChmod};
    // --inplace: each file is written under its final name (no temporary
    // file and rename: ~7% faster). Safe for a consistent source only: the
    // snapshot directory is new, so the only inodes it shares are files
    // --link-dest linked because they equal the source, and a source that
    // cannot change between attempts never makes rsync rewrite one of them
    // (which would change the previous snapshot too). A half-written file
    // has the wrong size or mtime, so a retry sends it again; a snapshot
    // without DONE is never used.
    if (src->consistent) transfer_args.push_back("--inplace");
    if (previous) transfer_args.push_back("--link-dest=../../" + previous->snapshot_id + "/data");
    Emit("transfer", 0);
    const std::string data_dest = "snapshots/" + id + "/data/";
    auto streams = PlanStreams(files, previous ? &*previous : nullptr, src->consistent);
    // New files are flushed on the destination as they arrive (a consistent
    // source only: a live file's final size is not known).
    std::unique_ptr<SnapshotFlusher> flusher;
    if (o.flush_as_written && src->consistent) {
      std::vector<const ManifestFile*> fresh, unchanged;
      SplitNewFiles(files, previous ? &*previous : nullptr, &fresh, &unchanged);
      std::vector<SnapshotFlusher::File> to_flush;
      for (const ManifestFile* f : fresh) to_flush.push_back({f->path, f->size});
      flusher = dest->StartFlusher(id, std::move(to_flush));
    }
    auto copied = [&]() -> Result<RsyncResult> {
      if (streams.size() > 1) return TransferInStreams(id, src->dir, streams, transfer_args, data_dest);
      TransferOptions ro;
      ro.extra_args = transfer_args;
      ro.allow_vanished_source_files = !src->consistent;
      ro.on_progress = [&](const RsyncProgress& p) {
        if (o.on_progress) o.on_progress(ToProgress(p, "transfer"));
      };
      return dest->Ship({src->dir + "/"}, data_dest, ro);
    }();
    if (flusher) {
      // After a failed transfer (e.g. the host cut off) it is not waited for.
      const SnapshotFlusher::Report flushed = flusher->Finish(copied.ok() ? kFlusherFinishMs : 5'000);
      if (flushed.ran) {
        spdlog::info("snapshot {}: {} on the destination as they were written", id, flushed.note);
      } else {
        spdlog::info("snapshot {}: new files not flushed as written ({})", id, flushed.note);
      }
    }
    if (!copied.ok()) return copied.status();
    res.streams = static_cast<uint32_t>(streams.size());
    res.attempts = static_cast<uint32_t>(copied->attempts);
    res.bytes_transferred = copied->stats.total_transferred_file_size;

    // Verify after a broken transfer: a dry run must find nothing left to
    // transfer. (A clean first attempt needs no second pass: rsync checks
    // every file it sends against a whole-file checksum.)
    if (src->consistent && copied->attempts > 1) {
      Emit("verify", 0);
      TransferOptions vo;
      vo.extra_args = {"--whole-file", "--dry-run", "--modify-window=-1", kPrivateChmod};
      auto v = dest->Ship({src->dir + "/"}, data_dest, vo);
      if (!v.ok()) return v.status().WithContext("verifying snapshot " + id);
      if (v->stats.regular_files_transferred != 0) {
        return Status::Corruption("snapshot " + id + " differs from its source after the copy (" +
                                  std::to_string(v->stats.regular_files_transferred) + " files)");
      }
    }

    // Publish: manifest, then DONE.
    SnapshotManifest m;
    m.snapshot_id = id;
    m.cluster_id = o.cluster_id;
    m.node = o.node_id;
    m.consistent = src->consistent;
    m.source = src->kind;
    m.genesis = src->genesis;
    m.last_reachable = src->last_reachable;
    m.last = src->last;
    m.started_at_ms = started;
    m.finished_at_ms = clock->NowMs();
    m.previous = previous ? previous->snapshot_id : "";
    m.bytes_total = total;
    m.bytes_transferred = res.bytes_transferred;
    m.set_run = o.set_run;
    m.set_block = o.set_block;
    m.files = std::move(files);
    const std::string text = m.Serialize();
    res.manifest_digest = Sha256Hex(text);
    Emit("publish", 100);
    LK_RETURN_IF_ERROR(dest->Publish(id, text, res.manifest_digest));
    WriteFileAtomically(work + "/last_manifest.json", text).IgnoreError();  // a cache only
    src.reset();  // release the checkpoint / DB lock before retention

    // Retention and clean-up of incomplete runs.
    Emit("retention", 100);
    std::vector<std::string> complete = listing.complete;
    complete.push_back(id);
    for (const auto& dead : listing.incomplete) {
      if (dead == id) continue;  // this run's own, resumed
      Status s = dest->DeleteSnapshot(dead);
      if (!s.ok()) spdlog::warn("cannot delete incomplete snapshot {}: {}", dead, s.ToString());
    }
    size_t kept = complete.size();
    for (const auto& old : SnapshotsToDelete(complete, clock->NowMs(), {o.keep_last, o.max_age_s})) {
      Status s = dest->DeleteSnapshot(old);
      if (!s.ok()) {
        spdlog::warn("retention: cannot delete {}: {}", old, s.ToString());
      } else {
        spdlog::info("retention: deleted snapshot {}", old);
        --kept;
      }
    }
    // From the listing this run made anyway: no second listing of a remote place.
    res.snapshot_count = static_cast<uint32_t>(std::min<size_t>(kept, UINT32_MAX));
    EndPhase();
    res.duration_ms = clock->NowMs() - started;
    spdlog::info("snapshot {} phases: {}", id, timings);
    return Status::OK();
  }
};

BackupEngine::BackupEngine(ProcessRunner* runner, const Clock* clock, std::string work_dir,
                           DestinationFactory destinations)
    : runner_(runner),
      clock_(clock),
      work_dir_(std::move(work_dir)),
      destinations_(destinations ? std::move(destinations) : DestinationFactory(MakeDestination)) {}

Result<std::unique_ptr<Destination>> BackupEngine::Open(const BackupRunOptions& options) const {
  return destinations_(options.destination, DestinationContextOf(options, runner_, work_dir_));
}

BackupResult BackupEngine::Run(const BackupRunOptions& options) {
  BackupResult res;
  res.destination = options.destination.Display();
  res.scheduled = options.scheduled;
  const int64_t started = clock_->NowMs();
  Status s = CheckSshFiles(options.destination);
  if (s.ok()) {
    auto dest = Open(options);
    if (dest.ok()) {
      Impl impl(options, clock_, work_dir_, std::move(*dest));
      s = impl.RunInto(res);
    } else {
      s = dest.status();
    }
  }
  res.ok = s.ok();
  if (!s.ok()) {
    res.error = s.ToString();
    res.error_code = s.code();
    res.duration_ms = clock_->NowMs() - started;
    spdlog::error("backup to {} failed: {}", res.destination, s.ToString());
  } else {
    spdlog::info("backup {} to {} done: {} bytes sent of {}, consistent={}", res.snapshot_id, res.destination,
                 res.bytes_transferred, res.bytes_total, res.consistent);
  }
  return res;
}

Status BackupEngine::Claim(const BackupRunOptions& options) {
  LK_RETURN_IF_ERROR(CheckSshFiles(options.destination));
  LK_ASSIGN_OR_RETURN(auto dest, Open(options));
  Impl impl(options, clock_, work_dir_, std::move(dest));
  return impl.Claim("");
}

Result<std::vector<SnapshotInfo>> BackupEngine::List(const BackupRunOptions& options) {
  LK_RETURN_IF_ERROR(CheckSshFiles(options.destination));
  LK_ASSIGN_OR_RETURN(auto dest, Open(options));
  Impl impl(options, clock_, work_dir_, std::move(dest));
  return ListSnapshotInfos(*impl.dest, impl.CachedManifest());  // the cache read once, not per snapshot
}

Result<std::vector<SnapshotInfo>> ListSnapshotInfos(Destination& dest,
                                                           const std::optional<SnapshotManifest>& cached) {
  LK_ASSIGN_OR_RETURN(auto listing, dest.ListSnapshots());
  std::vector<SnapshotInfo> out;
  for (const auto& id : listing.complete) {
    SnapshotInfo s;
    s.snapshot_id = id;
    s.complete = true;
    auto m = LoadManifest(dest, id, cached);
    if (m.ok()) {
      s.consistent = m->consistent;
      s.bytes_total = m->bytes_total;
      s.files_total = m->files.size();
      s.genesis = m->genesis;
      s.last_reachable = m->last_reachable;
      s.last_block_id = m->last;
      s.finished_at_ms = m->finished_at_ms;
      s.set_run = m->set_run;
      s.set_block = m->set_block;
    }
    out.push_back(std::move(s));
  }
  for (const auto& id : listing.incomplete) {
    SnapshotInfo s;
    s.snapshot_id = id;
    s.complete = false;
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.snapshot_id < b.snapshot_id; });
  return out;
}

}  // namespace ledgerkeep
