// The device-independent half of the paged KV cache: which blocks each sequence holds, in position
// order, and how many positions of them are written. The keys and values themselves live in the
// backend's KvStorage (host memory, GPU memory); this class only hands out block numbers.
//
// Blocks are reference-counted so sequences can share them:
//   - the prefix cache: a full block of a sequence is published under a hash of its tokens and of
//     every token before it; a later sequence whose prompt starts with the same tokens takes the
//     published blocks instead of computing them again. A published block nobody holds stays
//     cached and is reused (least recently released first) only when no free block is left.
//   - copy-on-write: a step never writes into a block another sequence holds. reserve() replaces
//     such a block (only the last, partial one can be written) with a private copy and reports the
//     copy, which the step asks the storage to make before it runs.
// All-or-nothing: when the pool cannot give what reserve() needs, nothing changes.
#pragma once
#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "runtime/kv_cache/kv_cache_geometry.h"

namespace sparq {

// Copy every position of block src into block dst (done by the storage before a step writes dst).
struct KvBlockCopy {
  int32_t src = -1, dst = -1;
};


class BlockAllocator {
 public:
  // Throws sparq::Error when blocks < 1 or block_tokens < 1.
  BlockAllocator(int64_t blocks, int64_t block_tokens);

  int64_t block_tokens() const { return block_tokens_; }
  int64_t total_blocks() const { return static_cast<int64_t>(blocks_.size()); }
  // Blocks a reservation can take now: never used or released, plus cached ones nobody holds.
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size() + cached_.size()); }
  // Published blocks that no sequence holds (part of free_blocks()).
  int64_t cached_blocks() const { return static_cast<int64_t>(cached_.size()); }
  uint64_t capacity_tokens() const { return static_cast<uint64_t>(total_blocks() * block_tokens_); }

  SeqId add_sequence();
  // A new sequence whose first blocks are `blocks` (from match_prefix), shared: its length is
  // blocks.size() * block_tokens.
  SeqId add_sequence_sharing(std::span<const int32_t> blocks);
  void remove_sequence(SeqId seq);  // releases its blocks
  bool has_sequence(SeqId seq) const;

  int64_t length(SeqId seq) const;  // positions written
  const std::vector<int32_t>& block_table(SeqId seq) const;
  // References to a block (0 when free or only cached).
  int32_t references(int32_t block) const;

  // Blocks reserve(seq, new_length) would take from the pool: new blocks, plus one for a copy when
  // the block the next position goes to is shared.
  int64_t blocks_needed(SeqId seq, int64_t new_length) const;
  // Makes positions [length, new_length) writable (copies to make are appended to `copies`).
  // False, and nothing changes, when the pool lacks the blocks.
  bool reserve(SeqId seq, int64_t new_length, std::vector<KvBlockCopy>& copies);
  // Records that positions [0, new_length) hold keys and values; within the reserved blocks.
  void set_length(SeqId seq, int64_t new_length);
  // Forgets positions >= new_length and releases the blocks past it.
  void truncate(SeqId seq, int64_t new_length);

  // Publishes the sequence's full, written blocks; tokens are the ids at its positions (at least
  // length(seq) of them). Blocks published before are skipped, so calling it every step is cheap.
  void publish(SeqId seq, std::span<const int32_t> tokens);
  // The longest run of published blocks holding the first whole blocks of `tokens`, at most max_blocks.
  std::vector<int32_t> match_prefix(std::span<const int32_t> tokens, int64_t max_blocks) const;
  // How many of `blocks` nobody holds (taking them lowers free_blocks()).
  int64_t unreferenced(std::span<const int32_t> blocks) const;
  // Cached blocks taken back for new data since construction.
  int64_t evicted_blocks() const { return evicted_blocks_; }

 private:
  struct Block {
    int32_t refs = 0;
    uint32_t generation = 0;   // bumped each time the block is taken for new data
    bool published = false;
    uint64_t key = 0;          // published: hash of its tokens and its prefix
    int32_t parent = -1;       // published: the block before it in the publishing sequence
    uint32_t parent_generation = 0;
    std::vector<int32_t> tokens;  // published: its block_tokens ids, compared on every match
    std::list<int32_t>::iterator lru;  // in cached_ while published with refs == 0
  };
  struct Sequence {
    bool live = false;
    int64_t length = 0;
    int64_t published = 0;  // leading blocks already offered to the prefix cache
    std::vector<int32_t> blocks;
    std::vector<uint64_t> keys;  // chain key of each of the first `published` blocks
  };

  Sequence& get(SeqId seq);
  const Sequence& get(SeqId seq) const;
  int32_t take_block();
  void hold(int32_t block);
  void release(int32_t block);
  void unpublish(int32_t block);
  bool copy_needed(const Sequence& s, int64_t new_length) const;
  bool parent_alive(int32_t block) const;

  int64_t block_tokens_;
  std::vector<Block> blocks_;
  std::vector<int32_t> free_;       // never used or unpublished, lowest number on top
  std::list<int32_t> cached_;       // published, unheld; least recently released first
  std::unordered_map<uint64_t, int32_t> published_;  // chain key -> block
  std::vector<Sequence> seqs_;
  int64_t evicted_blocks_ = 0;
};

}  // namespace sparq
