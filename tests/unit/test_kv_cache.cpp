// Paged KV cache: block accounting, refusal when the budget is exhausted, reuse after removal,
// reference counts with copy-on-write, the prefix cache, and the CPU backend's host storage.
#include <catch2/catch.hpp>

#include <numeric>

#include "backends/cpu/host_kv_storage.h"
#include "runtime/core/error.h"
#include "runtime/engine/step_builder.h"
#include "runtime/kv_cache/block_allocator.h"

using namespace sparq;

namespace {

std::vector<int32_t> iota_tokens(int n, int first = 100) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), first);
  return t;
}

}  // namespace

TEST_CASE("host KV storage holds as many blocks as the budget and keeps positions apart", "[kv_cache]") {
  KvCacheGeometry geo{2, 1, 4, 4};  // 2 layers, 1 kv head, head_dim 4, 4 positions per block
  REQUIRE(geo.block_bytes() == 2 * 1 * 2 * 4 * 4 * sizeof(float));
  cpu::HostKvStorage kv(geo, geo.block_bytes() * 3 + 17);  // 3 blocks (the remainder is unused)
  REQUIRE(kv.blocks() == 3);
  // Keys and values of different blocks, layers and kinds never share storage.
  kv.block_rows(1, 1, 0, 0)[3] = 1.5f;
  kv.block_rows(1, 1, 0, 1)[3] = 2.5f;
  kv.block_rows(1, 0, 0, 0)[3] = 3.5f;
  kv.block_rows(2, 1, 0, 0)[3] = 4.5f;
  REQUIRE(kv.block_rows(1, 1, 0, 0)[3] == 1.5f);
  REQUIRE(kv.block_rows(1, 1, 0, 1)[3] == 2.5f);
  kv.copy_block(1, 0);
  REQUIRE(kv.block_rows(0, 1, 0, 1)[3] == 2.5f);
  REQUIRE(kv.block_rows(0, 0, 0, 0)[3] == 3.5f);
  REQUIRE_THROWS_AS(kv.copy_block(0, 3), Error);
  REQUIRE_THROWS_AS(cpu::HostKvStorage(geo, geo.block_bytes() - 1), Error);
  KvCacheGeometry bf16 = geo;
  bf16.dtype = DType::BF16;
  REQUIRE_THROWS_WITH(cpu::HostKvStorage(bf16, bf16.block_bytes() * 2), Catch::Contains("BF16"));
}

TEST_CASE("block allocator takes whole blocks and refuses cleanly when full", "[kv_cache]") {
  BlockAllocator blocks(3, 4);
  const SeqId a = blocks.add_sequence(), b = blocks.add_sequence();
  std::vector<KvBlockCopy> copies;
  REQUIRE(blocks.reserve(a, 5, copies));  // 2 blocks
  REQUIRE(blocks.free_blocks() == 1);
  REQUIRE_FALSE(blocks.reserve(b, 5, copies));  // needs 2, 1 free: refused, nothing taken
  REQUIRE(blocks.free_blocks() == 1);
  REQUIRE(blocks.block_table(b).empty());
  blocks.set_length(a, 5);
  REQUIRE_THROWS_AS(blocks.set_length(a, 9), Error);  // beyond the reserved blocks

  // A step that does not fit is refused as a whole, before any block is taken.
  const std::vector<int32_t> t1(3), t2(4), t3(1);
  const std::vector<SequenceChunk> fits{{a, t1, LogitRows::Last}, {b, t2, LogitRows::Last}};  // a: 5+3 in its 2 blocks, b: 1 block
  const Step step = build_step(fits, blocks);
  REQUIRE(blocks.free_blocks() == 0);
  REQUIRE(step.rows() == 7);
  REQUIRE(step.chunks[0].start == 5);
  REQUIRE(step.chunks[1].first_row == 3);
  REQUIRE(step.positions == std::vector<int64_t>{5, 6, 7, 0, 1, 2, 3});
  REQUIRE(step.logit_rows == std::vector<int32_t>{2, 6});
  REQUIRE(step.block_table.size() == 3);
  commit_step(step, blocks);
  REQUIRE(blocks.length(a) == 8);
  REQUIRE_THROWS_AS(build_step(std::vector<SequenceChunk>{{b, t3, LogitRows::Last}}, blocks), KvCacheFull);
  REQUIRE(blocks.block_table(b).size() == 1);
  REQUIRE_THROWS_AS(build_step(std::vector<SequenceChunk>{{a, t3, LogitRows::Last}, {a, t3, LogitRows::Last}}, blocks),
                    Error);

  blocks.remove_sequence(a);
  REQUIRE(blocks.free_blocks() == 2);
  REQUIRE(blocks.reserve(b, 12, copies));
  REQUIRE(blocks.block_table(b).size() == 3);
  REQUIRE(copies.empty());
  blocks.set_length(b, 12);
  blocks.truncate(b, 5);  // releases the third block
  REQUIRE(blocks.block_table(b).size() == 2);
  REQUIRE(blocks.free_blocks() == 1);
  REQUIRE_THROWS_AS(BlockAllocator(0, 4), Error);
}

TEST_CASE("prefix cache shares published blocks and verifies the tokens", "[kv_cache]") {
  BlockAllocator blocks(8, 4);
  const auto prompt = iota_tokens(10);
  const SeqId a = blocks.add_sequence();
  std::vector<KvBlockCopy> copies;
  REQUIRE(blocks.reserve(a, 10, copies));
  blocks.set_length(a, 10);
  blocks.publish(a, prompt);  // two full blocks published; the third (2 positions) is not

  // Same first 9 tokens: both full blocks are found; the lookup stops at the partial block.
  auto other = prompt;
  other[9] = 7;
  const auto hit = blocks.match_prefix(other, 8);
  REQUIRE(hit == std::vector<int32_t>{blocks.block_table(a)[0], blocks.block_table(a)[1]});
  // A different token in the second block: only the first is shared.
  other[5] = 1;
  REQUIRE(blocks.match_prefix(other, 8).size() == 1);
  other[0] = 1;
  REQUIRE(blocks.match_prefix(other, 8).empty());
  REQUIRE(blocks.match_prefix(prompt, 1).size() == 1);  // bounded by max_blocks

  const SeqId b = blocks.add_sequence_sharing(hit);
  REQUIRE(blocks.length(b) == 8);
  REQUIRE(blocks.references(hit[0]) == 2);
  REQUIRE(blocks.free_blocks() == 5);  // 3 held by a, none more by b

  // Both finish: published blocks stay cached (and count as free) until their room is needed.
  blocks.remove_sequence(a);
  blocks.remove_sequence(b);
  REQUIRE(blocks.free_blocks() == 8);
  REQUIRE(blocks.cached_blocks() == 2);
  REQUIRE(blocks.match_prefix(prompt, 8).size() == 2);
  REQUIRE(blocks.unreferenced(hit) == 2);

  // Pressure: taking every block evicts the cached ones, and they no longer match.
  const SeqId c = blocks.add_sequence();
  REQUIRE(blocks.reserve(c, 32, copies));
  REQUIRE(blocks.evicted_blocks() == 2);
  REQUIRE(blocks.match_prefix(prompt, 8).empty());
  REQUIRE(blocks.free_blocks() == 0);
}

TEST_CASE("writing into a shared block copies it first", "[kv_cache]") {
  BlockAllocator blocks(6, 4);
  const auto prompt = iota_tokens(8);
  const SeqId a = blocks.add_sequence();
  std::vector<KvBlockCopy> copies;
  REQUIRE(blocks.reserve(a, 8, copies));
  blocks.set_length(a, 8);
  blocks.publish(a, prompt);
  const SeqId b = blocks.add_sequence_sharing(blocks.match_prefix(prompt, 2));
  const std::vector<int32_t> shared = blocks.block_table(b);

  // b keeps 6 positions and writes the 7th: its second block is shared with a, so it gets a copy.
  blocks.truncate(b, 6);
  REQUIRE(blocks.blocks_needed(b, 7) == 1);
  REQUIRE(blocks.reserve(b, 7, copies));
  REQUIRE(copies.size() == 1);
  REQUIRE(copies[0].src == shared[1]);
  REQUIRE(blocks.block_table(b)[0] == shared[0]);  // the untouched block stays shared
  REQUIRE(blocks.block_table(b)[1] == copies[0].dst);
  REQUIRE(blocks.references(shared[1]) == 1);  // a's only
  // a's block is still published: a new lookup still finds a's data.
  REQUIRE(blocks.match_prefix(prompt, 2) == blocks.block_table(a));

  // A block only one sequence holds is written in place, and leaves the prefix cache.
  copies.clear();
  blocks.truncate(a, 6);
  REQUIRE(blocks.reserve(a, 7, copies));
  REQUIRE(copies.empty());
  REQUIRE(blocks.match_prefix(prompt, 2).size() == 1);
}
