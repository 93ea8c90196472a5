// Paged KV cache: block accounting, refusal when the budget is exhausted, reuse after removal.
#include <catch2/catch.hpp>

#include "runtime/core/error.h"
#include "runtime/graph/backend.h"
#include "runtime/kv_cache/paged_kv_cache.h"

using namespace sparq;

TEST_CASE("paged KV cache allocates whole blocks and refuses cleanly when full", "[kv_cache]") {
  KvCacheGeometry geo{2, 1, 4, 4};  // 2 layers, 1 kv head, head_dim 4, 4 positions per block
  REQUIRE(geo.block_bytes() == 2 * 1 * 2 * 4 * 4 * sizeof(float));
  PagedKvCache cache(geo, geo.block_bytes() * 3 + 17);  // 3 blocks (the remainder is unused)
  REQUIRE(cache.total_blocks() == 3);
  const SeqId a = cache.add_sequence(), b = cache.add_sequence();
  REQUIRE(cache.reserve(a, 5));  // 2 blocks
  REQUIRE(cache.free_blocks() == 1);
  REQUIRE_FALSE(cache.reserve(b, 5));  // needs 2, 1 free: refused, nothing taken
  REQUIRE(cache.free_blocks() == 1);
  REQUIRE(cache.block_table(b).empty());

  // Keys and values of different positions, layers and kinds never share storage.
  cache.set_length(a, 5);
  *cache.key(a, 1, 0, 4) = 1.5f;
  *cache.value(a, 1, 0, 4) = 2.5f;
  *cache.key(a, 0, 0, 4) = 3.5f;
  REQUIRE(*cache.key(a, 1, 0, 4) == 1.5f);
  REQUIRE(*cache.value(a, 1, 0, 4) == 2.5f);
  REQUIRE_THROWS_AS(cache.key(a, 0, 0, 8), Error);  // beyond the reserved blocks

  // A batch that does not fit is refused as a whole, before any block is taken.
  std::vector<int32_t> t1(3), t2(4);
  Batch batch{{{a, t1, LogitRows::Last}, {b, t2, LogitRows::Last}}};  // a: 5+3=8 (fits its 2 blocks), b: 4 (1 block) -> fits
  reserve_batch(batch, cache);
  REQUIRE(cache.free_blocks() == 0);
  std::vector<int32_t> t3(1);
  cache.set_length(b, 4);
  REQUIRE_THROWS_AS(reserve_batch(Batch{{{b, t3, LogitRows::Last}}}, cache), KvCacheFull);
  REQUIRE(cache.block_table(b).size() == 1);

  cache.remove_sequence(a);
  REQUIRE(cache.free_blocks() == 2);
  REQUIRE(cache.reserve(b, 12));
  REQUIRE(cache.block_table(b).size() == 3);
  REQUIRE_THROWS_AS(PagedKvCache(geo, geo.block_bytes() - 1), Error);
}
