// Paged KV cache: keys and values live in fixed-size blocks of `block_tokens` positions drawn from
// one pool sized by a memory budget; each sequence owns a block table (its blocks in position
// order). A sequence grows by whole blocks; when the pool is empty, reserve() says no and nothing
// changes, so a caller can refuse a request cleanly instead of failing half way through a step.
//
// Storage here is host memory in f32 (the CPU backend's layout). A device backend keeps the same
// geometry and block tables and allocates its own pool (see docs/BACKENDS.md).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace sparq {

using SeqId = int32_t;

struct KvCacheGeometry {
  int64_t layers = 0, kv_heads = 0, head_dim = 0;
  int64_t block_tokens = 16;
  // Bytes of one block: keys and values of block_tokens positions for every layer and kv head.
  uint64_t block_bytes() const;
};

class PagedKvCache {
 public:
  // Throws sparq::Error when the budget cannot hold a single block.
  PagedKvCache(const KvCacheGeometry& geometry, uint64_t budget_bytes);

  const KvCacheGeometry& geometry() const { return geo_; }
  int64_t total_blocks() const { return static_cast<int64_t>(free_.size() + used_blocks_); }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  uint64_t capacity_tokens() const { return static_cast<uint64_t>(total_blocks()) * static_cast<uint64_t>(geo_.block_tokens); }

  SeqId add_sequence();
  void remove_sequence(SeqId seq);  // returns its blocks to the pool
  bool has_sequence(SeqId seq) const;

  // Positions already stored for the sequence.
  int64_t length(SeqId seq) const;
  // Makes room for positions [0, new_length); false (and nothing allocated) when the pool lacks the blocks.
  bool reserve(SeqId seq, int64_t new_length);
  // Blocks that reserve(seq, new_length) would still need.
  int64_t blocks_needed(SeqId seq, int64_t new_length) const;
  // Records that positions up to new_length hold keys and values (after a step wrote them).
  void set_length(SeqId seq, int64_t new_length);
  // Forgets positions >= new_length (keeps the blocks).
  void truncate(SeqId seq, int64_t new_length) { set_length(seq, new_length); }

  const std::vector<int32_t>& block_table(SeqId seq) const;

  // Key / value vector [head_dim] of one position of a reserved sequence.
  float* key(SeqId seq, int64_t layer, int64_t kv_head, int64_t pos) { return slot(seq, layer, kv_head, pos, 0); }
  float* value(SeqId seq, int64_t layer, int64_t kv_head, int64_t pos) { return slot(seq, layer, kv_head, pos, 1); }
  // Start of a block's keys (kind 0) or values (kind 1) for a layer and kv head: block_tokens rows of head_dim.
  const float* block_rows(int32_t block, int64_t layer, int64_t kv_head, int kind) const;

 private:
  struct Sequence {
    bool live = false;
    int64_t length = 0;
    std::vector<int32_t> blocks;
  };
  float* slot(SeqId seq, int64_t layer, int64_t kv_head, int64_t pos, int kind);
  Sequence& get(SeqId seq);
  const Sequence& get(SeqId seq) const;

  KvCacheGeometry geo_;
  uint64_t block_floats_ = 0;
  std::unique_ptr<float[]> pool_;  // uninitialised: pages become resident as blocks are used
  std::vector<int32_t> free_;
  size_t used_blocks_ = 0;
  std::vector<Sequence> seqs_;
};

}  // namespace sparq
