#include "runtime/kv_cache/block_allocator.h"

#include <algorithm>
#include <cstring>

#include "runtime/core/error.h"
#include "runtime/core/hashing.h"

namespace sparq {

namespace {

// Chain key of a block: its tokens and the key of the block before it (0 for the first).
uint64_t chain_key(uint64_t parent_key, std::span<const int32_t> tokens) {
  std::vector<uint8_t> bytes(8 + tokens.size_bytes());
  std::memcpy(bytes.data(), &parent_key, 8);
  std::memcpy(bytes.data() + 8, tokens.data(), tokens.size_bytes());
  return xxh3_64(bytes);
}

}  // namespace

BlockAllocator::BlockAllocator(int64_t blocks, int64_t block_tokens) : block_tokens_(block_tokens) {
  if (blocks < 1 || blocks > INT32_MAX) fail("KV cache: the block count must be in [1, 2^31) (got ", blocks, ")");
  if (block_tokens < 1) fail("KV cache: block_tokens must be at least 1 (got ", block_tokens, ")");
  blocks_.resize(static_cast<size_t>(blocks));
  free_.resize(static_cast<size_t>(blocks));
  // Hand out low block numbers first so the touched part of the storage stays compact.
  for (int64_t i = 0; i < blocks; ++i) free_[static_cast<size_t>(i)] = static_cast<int32_t>(blocks - 1 - i);
}

BlockAllocator::Sequence& BlockAllocator::get(SeqId seq) {
  if (seq < 0 || static_cast<size_t>(seq) >= seqs_.size() || !seqs_[static_cast<size_t>(seq)].live)
    fail("KV cache: no sequence ", seq);
  return seqs_[static_cast<size_t>(seq)];
}

const BlockAllocator::Sequence& BlockAllocator::get(SeqId seq) const {
  return const_cast<BlockAllocator*>(this)->get(seq);
}

bool BlockAllocator::has_sequence(SeqId seq) const {
  return seq >= 0 && static_cast<size_t>(seq) < seqs_.size() && seqs_[static_cast<size_t>(seq)].live;
}

SeqId BlockAllocator::add_sequence() {
  for (size_t i = 0; i < seqs_.size(); ++i)
    if (!seqs_[i].live) {
      seqs_[i] = Sequence{};
      seqs_[i].live = true;
      return static_cast<SeqId>(i);
    }
  seqs_.emplace_back().live = true;
  return static_cast<SeqId>(seqs_.size() - 1);
}

SeqId BlockAllocator::add_sequence_sharing(std::span<const int32_t> blocks) {
  for (int32_t b : blocks)
    if (b < 0 || b >= total_blocks() || !blocks_[static_cast<size_t>(b)].published)
      fail("KV cache: block ", b, " is not a published block");
  const SeqId seq = add_sequence();
  Sequence& s = seqs_[static_cast<size_t>(seq)];
  for (int32_t b : blocks) {
    hold(b);
    s.blocks.push_back(b);
    s.keys.push_back(blocks_[static_cast<size_t>(b)].key);
  }
  s.length = static_cast<int64_t>(blocks.size()) * block_tokens_;
  s.published = static_cast<int64_t>(blocks.size());
  return seq;
}

void BlockAllocator::remove_sequence(SeqId seq) {
  Sequence& s = get(seq);
  // Last block first, so a chain's head is the last to be evicted from the cache.
  for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it) release(*it);
  s = Sequence{};
}

int64_t BlockAllocator::length(SeqId seq) const { return get(seq).length; }

const std::vector<int32_t>& BlockAllocator::block_table(SeqId seq) const { return get(seq).blocks; }

int32_t BlockAllocator::references(int32_t block) const {
  if (block < 0 || block >= total_blocks()) fail("KV cache: no block ", block);
  return blocks_[static_cast<size_t>(block)].refs;
}

int32_t BlockAllocator::take_block() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    b = cached_.front();  // least recently released
    unpublish(b);
    free_.pop_back();  // unpublish() returned it to free_
    ++evicted_blocks_;
  }
  Block& blk = blocks_[static_cast<size_t>(b)];
  blk.refs = 1;
  ++blk.generation;
  return b;
}

void BlockAllocator::hold(int32_t b) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  if (blk.refs == 0 && blk.published) cached_.erase(blk.lru);
  ++blk.refs;
}

void BlockAllocator::release(int32_t b) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  if (--blk.refs > 0) return;
  if (blk.published) blk.lru = cached_.insert(cached_.end(), b);
  else free_.push_back(b);
}

// Takes a block out of the prefix cache (its data is about to change, or its room is needed).
void BlockAllocator::unpublish(int32_t b) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  if (!blk.published) return;
  published_.erase(blk.key);
  blk.published = false;
  ++blk.generation;  // blocks published after this one no longer follow it
  blk.tokens.clear();
  if (blk.refs == 0) {
    cached_.erase(blk.lru);
    free_.push_back(b);
  }
}

// The block position `length` falls in already exists and someone else holds it.
bool BlockAllocator::copy_needed(const Sequence& s, int64_t new_length) const {
  if (new_length <= s.length) return false;
  const size_t i = static_cast<size_t>(s.length / block_tokens_);
  return i < s.blocks.size() && blocks_[static_cast<size_t>(s.blocks[i])].refs > 1;
}

int64_t BlockAllocator::blocks_needed(SeqId seq, int64_t new_length) const {
  const Sequence& s = get(seq);
  const int64_t more = std::max<int64_t>(0, kv_blocks_for(new_length, block_tokens_) - static_cast<int64_t>(s.blocks.size()));
  return more + (copy_needed(s, new_length) ? 1 : 0);
}

bool BlockAllocator::reserve(SeqId seq, int64_t new_length, std::vector<KvBlockCopy>& copies) {
  if (blocks_needed(seq, new_length) > free_blocks()) return false;
  Sequence& s = get(seq);
  if (new_length > s.length) {
    const size_t i = static_cast<size_t>(s.length / block_tokens_);
    if (i < s.blocks.size()) {
      const int32_t old = s.blocks[i];
      if (blocks_[static_cast<size_t>(old)].refs > 1) {
        const int32_t copy = take_block();
        copies.push_back({old, copy});
        release(old);
        s.blocks[i] = copy;
      } else {
        unpublish(old);  // only this sequence holds it, and its data is about to change
      }
      if (static_cast<int64_t>(i) < s.published) {
        s.published = static_cast<int64_t>(i);
        s.keys.resize(i);
      }
    }
  }
  while (static_cast<int64_t>(s.blocks.size()) < kv_blocks_for(new_length, block_tokens_)) s.blocks.push_back(take_block());
  return true;
}

void BlockAllocator::set_length(SeqId seq, int64_t new_length) {
  Sequence& s = get(seq);
  if (new_length < 0 || new_length > static_cast<int64_t>(s.blocks.size()) * block_tokens_)
    fail("KV cache: length ", new_length, " of sequence ", seq, " is outside its reserved blocks");
  s.length = new_length;
}

void BlockAllocator::truncate(SeqId seq, int64_t new_length) {
  Sequence& s = get(seq);
  if (new_length < 0 || new_length > s.length)
    fail("KV cache: cannot truncate sequence ", seq, " of length ", s.length, " to ", new_length);
  const size_t keep = static_cast<size_t>(kv_blocks_for(new_length, block_tokens_));
  while (s.blocks.size() > keep) {
    release(s.blocks.back());
    s.blocks.pop_back();
  }
  s.length = new_length;
  const int64_t full = new_length / block_tokens_;
  if (s.published > full) {
    s.published = full;
    s.keys.resize(static_cast<size_t>(full));
  }
}

void BlockAllocator::publish(SeqId seq, std::span<const int32_t> tokens) {
  Sequence& s = get(seq);
  if (static_cast<int64_t>(tokens.size()) < s.length)
    fail("KV cache: publishing sequence ", seq, " needs its ", s.length, " token ids (got ", tokens.size(), ")");
  const int64_t full = s.length / block_tokens_;
  for (int64_t i = s.published; i < full; ++i) {
    const auto ids = tokens.subspan(static_cast<size_t>(i * block_tokens_), static_cast<size_t>(block_tokens_));
    const uint64_t key = chain_key(i > 0 ? s.keys[static_cast<size_t>(i - 1)] : 0, ids);
    s.keys.push_back(key);
    const int32_t b = s.blocks[static_cast<size_t>(i)];
    Block& blk = blocks_[static_cast<size_t>(b)];
    // A block already published (shared from the cache) stays as it is; an equal block published
    // by another sequence first keeps the key, and this one stays private.
    if (blk.published) continue;
    if (auto it = published_.find(key); it != published_.end()) {
      if (parent_alive(it->second)) continue;
      unpublish(it->second);  // its prefix was evicted: it can never match again
    }
    blk.published = true;
    blk.key = key;
    blk.tokens.assign(ids.begin(), ids.end());
    if (i > 0) {
      blk.parent = s.blocks[static_cast<size_t>(i - 1)];
      blk.parent_generation = blocks_[static_cast<size_t>(blk.parent)].generation;
    } else {
      blk.parent = -1;
    }
    published_.emplace(key, b);
  }
  s.published = full;
}

std::vector<int32_t> BlockAllocator::match_prefix(std::span<const int32_t> tokens, int64_t max_blocks) const {
  std::vector<int32_t> out;
  const int64_t n = std::min<int64_t>(max_blocks, static_cast<int64_t>(tokens.size()) / block_tokens_);
  uint64_t key = 0;
  int32_t parent = -1;
  for (int64_t i = 0; i < n; ++i) {
    const auto ids = tokens.subspan(static_cast<size_t>(i * block_tokens_), static_cast<size_t>(block_tokens_));
    key = chain_key(key, ids);
    auto it = published_.find(key);
    if (it == published_.end()) break;
    const Block& blk = blocks_[static_cast<size_t>(it->second)];
    // The key is a hash: the block must really hold these ids after the block matched before it.
    if (blk.parent != parent || !parent_alive(it->second) ||
        !std::equal(ids.begin(), ids.end(), blk.tokens.begin(), blk.tokens.end()))
      break;
    out.push_back(it->second);
    parent = it->second;
  }
  return out;
}

// The block before a published block still holds the data it was published after.
bool BlockAllocator::parent_alive(int32_t b) const {
  const Block& blk = blocks_[static_cast<size_t>(b)];
  return blk.parent < 0 || (blocks_[static_cast<size_t>(blk.parent)].generation == blk.parent_generation &&
                            blocks_[static_cast<size_t>(blk.parent)].published);
}

int64_t BlockAllocator::unreferenced(std::span<const int32_t> blocks) const {
  int64_t n = 0;
  for (int32_t b : blocks) n += references(b) == 0 ? 1 : 0;
  return n;
}

}  // namespace sparq
