// A quantized KV cache (--kv-dtype) through the whole forward pass: each fixture's prompt (longer
// than the Gemma fixtures' sliding window) and a greedy continuation with keys and values stored
// in f16, int8 and fp8, against the f32 cache.
//
// Bounds, as a fraction of the row's largest |logit|: six times the largest error of one stored
// value relative to its row's absmax - 2^-11 (f16), half a step of absmax / 127 = 1/254 (int8),
// 2^-4 (fp8 E4M3, 3 mantissa bits). Attention averages those errors over positions and head_dim,
// and the tiny fixtures (hidden 64, two layers) carry them to the logits; the factor six covers
// what was measured once, when the test was written: 1.2x (f16), 5.0x (int8), 1.4x (fp8) at most
// over these fixtures. A wrong scale or a mixed-up row moves logits by whole units. The error also
// has to grow from f16 to int8 to fp8, and be nonzero. The fixtures are the unquantized-activation
// ones: where Linears quantize their inputs, any perturbation, however small, can flip an input
// across a rounding boundary and move logits by a quantization step (runtime/selftest/selftest.h),
// which says nothing about the cache's precision.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "engine_test_util.h"
#include "runtime/loading/load_model.h"
#include "runtime/selftest/prompt_run.h"

using namespace sparq;

namespace {

PromptRun greedy_run(const std::string& path, DType kv, const std::vector<int32_t>& prompt) {
  LoadOptions o;
  o.backend = "cpu";
  o.backend_options.threads = 2;
  o.kv_dtype = kv;
  const LoadedModel m = load_model(path, o);
  REQUIRE(m.kv_geometry().dtype == kv);
  return run_prompt(m, prompt, 8, [](std::span<const float> row, int64_t) { return argmax_token(row); });
}

}  // namespace

TEST_CASE("a KV cache in f16, int8 or fp8 moves logits within its precision", "[kv_cache][fixtures]") {
  for (const std::string name : {"gemma2-bf16", "llama-bf16", "llama-w4a16"}) {
    DYNAMIC_SECTION(name) {
      test::ScratchDir dir("kv-dtype-" + name);
      const std::string path = dir / "m.sparq";
      convert_checkpoint({test::fixture_path(name), path, false});
      std::vector<int32_t> prompt(48);
      for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(17 + (i * 37) % 400);
      const PromptRun ref = greedy_run(path, DType::F32, prompt);
      double previous = 0;
      for (const auto& [dtype, value_error] : {std::pair{DType::F16, 0x1p-11}, {DType::I8, 1.0 / 254}, {DType::F8_E4M3, 0x1p-4}}) {
        const double bound = 6 * value_error;
        const PromptRun run = greedy_run(path, dtype, prompt);
        double worst = 0;
        for (int64_t p = 0; p < static_cast<int64_t>(prompt.size()); ++p) {
          const std::span<const float> a(ref.prompt_row(p), static_cast<size_t>(ref.vocab));
          const float scale = row_scale(a);
          for (int64_t v = 0; v < ref.vocab; ++v)
            worst = std::max(worst, static_cast<double>(std::fabs(run.prompt_row(p)[v] - a[static_cast<size_t>(v)]) / scale));
        }
        INFO(dtype_name(dtype) << ": largest logit change " << worst << " of the row's largest |logit| (bound " << bound << ")");
        CHECK(worst <= bound);
        CHECK(worst > previous);  // the cache really is stored in that dtype, coarser each time
        previous = worst;
        // Greedy continuations agree up to the first step whose top two logits the error could swap.
        for (size_t k = 0; k < ref.continuation.size(); ++k) {
          const std::span<const float> row(ref.continuation_row(static_cast<int64_t>(k)), static_cast<size_t>(ref.vocab));
          if (top2_margin(row) < 2 * bound * row_scale(row)) break;
          CHECK(run.continuation[k] == ref.continuation[k]);
          if (run.continuation[k] != ref.continuation[k]) break;
        }
      }
    }
  }
}
