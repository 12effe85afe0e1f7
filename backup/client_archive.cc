#include "backup/client_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <locale.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <unordered_set>

#include "common/clock.h"
#include "common/file_util.h"
#include "common/sha256.h"

namespace ledgerkeep {

namespace {

namespace fs = std::filesystem;

constexpr size_t kBufferBytes = 1 << 20;  // the one data buffer of a write or hash
constexpr size_t kMaxChangedListed = 100;

// ------------------------------------------------------------ small RAII

struct ArchiveWriteFree {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct ArchiveReadFree {
  void operator()(struct archive* a) const { archive_read_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
struct LinkResolverFree {
  void operator()(archive_entry_linkresolver* r) const { archive_entry_linkresolver_free(r); }
};
using WriterPtr = std::unique_ptr<struct archive, ArchiveWriteFree>;
using ReaderPtr = std::unique_ptr<struct archive, ArchiveReadFree>;
using EntryPtr = std::unique_ptr<archive_entry, EntryFree>;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // close(2) reports deferred write errors (NFS, quotas): check it once.
  Status CloseChecked(const std::string& what) {
    const int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0) return Status::FromErrno(errno, what);
    return Status::OK();
  }

 private:
  int fd_;
};

// libarchive converts names between the locale's charset and the UTF-8 of
// pax headers. Daemons run in the "C" locale, where any non-ASCII name fails
// to convert and gets a `hdrcharset=BINARY` header that GNU tar warns about.
// File names on our hosts are UTF-8, so archive and extract with a UTF-8
// LC_CTYPE, for this thread only (uselocale), restored afterwards.
class ScopedUtf8Ctype {
 public:
  ScopedUtf8Ctype() {
    for (const char* name : {"C.UTF-8", "C.utf8", "en_US.UTF-8"}) {
      utf8_ = ::newlocale(LC_CTYPE_MASK, name, static_cast<locale_t>(0));
      if (utf8_ != static_cast<locale_t>(0)) break;
    }
    if (utf8_ != static_cast<locale_t>(0)) previous_ = ::uselocale(utf8_);
  }
  ~ScopedUtf8Ctype() {
    if (utf8_ == static_cast<locale_t>(0)) return;
    ::uselocale(previous_);
    ::freelocale(utf8_);
  }
  ScopedUtf8Ctype(const ScopedUtf8Ctype&) = delete;
  ScopedUtf8Ctype& operator=(const ScopedUtf8Ctype&) = delete;

 private:
  locale_t utf8_ = static_cast<locale_t>(0);
  locale_t previous_ = static_cast<locale_t>(0);
};

// Reads all of fd (EINTR-safe) through `sink`; errors name `what`.
template <typename Sink>
Status ReadAll(int fd, const std::string& what, std::vector<char>& buf, Sink&& sink) {
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read " + what);
    }
    if (n == 0) return Status::OK();
    sink(buf.data(), static_cast<size_t>(n));
  }
}

// ------------------------------------------------------------ names

// The entry name `tar czf x PATH` gives PATH: lexically normal, no trailing
// '/', leading '/' stripped. A path with ".." is made absolute first, so no
// name ever climbs.
Result<std::string> TopLevelName(const std::string& path) {
  if (path.empty()) return Status::InvalidArgument("empty path in the list of paths to archive");
  fs::path p = fs::path(path).lexically_normal();
  bool climbs = false;
  for (const auto& part : p) climbs = climbs || part == "..";
  if (climbs) {
    std::error_code ec;
    p = fs::absolute(p, ec).lexically_normal();
    if (ec) return Status::InvalidArgument("cannot make '" + path + "' absolute: " + ec.message());
  }
  std::string name = p.string();
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  size_t skip = 0;
  while (skip < name.size() && name[skip] == '/') ++skip;
  name = name.substr(skip);
  if (name.empty()) return Status::InvalidArgument("refusing to archive the root directory '" + path + "'");
  return name;
}

// True if `name` (an archive member name) is absolute or has a ".." part.
bool NameEscapes(std::string_view name) {
  if (name.empty() || name.front() == '/') return true;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t end = name.find('/', pos);
    if (end == std::string_view::npos) end = name.size();
    if (name.substr(pos, end - pos) == "..") return true;
    pos = end + 1;
  }
  return false;
}

// ------------------------------------------------------------ owner names

class OwnerNames {
 public:
  const std::string& User(uid_t uid) {
    auto it = users_.find(uid);
    if (it != users_.end()) return it->second;
    std::string name;
    std::vector<char> buf(16384);
    struct passwd pw {};
    struct passwd* out = nullptr;
    if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &out) == 0 && out != nullptr) name = out->pw_name;
    return users_.emplace(uid, std::move(name)).first->second;
  }
  const std::string& Group(gid_t gid) {
    auto it = groups_.find(gid);
    if (it != groups_.end()) return it->second;
    std::string name;
    std::vector<char> buf(16384);
    struct group gr {};
    struct group* out = nullptr;
    if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &out) == 0 && out != nullptr) name = out->gr_name;
    return groups_.emplace(gid, std::move(name)).first->second;
  }

 private:
  std::map<uid_t, std::string> users_;
  std::map<gid_t, std::string> groups_;
};

// ------------------------------------------------------------ the walk

struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool Is(const struct stat& st) const { return ino != 0 && st.st_dev == dev && st.st_ino == ino; }
};

struct WalkItem {
  const std::string& fs_path;  // where it is on disk
  const std::string& name;     // its archive name
  const struct stat& st;
};

// Visits every entry under the given paths in archive order (a directory
// before its children, children sorted by name), each name once. Both the
// counting scan and the write use it, so they agree on what is archived.
class TreeWalker {
 public:
  using Visit = std::function<Status(const WalkItem&)>;
  TreeWalker(bool follow_top, std::vector<FileId> skip) : follow_top_(follow_top), skip_(std::move(skip)) {}

  Status Walk(const std::vector<std::string>& paths, const Visit& visit) {
    seen_.clear();
    skipped_ = 0;
    for (const auto& path : paths) {
      LK_ASSIGN_OR_RETURN(std::string name, TopLevelName(path));
      struct stat st {};
      int rc = follow_top_ ? ::stat(path.c_str(), &st) : ::lstat(path.c_str(), &st);
      if (rc != 0 && follow_top_ && errno == ENOENT && ::lstat(path.c_str(), &st) == 0)
        rc = 0;  // dangling link
      if (rc != 0) {
        const int err = errno;
        if (err == ENOENT) {
          return Status::NotFound("cannot archive '" + path +
                                  "': it does not exist (check the [client] paths "
                                  "of the node config or the --path given)");
        }
        return Status::FromErrno(err, "cannot archive '" + path + "': stat");
      }
      LK_RETURN_IF_ERROR(Visit1(path, name, st, visit));
    }
    return Status::OK();
  }

 private:
  Status Visit1(const std::string& fs_path, const std::string& name, const struct stat& st,
                const Visit& visit) {
    if (!seen_.insert(name).second) return Status::OK();  // given twice, or under another given path
    for (const auto& s : skip_) {
      if (s.Is(st)) {
        ++skipped_;
        return Status::OK();
      }
    }
    if (S_ISSOCK(st.st_mode)) {  // tar: "socket ignored"
      ++skipped_;
      return Status::OK();
    }
    LK_RETURN_IF_ERROR(visit(WalkItem{fs_path, name, st}));
    if (!S_ISDIR(st.st_mode)) return Status::OK();

    std::vector<std::string> children;
    {
      DIR* d = ::opendir(fs_path.c_str());
      if (d == nullptr) {
        const int err = errno;
        if (err == ENOENT) return Vanished(fs_path);
        return Status::FromErrno(err, "cannot archive directory '" + fs_path + "': opendir");
      }
      errno = 0;
      while (struct dirent* de = ::readdir(d)) {
        if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0)
          children.emplace_back(de->d_name);
        errno = 0;
      }
      const int err = errno;
      ::closedir(d);
      if (err != 0) return Status::FromErrno(err, "cannot archive directory '" + fs_path + "': readdir");
    }
    std::sort(children.begin(), children.end());
    for (const auto& c : children) {
      const std::string child_path = fs_path == "/" ? "/" + c : fs_path + "/" + c;
      struct stat cst {};
      if (::lstat(child_path.c_str(), &cst) != 0) {
        const int err = errno;
        if (err == ENOENT) return Vanished(child_path);
        return Status::FromErrno(err, "cannot archive '" + child_path + "': lstat");
      }
      LK_RETURN_IF_ERROR(Visit1(child_path, name + "/" + c, cst, visit));
    }
    return Status::OK();
  }

 public:
  static Status Vanished(const std::string& path) {
    return Status::NotFound("'" + path +
                            "' vanished while it was being archived; stop the component that "
                            "writes there (ledgerkeep node stop) before a client backup");
  }
  uint64_t skipped() const { return skipped_; }

 private:
  bool follow_top_;
  std::vector<FileId> skip_;
  std::unordered_set<std::string> seen_;
  uint64_t skipped_ = 0;
};

// ------------------------------------------------------------ writing

// Where libarchive's output goes: the .tmp file, hashed and counted on the way.
struct OutputSink {
  int fd = -1;
  std::string path;
  Sha256 sha;
  uint64_t bytes = 0;
  Status error;
};

la_ssize_t SinkWrite(struct archive* a, void* client, const void* buf, size_t n) {
  auto* sink = static_cast<OutputSink*>(client);
  const char* p = static_cast<const char*>(buf);
  size_t left = n;
  while (left > 0) {
    const ssize_t w = ::write(sink->fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      sink->error = Status::FromErrno(err, "write " + sink->path);
      archive_set_error(a, err, "%s", sink->error.message().c_str());
      return -1;
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  sink->sha.Update(buf, n);
  sink->bytes += n;
  return static_cast<la_ssize_t>(n);
}

class TarGzWriter {
 public:
  TarGzWriter(const std::vector<std::string>& paths, std::string out, const ArchiveOptions& o)
      : paths_(paths), out_(std::move(out)), tmp_(out_ + ".tmp"), o_(o), buf_(kBufferBytes) {}

  ~TarGzWriter() {
    if (!published_) {
      writer_.reset();
      sink_fd_.Close();
      ::unlink(tmp_.c_str());
    }
  }

  Result<ArchiveStats> Run() {
    if (paths_.empty()) return Status::InvalidArgument("no paths to archive");
    sink_fd_.Reset(::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (sink_fd_.get() < 0) return Status::FromErrno(errno, "create " + tmp_);
    // Never archive the archive (tar: "file is the archive; not dumped").
    std::vector<FileId> skip;
    struct stat st {};
    if (::fstat(sink_fd_.get(), &st) == 0) skip.push_back({st.st_dev, st.st_ino});
    if (::stat(out_.c_str(), &st) == 0) skip.push_back({st.st_dev, st.st_ino});
    TreeWalker walker(o_.follow_top_level_symlinks, std::move(skip));

    // Pass 1: totals for progress (metadata only).
    {
      std::set<std::pair<dev_t, ino_t>> linked;  // a file with several names is stored once
      LK_RETURN_IF_ERROR(walker.Walk(paths_, [&](const WalkItem& it) {
        ++progress_.files_total;
        if (S_ISREG(it.st.st_mode) &&
            (it.st.st_nlink < 2 || linked.emplace(it.st.st_dev, it.st.st_ino).second)) {
          progress_.bytes_total += static_cast<uint64_t>(it.st.st_size);
        }
        return Status::OK();
      }));
    }
    LK_RETURN_IF_ERROR(Open());
    Report(/*force=*/true);

    // Pass 2: the archive.
    LK_RETURN_IF_ERROR(walker.Walk(paths_, [&](const WalkItem& it) { return WriteItem(it); }));
    stats_.skipped = walker.skipped();
    if (archive_write_close(writer_.get()) != ARCHIVE_OK) return WriterError("finish the archive");
    writer_.reset();

    if (::fsync(sink_fd_.get()) != 0) return Status::FromErrno(errno, "fsync " + tmp_);
    LK_RETURN_IF_ERROR(sink_fd_.CloseChecked("close " + tmp_));
    if (::rename(tmp_.c_str(), out_.c_str()) != 0)
      return Status::FromErrno(errno, "rename " + tmp_ + " to " + out_);
    published_ = true;
    LK_RETURN_IF_ERROR(SyncParentDirectory(out_));

    stats_.archive_bytes = sink_.bytes;
    LK_ASSIGN_OR_RETURN(stats_.sha256, sink_.sha.FinishHex());
    progress_.final = true;
    Report(/*force=*/true);
    return std::move(stats_);
  }

 private:
  Status Open() {
    writer_.reset(archive_write_new());
    entry_.reset(archive_entry_new());
    links_.reset(archive_entry_linkresolver_new());
    if (!writer_ || !entry_ || !links_ || !sink_.sha.ok()) return Status::Internal("out of memory");
    struct archive* a = writer_.get();
    const std::string level = std::to_string(std::clamp(o_.compression_level, 1, 9));
    // (No "hdrcharset=BINARY": it puts a pax header GNU tar warns about on
    // every entry. Only a name that is not valid UTF-8 gets one.)
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
        archive_write_set_filter_option(a, "gzip", "compression-level", level.c_str()) != ARCHIVE_OK ||
        // No zero padding after the gzip stream.
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK) {
      return Status::Internal(std::string("libarchive setup: ") + archive_error_string(a));
    }
    archive_entry_linkresolver_set_strategy(links_.get(), archive_format(a));
    sink_.fd = sink_fd_.get();
    sink_.path = tmp_;
    if (archive_write_open2(a, &sink_, nullptr, SinkWrite, nullptr, nullptr) != ARCHIVE_OK) {
      return WriterError("start the archive");
    }
    return Status::OK();
  }

  Status WriterError(const std::string& doing, const std::string& entry = "") {
    if (!sink_.error.ok()) {
      return sink_.error.WithContext("cannot " + doing + (entry.empty() ? "" : " (at '" + entry + "')"));
    }
    const char* msg = writer_ ? archive_error_string(writer_.get()) : nullptr;
    return Status::IOError("cannot " + doing + " in " + tmp_ +
                           (entry.empty() ? "" : " (at '" + entry + "')") + ": " +
                           (msg ? msg : "libarchive error"));
  }

  Status Checkpoint() {
    if (o_.cancelled && o_.cancelled()) return Status::Aborted("archive " + out_ + " cancelled");
    Report(/*force=*/false);
    return Status::OK();
  }

  void Report(bool force) {
    if (!o_.on_progress) return;
    const int64_t now = MonotonicMs();
    if (!force && now - last_report_ms_ < o_.progress_interval_ms) return;
    last_report_ms_ = now;
    o_.on_progress(progress_);
  }

  Status WriteItem(const WalkItem& it) {
    LK_RETURN_IF_ERROR(Checkpoint());
    const struct stat& st = it.st;
    Fd file;
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
      // Open before the header goes out, so an unreadable file is an error
      // naming it, not a half-written entry.
      file.Reset(::open(it.fs_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
      if (file.get() < 0) {
        const int err = errno;
        if (err == ENOENT) return TreeWalker::Vanished(it.fs_path);
        return Status::FromErrno(err, "cannot read '" + it.fs_path + "'");
      }
      // The very file the walk saw (not one renamed or linked into its place).
      struct stat opened {};
      if (::fstat(file.get(), &opened) != 0)
        return Status::FromErrno(errno, "cannot stat '" + it.fs_path + "'");
      if (opened.st_dev != st.st_dev || opened.st_ino != st.st_ino) return TreeWalker::Vanished(it.fs_path);
    }
    archive_entry* e = entry_.get();
    archive_entry_clear(e);
    archive_entry_copy_pathname(e, it.name.c_str());
    archive_entry_copy_stat(e, &st);
    if (const auto& u = owners_.User(st.st_uid); !u.empty()) archive_entry_copy_uname(e, u.c_str());
    if (const auto& g = owners_.Group(st.st_gid); !g.empty()) archive_entry_copy_gname(e, g.c_str());
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 1, '\0');
      for (;;) {
        const ssize_t n = ::readlink(it.fs_path.c_str(), target.data(), target.size());
        if (n < 0) {
          const int err = errno;
          if (err == ENOENT) return TreeWalker::Vanished(it.fs_path);
          return Status::FromErrno(err, "cannot read symlink '" + it.fs_path + "'");
        }
        if (static_cast<size_t>(n) < target.size()) {
          target.resize(static_cast<size_t>(n));
          break;
        }
        target.resize(target.size() * 2);  // it grew since lstat
      }
      archive_entry_copy_symlink(e, target.c_str());
    }
    if (!S_ISREG(st.st_mode)) archive_entry_set_size(e, 0);

    archive_entry* spare = nullptr;
    archive_entry_linkify(links_.get(), &e, &spare);  // tar strategy: later links lose their body
    if (e == nullptr) return Status::Internal("libarchive link resolver dropped '" + it.name + "'");
    const int64_t size = archive_entry_size(e);

    const int rc = archive_write_header(writer_.get(), e);
    if (rc < ARCHIVE_WARN) return WriterError("write the header of", it.name);
    ++stats_.entries;
    if (S_ISREG(st.st_mode) && size > 0) {
      LK_RETURN_IF_ERROR(CopyData(it, file.get(), static_cast<uint64_t>(size)));
    }
    if (archive_write_finish_entry(writer_.get()) < ARCHIVE_WARN) return WriterError("finish", it.name);
    ++progress_.files_done;
    return Status::OK();
  }

  Status CopyData(const WalkItem& it, int fd, uint64_t size) {
    uint64_t left = size;
    while (left > 0) {
      const size_t want = static_cast<size_t>(std::min<uint64_t>(left, buf_.size()));
      const ssize_t n = ::read(fd, buf_.data(), want);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "cannot read '" + it.fs_path + "'");
      }
      if (n == 0) {
        return Status::IOError("'" + it.fs_path + "' shrank from " + std::to_string(size) + " to " +
                               std::to_string(size - left) +
                               " bytes while it was being archived; stop the component that writes there "
                               "(ledgerkeep node stop) before a client backup");
      }
      const la_ssize_t w = archive_write_data(writer_.get(), buf_.data(), static_cast<size_t>(n));
      if (w < 0 || static_cast<size_t>(w) != static_cast<size_t>(n)) return WriterError("write", it.name);
      left -= static_cast<uint64_t>(n);
      stats_.source_bytes += static_cast<uint64_t>(n);
      progress_.bytes_done += static_cast<uint64_t>(n);
      if (progress_.bytes_done > progress_.bytes_total) progress_.bytes_total = progress_.bytes_done;
      LK_RETURN_IF_ERROR(Checkpoint());
    }
    struct stat after {};
    if (::fstat(fd, &after) == 0 &&
        (after.st_size != it.st.st_size || after.st_mtim.tv_sec != it.st.st_mtim.tv_sec ||
         after.st_mtim.tv_nsec != it.st.st_mtim.tv_nsec) &&
        stats_.changed.size() < kMaxChangedListed) {
      stats_.changed.push_back(it.fs_path);
    }
    return Status::OK();
  }

  const std::vector<std::string>& paths_;
  const std::string out_;
  const std::string tmp_;
  const ArchiveOptions& o_;
  std::vector<char> buf_;
  Fd sink_fd_;
  OutputSink sink_;
  WriterPtr writer_;
  EntryPtr entry_;
  std::unique_ptr<archive_entry_linkresolver, LinkResolverFree> links_;
  OwnerNames owners_;
  ArchiveStats stats_;
  ArchiveProgress progress_;
  int64_t last_report_ms_ = 0;
  bool published_ = false;
};

// ------------------------------------------------------------ extracting

// The archive file as libarchive reads it: hashed and counted on the way.
struct InputSource {
  int fd = -1;
  std::string path;
  std::vector<char> buf;
  Sha256 sha;
  uint64_t bytes = 0;
  Status error;
};

la_ssize_t SourceRead(struct archive* a, void* client, const void** out) {
  auto* src = static_cast<InputSource*>(client);
  for (;;) {
    const ssize_t n = ::read(src->fd, src->buf.data(), src->buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      src->error = Status::FromErrno(err, "read " + src->path);
      archive_set_error(a, err, "%s", src->error.message().c_str());
      return -1;
    }
    src->sha.Update(src->buf.data(), static_cast<size_t>(n));
    src->bytes += static_cast<uint64_t>(n);
    *out = src->buf.data();
    return n;
  }
}

// libarchive reports "the data is wrong" (rather than "the system failed")
// with its private ARCHIVE_ERRNO_FILE_FORMAT (EILSEQ on Linux),
// ARCHIVE_ERRNO_MISC (-1) and ARCHIVE_ERRNO_PROGRAMMER (EINVAL).
bool IsFormatErrno(int err) { return err == 0 || err == -1 || err == EILSEQ || err == EINVAL; }

class TarGzExtractor {
 public:
  TarGzExtractor(std::string archive, std::string to_dir, const ExtractOptions& o)
      : archive_(std::move(archive)), to_dir_(std::move(to_dir)), o_(o) {}

  Result<ExtractStats> Run() {
    src_.fd = ::open(archive_.c_str(), O_RDONLY | O_CLOEXEC);
    if (src_.fd < 0) return Status::FromErrno(errno, "open archive " + archive_);
    src_fd_.Reset(src_.fd);
    struct stat st {};
    if (::fstat(src_.fd, &st) == 0) progress_.archive_bytes_total = static_cast<uint64_t>(st.st_size);
    src_.path = archive_;
    src_.buf.resize(kBufferBytes);
    if (!src_.sha.ok()) return Status::Internal("OpenSSL SHA-256 init failed");

    LK_RETURN_IF_ERROR(CreateDirectories(to_dir_));
    // Canonical (no symlinks, no ".."): SECURE_SYMLINKS checks every
    // component of the paths we hand it, the root's included.
    std::error_code ec;
    root_ = fs::canonical(to_dir_, ec).string();
    if (ec) return Status::IOError("cannot resolve " + to_dir_ + ": " + ec.message());

    reader_.reset(archive_read_new());
    writer_.reset(archive_write_disk_new());
    if (!reader_ || !writer_) return Status::Internal("out of memory");
    struct archive* r = reader_.get();
    struct archive* w = writer_.get();
    archive_read_support_filter_gzip(r);
    archive_read_support_format_tar(r);
    // No SECURE_NOABSOLUTEPATHS: every path handed to libarchive is
    // root_ + "/" + name, absolute by construction; CheckEntry refuses
    // absolute names first.
    int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                ARCHIVE_EXTRACT_SECURE_SYMLINKS;
    if (o_.restore_owner.value_or(::geteuid() == 0)) flags |= ARCHIVE_EXTRACT_OWNER;
    archive_write_disk_set_options(w, flags);
    archive_write_disk_set_standard_lookup(w);
    if (archive_read_open(r, &src_, nullptr, SourceRead, nullptr) != ARCHIVE_OK) {
      return ReadError("open", "");
    }

    std::string last = "(start of archive)";
    for (;;) {
      LK_RETURN_IF_ERROR(Checkpoint());
      archive_entry* e = nullptr;
      const int rc = archive_read_next_header(r, &e);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) return ReadError("read the entry after", last);
      const char* raw = archive_entry_pathname(e);
      const std::string name = raw ? raw : "";
      last = name;
      LK_RETURN_IF_ERROR(CheckEntry(e, name));
      archive_entry_copy_pathname(e, (root_ + "/" + name).c_str());
      if (const char* hl = archive_entry_hardlink(e))
        archive_entry_copy_hardlink(e, (root_ + "/" + hl).c_str());

      if (archive_write_header(w, e) < ARCHIVE_WARN) return WriteError("create", name);
      if (archive_entry_size(e) > 0) LK_RETURN_IF_ERROR(CopyData(name));
      if (archive_write_finish_entry(w) < ARCHIVE_WARN) return WriteError("finish", name);
      ++stats_.entries;
      ++progress_.entries_done;
    }
    // Directory modes and times are applied here, after their contents.
    if (archive_write_close(w) != ARCHIVE_OK) return WriteError("finish directories of", root_);

    if (!o_.expected_sha256.empty()) {
      // The rest of the file (gzip trailer, padding) counts as well.
      LK_RETURN_IF_ERROR(
          ReadAll(src_.fd, archive_, src_.buf, [&](const char* p, size_t n) { src_.sha.Update(p, n); }));
      LK_ASSIGN_OR_RETURN(std::string got, src_.sha.FinishHex());
      if (got != o_.expected_sha256) {
        return Status::Corruption("archive " + archive_ + " has SHA-256 " + got + ", expected " +
                                  o_.expected_sha256 + ": it was damaged after it was written");
      }
    }
    return std::move(stats_);
  }

 private:
  Status CheckEntry(archive_entry* e, const std::string& name) {
    auto refuse = [&](const std::string& why) {
      return Status::InvalidArgument("archive " + archive_ + ": refusing entry '" + name + "': " + why +
                                     "; nothing was written outside " + root_);
    };
    if (name.empty()) return refuse("it has no name");
    if (name.front() == '/') return refuse("its name is an absolute path");
    if (NameEscapes(name)) return refuse("its name has a '..' component");
    if (const char* hl = archive_entry_hardlink(e)) {
      if (NameEscapes(hl))
        return refuse(std::string("it is a hard link to '") + hl + "', outside the archive");
    }
    if (archive_entry_filetype(e) == AE_IFLNK) {
      const char* t = archive_entry_symlink(e);
      const std::string target = t ? t : "";
      if (target.empty()) return refuse("it is a symlink without a target");
      if (target.front() == '/') return refuse("it is a symlink to the absolute path '" + target + "'");
      const fs::path resolved = (fs::path(name).parent_path() / target).lexically_normal();
      if (!resolved.empty() && *resolved.begin() == "..") {
        return refuse("it is a symlink to '" + target + "', which leads out of the extraction directory");
      }
    }
    return Status::OK();
  }

  Status CopyData(const std::string& name) {
    struct archive* r = reader_.get();
    for (;;) {
      const void* block = nullptr;
      size_t size = 0;
      la_int64_t offset = 0;
      const int rc = archive_read_data_block(r, &block, &size, &offset);
      if (rc == ARCHIVE_EOF) return Status::OK();
      if (rc < ARCHIVE_WARN) return ReadError("read the data of", name);
      if (archive_write_data_block(writer_.get(), block, size, offset) < ARCHIVE_WARN) {
        return WriteError("write", name);
      }
      stats_.bytes += size;
      progress_.bytes_written += size;
      LK_RETURN_IF_ERROR(Checkpoint());
    }
  }

  Status ReadError(const std::string& doing, const std::string& entry) {
    if (!src_.error.ok()) return src_.error;
    const int err = archive_errno(reader_.get());
    const char* msg = archive_error_string(reader_.get());
    const std::string what = "cannot " + doing + (entry.empty() ? "" : " '" + entry + "'") + " in archive " +
                             archive_ + ": " + (msg ? msg : "libarchive error");
    if (IsFormatErrno(err)) {
      return Status::Corruption(what +
                                " (the archive is truncated or damaged; check it against its .sha256)");
    }
    return Status::FromErrno(err, what);
  }

  Status WriteError(const std::string& doing, const std::string& entry) {
    const int err = archive_errno(writer_.get());
    const char* msg = archive_error_string(writer_.get());
    const std::string what =
        "cannot " + doing + " '" + entry + "' under " + root_ + ": " + (msg ? msg : "libarchive error");
    if (IsFormatErrno(err)) return Status::InvalidArgument(what);  // libarchive's own refusals
    return Status(Status::FromErrno(err, what).code(), what);
  }

  Status Checkpoint() {
    if (o_.cancelled && o_.cancelled()) return Status::Aborted("extracting " + archive_ + " cancelled");
    if (o_.on_progress) {
      const int64_t now = MonotonicMs();
      if (now - last_report_ms_ >= o_.progress_interval_ms) {
        last_report_ms_ = now;
        progress_.archive_bytes_read = src_.bytes;
        o_.on_progress(progress_);
      }
    }
    return Status::OK();
  }

  const std::string archive_;
  const std::string to_dir_;
  const ExtractOptions& o_;
  std::string root_;
  InputSource src_;
  Fd src_fd_;
  ReaderPtr reader_;
  WriterPtr writer_;
  ExtractStats stats_;
  ExtractProgress progress_;
  int64_t last_report_ms_ = 0;
};

}  // namespace

Result<ArchiveStats> WriteTarGz(const std::vector<std::string>& paths, const std::string& out_path,
                                const ArchiveOptions& options) {
  if (out_path.empty()) return Status::InvalidArgument("no output path for the archive");
  ScopedUtf8Ctype utf8;
  TarGzWriter writer(paths, out_path, options);
  return writer.Run();
}

Result<ExtractStats> ExtractTarGz(const std::string& archive, const std::string& to_dir,
                                  const ExtractOptions& options) {
  if (to_dir.empty()) return Status::InvalidArgument("no directory to extract " + archive + " into");
  ScopedUtf8Ctype utf8;
  TarGzExtractor extractor(archive, to_dir, options);
  return extractor.Run();
}

}  // namespace ledgerkeep
