// KvStore: the RocksDB-backed state of the broker and of each agent.
//
// Column families are named at Open and created if missing. Writes go
// through a Batch applied atomically; `sync=true` fsyncs the WAL before
// returning (what "durable" means in this project). RocksDB types stay
// behind this header.
// Thread-safety: all methods may be called from any thread (RocksDB is
// thread-safe); Batch is single-threaded.
// Crash behaviour: a write that returned OK with sync=true survives power
// loss; with sync=false it survives a process crash (SIGKILL).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ledgerkeep {

class KvStore {
 public:
  class Batch {
   public:
    Batch();
    ~Batch();
    Batch(Batch&&) noexcept;
    Batch& operator=(Batch&&) noexcept;
    void Put(int cf, std::string_view key, std::string_view value);
    void Delete(int cf, std::string_view key);
    // Deletes [begin, end).
    void DeleteRange(int cf, std::string_view begin, std::string_view end);
    size_t Count() const;
    void Clear();

   private:
    friend class KvStore;
    struct Rep;
    std::unique_ptr<Rep> rep_;
  };

  // Opens (creating if needed) the DB at `path` with `column_families`;
  // they are addressed by their index in that list (0 = the first). The list
  // may only grow at its end between versions. A store already open
  // by another process fails with Busy ("... is locked by another process").
  static Result<std::unique_ptr<KvStore>> Open(const std::string& path,
                                               const std::vector<std::string>& column_families);
  ~KvStore();

  Status Write(Batch& batch, bool sync);
  Status Put(int cf, std::string_view key, std::string_view value, bool sync);
  Status Delete(int cf, std::string_view key, bool sync);
  Result<std::optional<std::string>> Get(int cf, std::string_view key) const;

  // Calls fn(key, value) for keys in [start, end) in order (end empty = to
  // the last key) until fn returns false.
  Status Scan(int cf, std::string_view start, std::string_view end,
              const std::function<bool(std::string_view, std::string_view)>& fn) const;
  // The same keys in reverse order: [start, end) from the greatest down
  // (start empty = to the first key, end empty = from the last key).
  Status ScanBackward(int cf, std::string_view start, std::string_view end,
                      const std::function<bool(std::string_view, std::string_view)>& fn) const;
  // The greatest key of `cf`, if any.
  Result<std::optional<std::string>> LastKey(int cf) const;
  Result<std::optional<std::string>> FirstKey(int cf) const;

  const std::string& path() const { return path_; }

 private:
  struct Rep;
  KvStore(std::string path, std::unique_ptr<Rep> rep);
  std::string path_;
  std::unique_ptr<Rep> rep_;
};

}  // namespace ledgerkeep
