// The CPU forward pass against the reference logits of every fixture (tests/fixtures/*/reference):
// each checkpoint is converted, its prompts run through the paged KV cache in chunks (the three
// prompts share each step), and the logits at every position compared with transformers' float32
// forward; then 32 greedy tokens are decoded one step at a time and compared with the reference's.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "backends/cpu/cpu_backend.h"
#include "runtime/engine/step_builder.h"
#include "convert/converter.h"
#include "convert/safetensors.h"
#include "models/model_builder.h"
#include "runtime/model_file/sparq_reader.h"
#include "test_util.h"

using namespace sparq;
using namespace sparq::test;
namespace fs = std::filesystem;

namespace {

struct Prompt {
  std::vector<int32_t> ids, greedy_ids;
  std::vector<float> margins;  // reference top1 - top2 at each greedy step
  std::vector<float> logits;   // reference [ids, vocab]
};

std::vector<Prompt> load_prompts(const fs::path& dir) {
  std::ifstream in(dir / "reference" / "outputs.json");
  const auto j = nlohmann::json::parse(in);
  SafetensorsFile ref((dir / "reference" / "logits.safetensors").string());
  std::vector<Prompt> out;
  for (size_t i = 0; i < j["prompts"].size(); ++i) {
    const auto& p = j["prompts"][i];
    Prompt pr;
    pr.ids = p["ids"].get<std::vector<int32_t>>();
    pr.greedy_ids = p["greedy_ids"].get<std::vector<int32_t>>();
    pr.margins = p["greedy_top2_margins"].get<std::vector<float>>();
    const SafetensorInfo* t = ref.find("prompt" + std::to_string(i));
    REQUIRE(t);
    REQUIRE(t->dtype == DType::F32);
    auto d = ref.data(*t);
    pr.logits.resize(d.size() / 4);
    std::memcpy(pr.logits.data(), d.data(), d.size());
    out.push_back(std::move(pr));
  }
  return out;
}

int64_t argmax(const float* v, int64_t n) { return std::max_element(v, v + n) - v; }

float top2_margin(const float* v, int64_t n) {
  float a = -INFINITY, b = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    if (v[i] > a) {
      b = a;
      a = v[i];
    } else if (v[i] > b) {
      b = v[i];
    }
  }
  return a - b;
}

struct Errors {
  double max_abs = 0, max_rel = 0;  // rel: |ours - ref| / max|ref| of the same position
  int top1_mismatch = 0, top1_ambiguous = 0, positions = 0, loose_positions = 0, loose_prompts = 0;
};

// Logit tolerances relative to the position's largest |logit| (see the comment at the TEST_CASE).
constexpr double kTightRel = 2e-5;
constexpr double kRoundingFlipRel = 2e-2;
bool quantizes_activations(const std::string& fixture) {
  return fixture.find("w8a8") != std::string::npos || fixture.find("fp8") != std::string::npos;
}

}  // namespace

// Tolerances. Everything is computed in f32 like the reference; what differs is the order of f32
// sums (dot products, norm means, softmax), ~1e-7 relative per op. Measured over all fixtures the
// logits then agree to <= 2.3e-6 of the position's largest |logit| (<= 3e-5 absolute), so every
// position must be within kTightRel = 2e-5 relative (10x headroom).
//
// One exception, quantified: with quantized activations an input that lies within an f32 ulp or
// so of a rounding boundary can land on the other side. gemma2-w8a8-int8 has one such case: prompt
// 2, position 14, a down_proj input whose x·127/a is 83.49998 here (2.3e-5 from the .5 tie, a
// 2.7e-7 relative difference) and rounds to 83 instead of 84. That one INT8 step (a/127 of the
// row's max) moves the logits of position 14, and through the global attention layer of later
// positions, by up to 1.4 % of the row's largest logit (0.139 absolute). So for fixtures that
// quantize activations, positions beyond kTightRel are allowed in at most one prompt (one flip
// per run, as measured) and must stay within kRoundingFlipRel = 2 %; a wrong formula (127.5 vs 127
// divisor, fp8 scale floor, norm offset) breaks every prompt at every position instead.
// Top-1 must agree wherever the reference's own top-2 margin exceeds twice our error there, and
// greedy tokens are compared up to the first step the reference decided by less than twice our
// largest measured logit error on that prompt.
TEST_CASE("forward pass matches the reference logits and greedy tokens of every fixture", "[forward]") {
  const auto dirs = fixture_dirs("reference/outputs.json");
  REQUIRE(!dirs.empty());
  ScratchDir scratch("forward");
  for (const fs::path& dir : dirs) {
    const std::string name = dir.filename().string();
    SECTION(name) {
      const std::string model_path = scratch / (name + ".sparq");
      convert_checkpoint({dir.string(), model_path, false});
      ModelFile file = ModelFile::open(model_path);
      const Graph graph = build_model_graph(file);
      auto backend = make_cpu_backend({2, true});
      REQUIRE(unsupported_ops(*backend, graph).empty());
      auto prepared = backend->prepare(graph);
      const auto prompts = load_prompts(dir);

      const KvCacheGeometry geo = kv_cache_geometry(graph, 4);
      auto kv = backend->create_kv_storage(geo, geo.block_bytes() * 64);
      BlockAllocator blocks(kv->blocks(), geo.block_tokens);
      std::vector<SeqId> seqs;
      for (size_t i = 0; i < prompts.size(); ++i) seqs.push_back(blocks.add_sequence());

      // Prefill in chunks of 16 tokens, all prompts in the same step: exercises chunk boundaries
      // across the sliding window (8) and batching of sequences at different positions.
      constexpr size_t kChunk = 16;
      std::vector<std::vector<float>> logits(prompts.size());
      int64_t vocab = 0;
      for (size_t start = 0;; start += kChunk) {
        std::vector<SequenceChunk> batch;
        std::vector<size_t> which;
        for (size_t i = 0; i < prompts.size(); ++i) {
          const auto& ids = prompts[i].ids;
          if (start >= ids.size()) continue;
          const size_t n = std::min(kChunk, ids.size() - start);
          batch.push_back({seqs[i], std::span<const int32_t>(ids).subspan(start, n), LogitRows::All});
          which.push_back(i);
        }
        if (batch.empty()) break;
        StepLogits out;
        const Step step = build_step(batch, blocks);
        prepared->run(step, *kv, out);
        commit_step(step, blocks);
        vocab = out.vocab;
        for (size_t c = 0; c < which.size(); ++c) {
          const float* r = out.row(step.chunks[c].first_logit_row);
          logits[which[c]].insert(logits[which[c]].end(), r, r + static_cast<int64_t>(batch[c].tokens.size()) * vocab);
        }
      }

      Errors err;
      std::vector<double> prompt_max_abs;
      for (size_t i = 0; i < prompts.size(); ++i) {
        const Prompt& p = prompts[i];
        REQUIRE(logits[i].size() == p.logits.size());
        int loose = 0;
        double prompt_abs = 0;
        for (size_t pos = 0; pos < p.ids.size(); ++pos) {
          const float* ours = logits[i].data() + pos * static_cast<size_t>(vocab);
          const float* ref = p.logits.data() + pos * static_cast<size_t>(vocab);
          double row_max = 0, row_err = 0;
          for (int64_t v = 0; v < vocab; ++v) {
            row_max = std::max(row_max, std::fabs(static_cast<double>(ref[v])));
            row_err = std::max(row_err, std::fabs(static_cast<double>(ours[v]) - ref[v]));
          }
          err.max_abs = std::max(err.max_abs, row_err);
          prompt_abs = std::max(prompt_abs, row_err);
          const double rel = row_err / std::max(row_max, 1e-6);
          err.max_rel = std::max(err.max_rel, rel);
          if (rel > kTightRel) ++loose;
          ++err.positions;
          if (argmax(ours, vocab) != argmax(ref, vocab)) {
            // Only acceptable where the reference itself cannot tell the two apart within tolerance.
            if (top2_margin(ref, vocab) <= 2 * row_err) ++err.top1_ambiguous;
            else ++err.top1_mismatch;
          }
        }
        prompt_max_abs.push_back(prompt_abs);
        err.loose_positions += loose;
        if (loose) ++err.loose_prompts;
      }

      // Greedy decoding, one token per step per sequence, all three sequences in the same batch.
      std::vector<std::vector<int32_t>> generated(prompts.size());
      std::vector<int32_t> next(prompts.size());
      for (size_t i = 0; i < prompts.size(); ++i) {
        const float* last = logits[i].data() + (prompts[i].ids.size() - 1) * static_cast<size_t>(vocab);
        next[i] = static_cast<int32_t>(argmax(last, vocab));
      }
      for (int step = 0; step < 32; ++step) {
        std::vector<SequenceChunk> batch;
        for (size_t i = 0; i < prompts.size(); ++i) {
          generated[i].push_back(next[i]);
          if (step < 31) batch.push_back({seqs[i], std::span<const int32_t>(&next[i], 1), LogitRows::Last});
        }
        if (batch.empty()) break;
        StepLogits out;
        run_step(*prepared, *kv, blocks, batch, out);
        for (size_t i = 0; i < prompts.size(); ++i) next[i] = static_cast<int32_t>(argmax(out.row(i), vocab));
      }
      int greedy_compared = 0, greedy_equal = 0;
      for (size_t i = 0; i < prompts.size(); ++i) {
        const Prompt& p = prompts[i];
        // Compare up to the first step the reference decided by less than our logit tolerance.
        for (size_t k = 0; k < p.greedy_ids.size(); ++k) {
          ++greedy_compared;
          if (generated[i][k] != p.greedy_ids[k]) break;
          ++greedy_equal;
          if (p.margins[k] < 2 * prompt_max_abs[i]) break;
        }
      }

      WARN(name << ": max abs logit error " << err.max_abs << ", max relative (to the position's largest logit) "
                << err.max_rel << ", top-1 mismatches " << err.top1_mismatch << " (+" << err.top1_ambiguous
                << " within tolerance) of " << err.positions << " positions, " << err.loose_positions
                << " positions beyond " << kTightRel << ", greedy " << greedy_equal << "/" << greedy_compared
                << " tokens equal");
      if (quantizes_activations(name)) {
        CHECK(err.loose_prompts <= 1);
        CHECK(err.max_rel <= kRoundingFlipRel);
      } else {
        CHECK(err.loose_positions == 0);
      }
      CHECK(err.top1_mismatch == 0);
      CHECK(greedy_equal == greedy_compared);
    }
  }
}
