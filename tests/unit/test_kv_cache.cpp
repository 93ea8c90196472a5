// Paged KV cache: block accounting, refusal when the budget is exhausted, reuse after removal,
// reference counts with copy-on-write, the prefix cache, and the CPU backend's host storage.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
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
  auto put = [&](int32_t block, int64_t layer, int kind, float x) {
    const float row[4] = {0, 0, 0, x};
    kv.write_row(block, layer, 0, kind, 3, row);
  };
  auto at = [&](int32_t block, int64_t layer, int kind) { return kv.f32_rows(block, layer, 0, kind)[3 * 4 + 3]; };
  put(1, 1, 0, 1.5f);
  put(1, 1, 1, 2.5f);
  put(1, 0, 0, 3.5f);
  put(2, 1, 0, 4.5f);
  REQUIRE(at(1, 1, 0) == 1.5f);
  REQUIRE(at(1, 1, 1) == 2.5f);
  kv.copy_block(1, 0);
  REQUIRE(at(0, 1, 1) == 2.5f);
  REQUIRE(at(0, 0, 0) == 3.5f);
  REQUIRE_THROWS_AS(kv.copy_block(0, 3), Error);
  REQUIRE_THROWS_AS(cpu::HostKvStorage(geo, geo.block_bytes() - 1), Error);
  KvCacheGeometry bf16 = geo;
  bf16.dtype = DType::BF16;
  REQUIRE_THROWS_WITH(cpu::HostKvStorage(bf16, bf16.block_bytes() * 2), Catch::Contains("BF16"));
}

// --kv-dtype: f16 rounds each value; int8 and fp8 store a row of head_dim values as codes times
// one f32 scale (absmax / 127, absmax / 448), so the row's largest value is kept to its code's
// precision and the others to the row's quantum. Bounds: f16 relative 2^-11; int8 absolute half
// a step (absmax / 254); fp8 relative 2^-4 (3 mantissa bits) above the subnormal range.
TEST_CASE("host KV storage keeps keys and values in f16, int8 and fp8 within their precision", "[kv_cache]") {
  const int64_t D = 64;
  std::vector<float> row(D), back(3 * D);
  for (int64_t d = 0; d < D; ++d) row[static_cast<size_t>(d)] = std::sin(0.37f * static_cast<float>(d)) * (1.0f + 0.1f * static_cast<float>(d));
  float amax = 0;
  for (float x : row) amax = std::max(amax, std::fabs(x));
  for (const DType t : {DType::F32, DType::F16, DType::I8, DType::F8_E4M3}) {
    KvCacheGeometry geo{2, 2, D, 4};
    geo.dtype = t;
    const uint64_t per_row = t == DType::F32 ? 4 * D : t == DType::F16 ? 2 * D : D + 4;
    REQUIRE(geo.row_bytes() == per_row);
    REQUIRE(geo.block_bytes() == 2 * 2 * 2 * 4 * per_row);
    cpu::HostKvStorage kv(geo, geo.block_bytes() * 2);
    REQUIRE(kv.blocks() == 2);
    const std::vector<float> zeros(D, 0.0f);
    kv.write_row(1, 1, 1, 1, 1, row.data());
    kv.write_row(1, 1, 1, 1, 2, zeros.data());  // an all-zero row: scale 0, read back as zeros
    kv.write_row(1, 1, 1, 0, 1, zeros.data());  // the keys beside it are another segment
    kv.copy_block(1, 0);
    kv.read_rows(0, 1, 1, 1, 1, 2, back.data());
    INFO(dtype_name(t));
    for (int64_t d = 0; d < D; ++d) {
      const float want = row[static_cast<size_t>(d)], got = back[static_cast<size_t>(d)];
      switch (t) {
        case DType::F32: REQUIRE(got == want); break;
        case DType::F16: REQUIRE(std::fabs(got - want) <= std::fabs(want) * 0x1p-11f); break;
        case DType::I8: REQUIRE(std::fabs(got - want) <= amax / 254.0f * 1.0001f); break;
        default: REQUIRE(std::fabs(got - want) <= std::max(std::fabs(want) * 0x1p-4f, amax / 448.0f * 0x1p-9f)); break;
      }
      REQUIRE(back[static_cast<size_t>(D + d)] == 0.0f);
    }
    if (kv_dtype_scaled(t)) {  // the row's largest magnitude is exact up to its code
      const auto i = static_cast<size_t>(std::max_element(row.begin(), row.end(), [](float a, float b) { return std::fabs(a) < std::fabs(b); }) - row.begin());
      REQUIRE(std::fabs(back[i] - row[i]) <= amax * 1e-6f);
    }
  }
  REQUIRE(kv_dtype_from_name("int8") == DType::I8);
  REQUIRE(kv_dtype_from_name("fp8") == DType::F8_E4M3);
  REQUIRE_FALSE(kv_dtype_from_name("q4").has_value());
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
