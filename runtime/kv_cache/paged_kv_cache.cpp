#include "runtime/kv_cache/paged_kv_cache.h"

#include <algorithm>

#include "runtime/core/error.h"

namespace sparq {

uint64_t KvCacheGeometry::block_bytes() const {
  return static_cast<uint64_t>(layers) * static_cast<uint64_t>(kv_heads) * 2 * static_cast<uint64_t>(block_tokens) *
         static_cast<uint64_t>(head_dim) * sizeof(float);
}

PagedKvCache::PagedKvCache(const KvCacheGeometry& geometry, uint64_t budget_bytes) : geo_(geometry) {
  if (geo_.layers <= 0 || geo_.kv_heads <= 0 || geo_.head_dim <= 0 || geo_.block_tokens <= 0)
    fail("KV cache geometry must be positive (layers ", geo_.layers, ", kv heads ", geo_.kv_heads, ", head dim ",
         geo_.head_dim, ", block tokens ", geo_.block_tokens, ")");
  const uint64_t bb = geo_.block_bytes();
  const uint64_t blocks = budget_bytes / bb;
  if (blocks == 0)
    fail("the KV cache budget of ", budget_bytes, " bytes is smaller than one block (", bb, " bytes for ",
         geo_.block_tokens, " positions)");
  if (blocks > static_cast<uint64_t>(INT32_MAX)) fail("the KV cache budget is too large");
  block_floats_ = bb / sizeof(float);
  pool_.reset(new float[blocks * block_floats_]);
  free_.resize(blocks);
  // Hand out low block numbers first so the touched part of the pool stays compact.
  for (uint64_t i = 0; i < blocks; ++i) free_[i] = static_cast<int32_t>(blocks - 1 - i);
}

SeqId PagedKvCache::add_sequence() {
  for (size_t i = 0; i < seqs_.size(); ++i)
    if (!seqs_[i].live) {
      seqs_[i] = Sequence{true, 0, {}};
      return static_cast<SeqId>(i);
    }
  seqs_.push_back(Sequence{true, 0, {}});
  return static_cast<SeqId>(seqs_.size() - 1);
}

PagedKvCache::Sequence& PagedKvCache::get(SeqId seq) {
  if (seq < 0 || static_cast<size_t>(seq) >= seqs_.size() || !seqs_[static_cast<size_t>(seq)].live)
    fail("KV cache: no sequence ", seq);
  return seqs_[static_cast<size_t>(seq)];
}

const PagedKvCache::Sequence& PagedKvCache::get(SeqId seq) const {
  return const_cast<PagedKvCache*>(this)->get(seq);
}

bool PagedKvCache::has_sequence(SeqId seq) const {
  return seq >= 0 && static_cast<size_t>(seq) < seqs_.size() && seqs_[static_cast<size_t>(seq)].live;
}

void PagedKvCache::remove_sequence(SeqId seq) {
  Sequence& s = get(seq);
  for (int32_t b : s.blocks) free_.push_back(b);
  used_blocks_ -= s.blocks.size();
  s = Sequence{};
}

int64_t PagedKvCache::length(SeqId seq) const { return get(seq).length; }

int64_t PagedKvCache::blocks_needed(SeqId seq, int64_t new_length) const {
  const Sequence& s = get(seq);
  const int64_t want = (new_length + geo_.block_tokens - 1) / geo_.block_tokens;
  return std::max<int64_t>(0, want - static_cast<int64_t>(s.blocks.size()));
}

bool PagedKvCache::reserve(SeqId seq, int64_t new_length) {
  const int64_t need = blocks_needed(seq, new_length);
  if (need > static_cast<int64_t>(free_.size())) return false;
  Sequence& s = get(seq);
  for (int64_t i = 0; i < need; ++i) {
    s.blocks.push_back(free_.back());
    free_.pop_back();
  }
  used_blocks_ += static_cast<size_t>(need);
  return true;
}

void PagedKvCache::set_length(SeqId seq, int64_t new_length) {
  Sequence& s = get(seq);
  if (new_length < 0 || new_length > static_cast<int64_t>(s.blocks.size()) * geo_.block_tokens)
    fail("KV cache: length ", new_length, " of sequence ", seq, " is outside its reserved blocks");
  s.length = new_length;
}

const std::vector<int32_t>& PagedKvCache::block_table(SeqId seq) const { return get(seq).blocks; }

// Block layout: [layer][kv_head][key|value][block_tokens][head_dim].
const float* PagedKvCache::block_rows(int32_t block, int64_t layer, int64_t kv_head, int kind) const {
  const uint64_t rows = static_cast<uint64_t>(geo_.block_tokens * geo_.head_dim);
  return pool_.get() + static_cast<uint64_t>(block) * block_floats_ +
         ((static_cast<uint64_t>(layer * geo_.kv_heads + kv_head) * 2) + static_cast<uint64_t>(kind)) * rows;
}

float* PagedKvCache::slot(SeqId seq, int64_t layer, int64_t kv_head, int64_t pos, int kind) {
  const Sequence& s = get(seq);
  const int64_t b = pos / geo_.block_tokens;
  if (pos < 0 || b >= static_cast<int64_t>(s.blocks.size()))
    fail("KV cache: position ", pos, " of sequence ", seq, " is not reserved");
  return const_cast<float*>(block_rows(s.blocks[static_cast<size_t>(b)], layer, kv_head, kind)) +
         (pos % geo_.block_tokens) * geo_.head_dim;
}

}  // namespace sparq
