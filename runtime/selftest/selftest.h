// sparq selftest: the reference block's prompts run on the loaded model's backend and compared with
// the reference - top-1 agreement, logit error relative to the row's largest |logit|, and greedy
// agreement up to the first step the reference itself decided by a near-tie.
//
// Tolerance (relative to the row's largest |logit|): models whose Linears quantize their input
// activations 2e-2, others 1e-4. Computing in f32 like the reference, only the order of sums
// differs (measured <= 2.3e-6 over every fixture); with quantized activations an input within an
// ulp of a rounding boundary can land on the other side, and one such flip moved a fixture's logits
// by up to 1.4% (tests/unit/test_forward_fixtures.cpp). A wrong kernel, a corrupted weight or a
// missing instruction moves them far more, and breaks top-1 and greedy agreement.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/loading/load_model.h"
#include "runtime/model_file/reference_block.h"

namespace sparq {

inline constexpr double kSelftestToleranceQuantizedInputs = 2e-2;
inline constexpr double kSelftestToleranceDefault = 1e-4;

// The tolerance above for this file's schemes.
double default_selftest_tolerance(const ModelFile& file);

struct PromptCheck {
  std::string text;
  int64_t positions = 0;
  double max_rel_error = 0;  // over the reference's top-k logits at every position
  int64_t worst_position = 0;
  int64_t top1_agree = 0;
  int64_t top1_near_ties = 0;  // a different top token where the reference's own top-2 margin is a near-tie
  int64_t top1_mismatches = 0; // a different top token with a clear reference margin: a failure
  int64_t greedy_total = 0;    // the reference's greedy tokens
  int64_t greedy_agreed = 0;   // equal before the first difference
  bool greedy_failed = false;  // a difference where the reference's margin was clear
  std::string greedy;          // what happened, in words
};

struct SelftestReport {
  std::string backend;
  double tolerance = 0;
  nlohmann::json source;  // the reference's
  std::vector<PromptCheck> prompts;
  std::vector<std::string> problems;  // empty when it passed
  double seconds = 0;

  bool passed() const { return problems.empty(); }
  double max_rel_error() const;
  nlohmann::json to_json() const;
  // What an unauthenticated /health may show: the verdict, the figures and the problems, without
  // the prompts or where the reference was made.
  nlohmann::json health_json() const;
  std::string summary() const;  // one line
};

// Throws sparq::Error when a prompt cannot run (longer than the model's context).
SelftestReport run_selftest(const LoadedModel& model, const ReferenceBlock& reference, double tolerance);

}  // namespace sparq
