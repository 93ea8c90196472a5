#include "runtime/selftest/selftest.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "runtime/core/error.h"
#include "runtime/model_file/linear_scheme.h"
#include "runtime/selftest/prompt_run.h"

namespace sparq {

namespace {

std::string percent(double rel) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.3g%%", rel * 100);
  return buf;
}

// A top-2 margin the two sides may legitimately decide either way: each logit may be off by
// tolerance x scale.
bool near_tie(double margin, double scale, double tolerance) { return margin <= 2 * tolerance * scale; }

PromptCheck check_prompt(const LoadedModel& model, const ReferencePrompt& ref, double tol, size_t index,
                         std::vector<std::string>& problems) {
  PromptCheck c;
  c.text = ref.text;
  c.positions = static_cast<int64_t>(ref.ids.size());
  c.greedy_total = static_cast<int64_t>(ref.greedy_ids.size());
  const std::string where = "prompt " + std::to_string(index);
  bool diverged = false;
  const PromptRun run = run_prompt(model, ref.ids, c.greedy_total, [&](std::span<const float> row, int64_t k) {
    const int32_t ours = argmax_token(row);
    if (diverged) return -1;  // nothing after the first difference is compared: stop decoding
    const int32_t theirs = ref.greedy_ids[static_cast<size_t>(k)];
    if (ours == theirs) {
      ++c.greedy_agreed;
      return ours;
    }
    diverged = true;
    const double margin = ref.greedy_margins[static_cast<size_t>(k)];
    char buf[256];
    if (near_tie(margin, row_scale(row), tol)) {
      std::snprintf(buf, sizeof buf, "equal for %lld of %lld tokens, then a near-tie the reference decided by %.3g",
                    static_cast<long long>(k), static_cast<long long>(c.greedy_total), margin);
    } else {
      c.greedy_failed = true;
      std::snprintf(buf, sizeof buf, "differs at token %lld of %lld: token %d instead of %d, which the reference chose by a clear margin of %.3g",
                    static_cast<long long>(k), static_cast<long long>(c.greedy_total), ours, theirs, margin);
      problems.push_back(where + ": greedy continuation " + buf);
    }
    c.greedy = buf;
    return -1;
  });
  if (!diverged) c.greedy = "all " + std::to_string(c.greedy_total) + " tokens equal";

  int64_t worst_mismatch = -1;
  for (size_t p = 0; p < ref.positions.size(); ++p) {
    const ReferencePosition& r = ref.positions[p];
    const std::span<const float> row(run.prompt_row(static_cast<int64_t>(p)), static_cast<size_t>(run.vocab));
    double err = 0;
    for (size_t i = 0; i < r.top_ids.size(); ++i) {
      const double d = std::fabs(static_cast<double>(row[static_cast<size_t>(r.top_ids[i])]) - r.top_logits[i]);
      err = std::isfinite(d) ? std::max(err, d) : std::numeric_limits<double>::infinity();  // NaN: a failure
    }
    for (float v : row)
      if (!std::isfinite(v)) err = std::numeric_limits<double>::infinity();
    const double rel = err / r.row_scale;
    if (rel > c.max_rel_error || !std::isfinite(rel)) {
      c.max_rel_error = rel;
      c.worst_position = static_cast<int64_t>(p);
    }
    if (argmax_token(row) == r.top_ids[0]) {
      ++c.top1_agree;
    } else if (r.top_logits.size() >= 2 && near_tie(r.top_logits[0] - r.top_logits[1], r.row_scale, tol)) {
      ++c.top1_near_ties;
    } else {
      ++c.top1_mismatches;
      if (worst_mismatch < 0) worst_mismatch = static_cast<int64_t>(p);
    }
  }
  if (!(c.max_rel_error <= tol))
    problems.push_back(where + " position " + std::to_string(c.worst_position) + ": logits differ from the reference by " +
                       percent(c.max_rel_error) + " of the row's largest |logit| (tolerance " + percent(tol) + ")");
  if (c.top1_mismatches > 0)
    problems.push_back(where + ": the most likely token differs from the reference's at " + std::to_string(c.top1_mismatches) +
                       " of " + std::to_string(c.positions) + " positions where the reference was clear (first: position " +
                       std::to_string(worst_mismatch) + ")");
  return c;
}

}  // namespace

double default_selftest_tolerance(const ModelFile& file) {
  const nlohmann::json& meta = file.metadata();
  if (meta.contains("linears") && meta["linears"].is_object())
    for (const auto& [module, scheme] : meta["linears"].items())
      if (linear_scheme_from_json(scheme, module).input) return kSelftestToleranceQuantizedInputs;
  return kSelftestToleranceDefault;
}

double SelftestReport::max_rel_error() const {
  double m = 0;
  for (const PromptCheck& c : prompts) m = std::isfinite(c.max_rel_error) ? std::max(m, c.max_rel_error) : c.max_rel_error;
  return m;
}

nlohmann::json SelftestReport::to_json() const {
  nlohmann::json prompts_json = nlohmann::json::array();
  for (const PromptCheck& c : prompts)
    prompts_json.push_back({{"text", c.text},
                            {"positions", c.positions},
                            {"max_rel_error", std::isfinite(c.max_rel_error) ? nlohmann::json(c.max_rel_error) : nlohmann::json("inf")},
                            {"worst_position", c.worst_position},
                            {"top1_agree", c.top1_agree},
                            {"top1_near_ties", c.top1_near_ties},
                            {"top1_mismatches", c.top1_mismatches},
                            {"greedy_total", c.greedy_total},
                            {"greedy_agreed", c.greedy_agreed},
                            {"greedy", c.greedy}});
  const double m = max_rel_error();
  return {{"passed", passed()},
          {"backend", backend},
          {"tolerance", tolerance},
          {"max_rel_error", std::isfinite(m) ? nlohmann::json(m) : nlohmann::json("inf")},
          {"reference", source},
          {"prompts", std::move(prompts_json)},
          {"problems", problems},
          {"seconds", seconds}};
}

nlohmann::json SelftestReport::health_json() const {
  nlohmann::json j = to_json();
  j.erase("reference");
  for (auto& p : j["prompts"]) p.erase("text");
  return j;
}

std::string SelftestReport::summary() const {
  int64_t agree = 0, total = 0, greedy = 0, greedy_total = 0;
  for (const PromptCheck& c : prompts) {
    agree += c.top1_agree;
    total += c.positions;
    greedy += c.greedy_agreed;
    greedy_total += c.greedy_total;
  }
  char buf[320];
  std::snprintf(buf, sizeof buf, "%s on %s: top-1 %lld/%lld positions, max logit error %s of the row's largest (tolerance %s), greedy %lld/%lld tokens",
                passed() ? "PASSED" : "FAILED", backend.c_str(), static_cast<long long>(agree), static_cast<long long>(total),
                percent(max_rel_error()).c_str(), percent(tolerance).c_str(), static_cast<long long>(greedy),
                static_cast<long long>(greedy_total));
  return buf;
}

SelftestReport run_selftest(const LoadedModel& model, const ReferenceBlock& reference, double tolerance) {
  if (!(tolerance > 0)) fail("the self-test tolerance must be positive");
  const auto t0 = std::chrono::steady_clock::now();
  SelftestReport r;
  r.backend = model.backend->name();
  r.tolerance = tolerance;
  r.source = reference.source;
  for (size_t i = 0; i < reference.prompts.size(); ++i)
    r.prompts.push_back(check_prompt(model, reference.prompts[i], tolerance, i, r.problems));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace sparq
