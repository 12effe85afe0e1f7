// A ledger block: its binary serialization, digest and deterministic content.
//
// The format is documented in ledger/FORMAT.md. Everything here is a pure
// function of its arguments: thread-safe, no I/O, no shared state.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ledgerkeep::ledger {

using BlockId = uint64_t;
using Digest = std::array<uint8_t, 32>;

// Checkpoint window: wedge stop points are multiples of it.
inline constexpr uint64_t kCheckpointWindow = 150;
// The first block of every chain.
inline constexpr BlockId kGenesisBlockId = 1;

struct KeyValue {
  std::string key;
  std::string value;
  bool operator==(const KeyValue&) const = default;
};

struct Block {
  Digest parent_digest{};  // all zeros for the genesis block
  BlockId id = 0;
  std::vector<KeyValue> updates;
  bool operator==(const Block&) const = default;
};

// Serializes `block` (format version 1, see FORMAT.md).
std::string SerializeBlock(const Block& block);

// Parses a serialized block. Corruption on any structural error (bad
// version, truncation, trailing bytes, oversized lengths).
Result<Block> ParseBlock(std::string_view bytes);

// SHA-256(id as 8 bytes big-endian || serialized block).
Digest ComputeBlockDigest(BlockId id, std::string_view serialized);

// Reads the parent digest and id straight from a serialized block without
// parsing the updates. Corruption if the header is truncated.
Result<Block> ParseBlockHeader(std::string_view bytes);

std::string DigestToHex(const Digest& digest);
std::string BytesToHex(std::string_view bytes);

// 8-byte big-endian encoding of a block id (the `blocks`/`st_chain` key), so
// RocksDB's bytewise order is block order.
std::string EncodeBlockKey(BlockId id);
// Corruption unless `key` is exactly 8 bytes.
Result<BlockId> DecodeBlockKey(std::string_view key);

// Parameters that fix a chain's content; all replicas of a cluster share them.
struct ChainParams {
  uint64_t seed = 0x1ed9e4cee9ULL;  // Default: a fixed constant
  uint32_t payload_bytes = 32 * 1024;  // Default: 32 KiB per block
  uint32_t keyspace = 1000;            // Default: keys key-0 .. key-999
  bool operator==(const ChainParams&) const = default;
};

// Block `id` of the chain described by `params`: updates
//   "key-<id % keyspace>" -> payload_bytes of PRNG output seeded by (seed, id)
//   "time"                -> decimal logical time (the block id)
// The content depends only on (params, id); the parent digest links it.
Block GenerateBlock(const ChainParams& params, BlockId id, const Digest& parent);

}  // namespace ledgerkeep::ledger
