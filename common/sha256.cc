#include "common/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace ledgerkeep {

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  ok_ = ctx_->md != nullptr && EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) == 1;
}

Sha256::~Sha256() = default;

void Sha256::Update(const void* data, size_t n) {
  if (ok_ && n > 0) ok_ = EVP_DigestUpdate(ctx_->md, data, n) == 1;
}

Result<Sha256Digest> Sha256::Finish() {
  Sha256Digest out{};
  unsigned int len = 0;
  if (!ok_ || EVP_DigestFinal_ex(ctx_->md, out.data(), &len) != 1 || len != out.size()) {
    ok_ = false;
    return Status::Internal("OpenSSL SHA-256 failed");
  }
  ok_ = false;  // spent
  return out;
}

Result<std::string> Sha256::FinishHex() {
  LK_ASSIGN_OR_RETURN(auto digest, Finish());
  return LowerHex(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string Sha256Hex(std::string_view data) {
  Sha256 sha;
  sha.Update(data);
  auto hex = sha.FinishHex();
  if (!hex.ok()) {
    // Only an allocation failure inside OpenSSL gets here.
    std::fprintf(stderr, "fatal: %s\n", hex.status().ToString().c_str());
    std::abort();
  }
  return std::move(hex).value();
}

Result<std::string> Sha256File(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  Sha256 sha;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return Status::FromErrno(err, "read " + path);
    }
    if (n == 0) break;
    sha.Update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return sha.FinishHex();
}

std::string LowerHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

}  // namespace ledgerkeep
