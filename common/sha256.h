// SHA-256, the one implementation of the project (OpenSSL's EVP): the
// manifest digest a snapshot's DONE holds, the checksum beside a client
// archive, and the digest of every ledger block.
//
// Lives in its own small library (lk_hash: lk_status + OpenSSL) so that the
// ledger node, which links no bus code, uses the same one.
// Thread-safety: a Sha256 object is not thread-safe; the free functions are.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ledgerkeep {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental SHA-256. OpenSSL fails only when it cannot allocate; such a
// failure is remembered and reported by Finish(), never dropped.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t n);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // False once OpenSSL failed (Finish() will say so): lets a caller give up
  // before hashing gigabytes for nothing.
  bool ok() const { return ok_; }

  // The digest of everything given to Update(). Internal if OpenSSL failed.
  // The object is spent afterwards.
  Result<Sha256Digest> Finish();
  // The same as 64 lower-case hex characters.
  Result<std::string> FinishHex();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  bool ok_ = false;
};

// SHA-256 of `data` as 64 lower-case hex characters. The one-shot form
// cannot fail short of an allocation failure in OpenSSL, which aborts the
// process (a wrong digest must never be written as a snapshot's DONE).
std::string Sha256Hex(std::string_view data);

// SHA-256 of a file's content, streamed through a 1 MiB buffer (64
// lower-case hex chars). NotFound / PermissionDenied / IOError naming the
// file.
Result<std::string> Sha256File(const std::string& path);

// Bytes as lower-case hex, two characters each.
std::string LowerHex(std::string_view bytes);

}  // namespace ledgerkeep
