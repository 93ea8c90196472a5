// The two INT8 W8A8 linear paths (oneDNN on packed weights, our kernel on the mmap) compute the
// same exact int32 sums and scale them in the same order, so their logits must be bit-identical.
#include <catch2/catch.hpp>
#include <filesystem>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/onednn_int8_matmul.h"
#include "runtime/model_file/int8_tiles.h"
#include "runtime/engine/step_builder.h"
#include "convert/converter.h"
#include "models/model_builder.h"
#include "runtime/model_file/sparq_reader.h"
#include "test_util.h"

using namespace sparq;
using namespace sparq::test;
namespace fs = std::filesystem;

namespace {

std::vector<float> prompt_logits(const ModelFile& file, bool use_onednn, const std::vector<int32_t>& ids) {
  const Graph graph = build_model_graph(file);
  auto backend = make_cpu_backend({2, use_onednn});
  auto prepared = backend->prepare(graph);
  const KvCacheGeometry geo = kv_cache_geometry(graph);
  auto kv = backend->create_kv_storage(geo, geo.block_bytes() * 4);
  BlockAllocator blocks(kv->blocks(), geo.block_tokens);
  const SeqId s = blocks.add_sequence();
  StepLogits out;
  const SequenceChunk prompt{s, ids, LogitRows::All};
  run_step(*prepared, *kv, blocks, {&prompt, 1}, out);
  std::vector<int32_t> next{ids[1]};
  StepLogits step;
  const SequenceChunk decode{s, next, LogitRows::All};
  run_step(*prepared, *kv, blocks, {&decode, 1}, step);  // M = 1 as in decode
  out.values.insert(out.values.end(), step.values.begin(), step.values.end());
  return out.values;
}

}  // namespace

TEST_CASE("INT8 W8A8 through oneDNN equals our own kernel bit for bit", "[forward]") {
  if (!cpu::onednn_int8_is_exact()) WARN("no VNNI on this CPU: both paths run our kernel (oneDNN's would saturate)");
  ScratchDir scratch("int8-paths");
  for (const char* name : {"gemma2-w8a8-int8", "llama-w8a8-int8"}) {
    const fs::path dir = fs::path(SPARQ_SOURCE_DIR) / "tests" / "fixtures" / name;
    if (!fs::exists(dir / "config.json")) continue;
    SECTION(name) {
      const std::string path = scratch / (std::string(name) + ".sparq");
      convert_checkpoint({dir.string(), path, false});
      const ModelFile file = ModelFile::open(path);
      std::vector<int32_t> ids;
      for (int i = 0; i < 37; ++i) ids.push_back(5 + (i * 131) % 600);
      const auto a = prompt_logits(file, true, ids), b = prompt_logits(file, false, ids);
      REQUIRE(a.size() == b.size());
      size_t differ = 0;
      for (size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
      CHECK(differ == 0);
    }
  }
}

// The oneDNN wrapper itself, on any CPU: with values small enough that even a kernel adding u8 x s8
// pairs into int16 cannot saturate, every row count (exact primitives up to kExactRows, pieces of
// larger steps, a remainder) gives the exact int32 products times the weight and row scales, in the
// order (acc * s_w) * s_x. Two weights of the same shape share primitives and must not mix; one is
// given row-major (packed at load), the other in the file's int8_k4_tiles layout (padded in both
// dimensions here), which VNNI CPUs read in place.
TEST_CASE("oneDNN INT8 matmul is exact for every row count, in pieces and with shared primitives", "[forward]") {
  constexpr int64_t n = 37, k = 72;
  auto make_weight = [](int salt) {
    std::vector<int8_t> w(static_cast<size_t>(n * k));
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int8_t>(static_cast<int>((i * 7 + static_cast<size_t>(salt)) % 17) - 8);
    return w;
  };
  const std::vector<int8_t> w1 = make_weight(0), w2 = make_weight(5);
  std::vector<float> scales(static_cast<size_t>(n));
  for (size_t o = 0; o < scales.size(); ++o) scales[o] = 0.5f + 0.25f * static_cast<float>(o % 4);
  const Int8TilesShape shape(n, k);
  std::vector<uint8_t> tiles2(shape.total_bytes());
  int8_tiles_pack(shape, w2.data(), tiles2.data());
  const cpu::OneDnnInt8Matmul mm1(reinterpret_cast<const uint8_t*>(w1.data()), false, n, k, scales, 2),
      mm2(tiles2.data(), true, n, k, scales, 2);
  CHECK_FALSE(mm1.in_place());
  if (cpu::onednn_int8_is_exact()) CHECK(mm2.in_place());  // the layout is what VNNI kernels read
  CHECK(mm2.packed_bytes() == (mm2.in_place() ? 0u : shape.total_bytes()));
  for (int64_t m : {1, 2, 7, 16, 63, 64, 65, 300, 512, 1100}) {
    std::vector<int8_t> x(static_cast<size_t>(m * k));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int8_t>(static_cast<int>((i * 13 + static_cast<size_t>(m)) % 17) - 8);
    std::vector<float> sx(static_cast<size_t>(m));
    for (size_t t = 0; t < sx.size(); ++t) sx[t] = 0.001f * static_cast<float>(t % 9 + 1);
    for (const auto* pair : {&w1, &w2}) {
      const cpu::OneDnnInt8Matmul& mm = pair == &w1 ? mm1 : mm2;
      const std::vector<int8_t>& w = *pair;
      std::vector<float> y(static_cast<size_t>(m * n));
      mm.run(x.data(), m, sx.data(), y.data());
      size_t differ = 0;
      for (int64_t r = 0; r < m; ++r)
        for (int64_t o = 0; o < n; ++o) {
          int32_t acc = 0;
          for (int64_t c = 0; c < k; ++c) acc += int32_t{x[static_cast<size_t>(r * k + c)]} * w[static_cast<size_t>(o * k + c)];
          const float want = static_cast<float>(acc) * scales[static_cast<size_t>(o)] * sx[static_cast<size_t>(r)];
          differ += y[static_cast<size_t>(r * n + o)] != want;
        }
      INFO("M = " << m << ", weight " << (pair == &w1 ? 1 : 2));
      CHECK(differ == 0);
    }
  }
}

TEST_CASE("a step of any size is cut into pieces that each have a primitive", "[forward]") {
  using M = cpu::OneDnnInt8Matmul;
  for (int64_t m = 1; m <= 3000; ++m) {
    int64_t left = m, pieces = 0;
    while (left > 0) {
      const int64_t p = M::piece_rows(left);
      INFO("m = " << m << ", left = " << left << ", piece = " << p);
      REQUIRE(p >= 1);
      REQUIRE(p <= left);
      REQUIRE((p <= M::kExactRows || (p % M::kExactRows == 0 && p <= M::kMaxPieceRows)));
      left -= p;
      ++pieces;
    }
    CHECK(pieces <= m / M::kMaxPieceRows + 2);
  }
}

// oneDNN 2.6 runs a reference kernel, three orders of magnitude slower, for shapes its fast kernels
// refuse (a runtime M did that): where VNNI makes the oneDNN path the one INT8 linears take, every
// row count must get a real kernel.
TEST_CASE("oneDNN INT8 matmul never runs a reference kernel where it is used", "[forward]") {
  if (!cpu::onednn_int8_is_exact()) {
    WARN("no VNNI on this CPU: INT8 linears do not use oneDNN");
    return;
  }
  constexpr int64_t n = 256, k = 512;
  const std::vector<int8_t> w(static_cast<size_t>(n * k), 1);
  const cpu::OneDnnInt8Matmul mm(reinterpret_cast<const uint8_t*>(w.data()), false, n, k,
                                 std::vector<float>(static_cast<size_t>(n), 1.0f), 2);
  for (int64_t m : {1, 2, 5, 16, 17, 33, 64, 128, 192, 448, 512}) {
    const std::string impl = mm.implementation(m);
    INFO("M = " << m << ": " << impl);
    CHECK(impl.find("ref") == std::string::npos);
  }
}
