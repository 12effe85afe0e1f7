#include "ledger/block.h"

#include <bit>
#include <cstring>
#include <memory>

#include "common/sha256.h"

namespace ledgerkeep::ledger {
namespace {

constexpr uint8_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 1 + 32 + 8 + 4;
constexpr uint32_t kMaxKeyBytes = 64 * 1024;
constexpr uint32_t kMaxValueBytes = 256u * 1024 * 1024;

void PutU32(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
               static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}

void PutU64(std::string& out, uint64_t v) {
  PutU32(out, static_cast<uint32_t>(v >> 32));
  PutU32(out, static_cast<uint32_t>(v));
}

uint32_t GetU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

uint64_t GetU64(const char* p) { return (uint64_t{GetU32(p)} << 32) | GetU32(p + 4); }

// SplitMix64 seeds xoshiro256**: fast, deterministic and incompressible output.
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Xoshiro256 {
 public:
  Xoshiro256(uint64_t seed, uint64_t stream) {
    uint64_t sm = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    for (auto& word : s_) word = SplitMix64(sm);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

uint64_t ToLittleEndian(uint64_t v) {
  if constexpr (std::endian::native == std::endian::big) return __builtin_bswap64(v);
  return v;
}

}  // namespace

std::string SerializeBlock(const Block& block) {
  size_t size = kHeaderSize;
  for (const auto& kv : block.updates) size += 8 + kv.key.size() + kv.value.size();
  std::string out;
  out.reserve(size);
  out.push_back(static_cast<char>(kFormatVersion));
  out.append(reinterpret_cast<const char*>(block.parent_digest.data()), block.parent_digest.size());
  PutU64(out, block.id);
  PutU32(out, static_cast<uint32_t>(block.updates.size()));
  for (const auto& kv : block.updates) {
    PutU32(out, static_cast<uint32_t>(kv.key.size()));
    out.append(kv.key);
    PutU32(out, static_cast<uint32_t>(kv.value.size()));
    out.append(kv.value);
  }
  return out;
}

Result<Block> ParseBlockHeader(std::string_view bytes) {
  if (bytes.size() < kHeaderSize) {
    return Status::Corruption("block truncated: " + std::to_string(bytes.size()) +
                              " bytes, header needs " + std::to_string(kHeaderSize));
  }
  if (static_cast<uint8_t>(bytes[0]) != kFormatVersion) {
    return Status::Corruption("unknown block format version " +
                              std::to_string(static_cast<uint8_t>(bytes[0])));
  }
  Block block;
  std::memcpy(block.parent_digest.data(), bytes.data() + 1, 32);
  block.id = GetU64(bytes.data() + 33);
  return block;
}

Result<Block> ParseBlock(std::string_view bytes) {
  LK_ASSIGN_OR_RETURN(Block block, ParseBlockHeader(bytes));
  const uint32_t count = GetU32(bytes.data() + 41);
  size_t pos = kHeaderSize;
  // Every update takes at least 8 bytes, which bounds the reservation.
  if (count > (bytes.size() - pos) / 8) {
    return Status::Corruption("block " + std::to_string(block.id) + ": update count " +
                              std::to_string(count) + " exceeds the block size");
  }
  block.updates.reserve(count);
  auto read_field = [&](uint32_t max, const char* what, std::string& out) -> Status {
    if (bytes.size() - pos < 4) {
      return Status::Corruption("block " + std::to_string(block.id) + ": truncated " + what + " length");
    }
    const uint32_t len = GetU32(bytes.data() + pos);
    pos += 4;
    if (len > max || bytes.size() - pos < len) {
      return Status::Corruption("block " + std::to_string(block.id) + ": " + what + " length " +
                                std::to_string(len) + " out of range");
    }
    out.assign(bytes.data() + pos, len);
    pos += len;
    return Status::OK();
  };
  for (uint32_t i = 0; i < count; ++i) {
    KeyValue kv;
    LK_RETURN_IF_ERROR(read_field(kMaxKeyBytes, "key", kv.key));
    LK_RETURN_IF_ERROR(read_field(kMaxValueBytes, "value", kv.value));
    block.updates.push_back(std::move(kv));
  }
  if (pos != bytes.size()) {
    return Status::Corruption("block " + std::to_string(block.id) + ": " +
                              std::to_string(bytes.size() - pos) + " trailing bytes");
  }
  return block;
}

Digest ComputeBlockDigest(BlockId id, std::string_view serialized) {
  Sha256 sha;
  sha.Update(EncodeBlockKey(id));
  sha.Update(serialized);
  // Fails only on an allocation failure inside OpenSSL; a zero digest then
  // fails every later chain check loudly instead of passing silently.
  return sha.Finish().value_or(Digest{});
}

std::string BytesToHex(std::string_view bytes) { return LowerHex(bytes); }

std::string DigestToHex(const Digest& digest) {
  return BytesToHex(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string EncodeBlockKey(BlockId id) {
  std::string out;
  PutU64(out, id);
  return out;
}

Result<BlockId> DecodeBlockKey(std::string_view key) {
  if (key.size() != 8) {
    return Status::Corruption("block key of " + std::to_string(key.size()) + " bytes, expected 8");
  }
  return GetU64(key.data());
}

Block GenerateBlock(const ChainParams& params, BlockId id, const Digest& parent) {
  Block block;
  block.parent_digest = parent;
  block.id = id;
  std::string payload(params.payload_bytes, '\0');
  Xoshiro256 rng(params.seed, id);
  // PRNG words are laid out little-endian on every host, so chains are
  // byte-identical across architectures.
  size_t i = 0;
  for (; i + 8 <= payload.size(); i += 8) {
    const uint64_t v = ToLittleEndian(rng.Next());
    std::memcpy(payload.data() + i, &v, 8);
  }
  if (i < payload.size()) {
    const uint64_t v = ToLittleEndian(rng.Next());
    std::memcpy(payload.data() + i, &v, payload.size() - i);
  }
  const uint32_t keyspace = params.keyspace == 0 ? 1 : params.keyspace;
  block.updates.push_back({"key-" + std::to_string(id % keyspace), std::move(payload)});
  block.updates.push_back({"time", std::to_string(id)});
  return block;
}

}  // namespace ledgerkeep::ledger
