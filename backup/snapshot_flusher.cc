#include "backup/snapshot_flusher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "backup/rsync.h"
#include "common/clock.h"

namespace ledgerkeep {
namespace {

constexpr int64_t kPollMs = 50;
// sshd hands the remote command to the shell as one argument, and Linux
// caps one argument at 128 KiB: the file list must fit well under that.
constexpr size_t kMaxRemoteCommand = 100 * 1024;
// The remote program's exit code when the host has no such interpreter.
constexpr int kNoInterpreter = 97;

// The remote flusher: the same loop as LocalFlusher below, for the backup
// host. argv: data dir, then the list ("<size> <path>" lines). Ends when
// every file is flushed, or at EOF on stdin (the transfer is over: a last
// pass takes what is left); prints "flushed N". (os.read and os._exit: a
// thread blocked in sys.stdin at interpreter shutdown aborts Python.)
constexpr char kRemoteProgram[] = R"PY(import os, sys, threading
d = sys.argv[1]
pending = {}
for line in sys.argv[2].splitlines():
    size, _, path = line.partition(" ")
    pending[path] = int(size)
over = threading.Event()
def wait_for_eof():
    try:
        while os.read(0, 4096):
            pass
    finally:
        over.set()
threading.Thread(target=wait_for_eof, daemon=True).start()
flushed = 0
def flush(path):
    global flushed
    try:
        fd = os.open(os.path.join(d, path), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        flushed += 1
    except OSError:
        pass
    finally:
        os.close(fd)
while pending and not over.wait(0.05):
    for path, size in list(pending.items()):
        try:
            if os.stat(os.path.join(d, path)).st_size != size:
                continue
        except OSError:
            continue
        flush(path)
        del pending[path]
for path in pending:
    flush(path)
sys.stdout.write("flushed %d\n" % flushed)
sys.stdout.flush()
os._exit(0)
)PY";

// fdatasync, then drop the file's pages; false if it cannot be flushed
// (not there yet, or an I/O error the publisher's sync will report).
bool FlushAndDrop(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fdatasync(fd) == 0;
  if (ok) ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  return ok;
}

class NoFlusher final : public SnapshotFlusher {
 public:
  explicit NoFlusher(std::string why) : why_(std::move(why)) {}
  Report Finish(int64_t) override { return Report{false, 0, why_}; }

 private:
  std::string why_;
};

class LocalFlusher final : public SnapshotFlusher {
 public:
  LocalFlusher(std::string dir, std::vector<File> files) : dir_(std::move(dir)) {
    for (auto& f : files) pending_[f.path] = f.size;
    thread_ = std::thread([this] { Loop(); });
  }
  ~LocalFlusher() override { Finish(0); }

  Report Finish(int64_t) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      over_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return Report{true, flushed_, "flushed " + std::to_string(flushed_) + " files"};
  }

 private:
  void Loop() {
    while (!pending_.empty()) {
      {
        std::unique_lock<std::mutex> l(mu_);
        if (cv_.wait_for(l, std::chrono::milliseconds(kPollMs), [this] { return over_; })) break;
      }
      for (auto it = pending_.begin(); it != pending_.end();) {
        const std::string path = dir_ + "/" + it->first;
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0 || static_cast<uint64_t>(st.st_size) != it->second) {
          ++it;
          continue;
        }
        if (FlushAndDrop(path)) ++flushed_;
        it = pending_.erase(it);
      }
    }
    for (const auto& [path, size] : pending_) {
      if (FlushAndDrop(dir_ + "/" + path)) ++flushed_;
    }
  }

  const std::string dir_;
  std::map<std::string, uint64_t> pending_;  // the loop thread's
  uint64_t flushed_ = 0;                     // read after join
  std::mutex mu_;
  std::condition_variable cv_;
  bool over_ = false;
  std::thread thread_;
};

class RemoteFlusher final : public SnapshotFlusher {
 public:
  RemoteFlusher(ProcessRunner* runner, std::vector<std::string> argv, std::string host, std::string python,
                int stdin_read, int stdin_write)
      : host_(std::move(host)),
        python_(std::move(python)),
        stdin_read_(stdin_read),
        stdin_write_(stdin_write) {
    thread_ = std::thread([this, runner, argv = std::move(argv)] {
      RunOptions ro;
      ro.stdin_fd = stdin_read_;
      ro.cancelled = [this] { return stop_.load(); };
      ro.term_grace_ms = 2000;
      auto r = runner->RunStreaming(argv, ro);
      std::lock_guard<std::mutex> l(mu_);
      result_ = std::move(r);
      cv_.notify_all();
    });
  }
  ~RemoteFlusher() override { Finish(0); }

  Report Finish(int64_t timeout_ms) override {
    if (!thread_.joinable()) return report_;
    ::close(stdin_write_);  // EOF: the transfer is over
    {
      std::unique_lock<std::mutex> l(mu_);
      if (!cv_.wait_for(l, std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 0)),
                        [this] { return result_.has_value(); })) {
        stop_ = true;
      }
    }
    thread_.join();
    ::close(stdin_read_);
    report_ = Judge();
    return report_;
  }

 private:
  Report Judge() const {
    Report rep;
    if (!result_->ok()) {
      rep.note = "could not run: " + result_->status().ToString();
      return rep;
    }
    const ProcessResult& r = **result_;
    if (r.exit_code == kNoInterpreter) {
      rep.note = "no " + python_ + " on " + host_ + " (install it there to flush snapshots as they arrive)";
      return rep;
    }
    const std::string& out = r.stdout_tail;
    const size_t at = out.rfind("flushed ");
    if (r.exit_code != 0 || at == std::string::npos) {
      rep.note = std::string(r.cancelled ? "stopped after the time limit" : "failed") + " (exit " +
                 std::to_string(r.exit_code) + "): " + r.output.substr(0, 400);
      return rep;
    }
    rep.ran = true;
    rep.flushed = std::strtoull(out.c_str() + at + 8, nullptr, 10);
    rep.note = "flushed " + std::to_string(rep.flushed) + " files";
    return rep;
  }

  const std::string host_, python_;
  const int stdin_read_, stdin_write_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Result<ProcessResult>> result_;
  Report report_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<SnapshotFlusher> SnapshotFlusher::None(std::string why) {
  return std::make_unique<NoFlusher>(std::move(why));
}

std::unique_ptr<SnapshotFlusher> SnapshotFlusher::Local(const std::string& data_dir, std::vector<File> files) {
  if (files.empty()) return std::make_unique<NoFlusher>("no new files");
  return std::make_unique<LocalFlusher>(data_dir, std::move(files));
}

std::unique_ptr<SnapshotFlusher> SnapshotFlusher::OverSsh(ProcessRunner* runner,
                                                          const std::vector<std::string>& ssh_argv,
                                                          const std::string& user_host,
                                                          const std::string& data_dir, std::vector<File> files,
                                                          const std::string& python) {
  if (files.empty()) return std::make_unique<NoFlusher>("no new files");
  std::string list;
  for (const auto& f : files) {
    if (f.path.find('\n') != std::string::npos)
      return std::make_unique<NoFlusher>("a file name holds a newline");
    list += std::to_string(f.size) + " " + f.path + "\n";
  }
  if (list.size() + sizeof kRemoteProgram > kMaxRemoteCommand) {
    return std::make_unique<NoFlusher>(std::to_string(files.size()) +
                                       " new files are too many to list in one remote command");
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::make_unique<NoFlusher>("no pipe");
  auto argv = RemoteCommandArgv(ssh_argv, user_host,
                                {"sh", "-c",
                                 "command -v \"$1\" >/dev/null 2>&1 || exit " +
                                     std::to_string(kNoInterpreter) + "; exec \"$1\" -c \"$2\" \"$3\" \"$4\"",
                                 "sh", python, kRemoteProgram, data_dir, list});
  if (!argv.ok()) {
    ::close(fds[0]);
    ::close(fds[1]);
    return std::make_unique<NoFlusher>(argv.status().message());
  }
  return std::make_unique<RemoteFlusher>(runner, std::move(*argv), user_host, python, fds[0],
                                         fds[1]);
}

}  // namespace ledgerkeep
