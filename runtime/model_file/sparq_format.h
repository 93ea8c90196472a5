// The on-disk constants of the .sparq model file (specified in docs/FORMAT.md).
#pragma once
#include <cstdint>

namespace sparq {

inline constexpr char kSparqMagic[8] = {'S', 'P', 'A', 'R', 'Q', '\r', '\n', '\x1a'};
// Version 2 added the int8_k4_tiles layout; version 1 files (row-major INT8) are still read.
inline constexpr uint32_t kSparqVersion = 2;
inline constexpr uint32_t kSparqOldestVersion = 1;
inline constexpr uint32_t kSparqTilesVersion = 2;  // the first version with Layout::Int8K4Tiles
inline constexpr uint64_t kSparqAlignment = 4096;  // every tensor and blob starts on a page
inline constexpr uint64_t kSparqMaxJsonBytes = 256ull << 20;

// Fixed header at offset 0, little-endian.
struct SparqHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;     // sizeof(SparqHeader)
  uint64_t file_bytes;       // total size; a shorter file is truncated
  uint64_t metadata_offset;  // JSON object: architecture, config, schemes, tokenizer, provenance
  uint64_t metadata_bytes;
  uint64_t index_offset;     // JSON object: {"tensors": [...], "blobs": [...]}
  uint64_t index_bytes;
  uint64_t json_checksum;    // XXH3-64 of the metadata bytes followed by the index bytes
};
static_assert(sizeof(SparqHeader) == 64);

}  // namespace sparq
