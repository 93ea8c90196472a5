// sparq compare FILE --backends cpu,vulkan[,cuda] [--prompt TEXT]... [-n N] [sampling flags]: the
// same prompts with the same seed on each backend, every backend compared with the first (see
// runtime/selftest/backend_compare.h). Exit status 0 when every backend agrees with the first
// within the tolerance and the sampled tokens are equal wherever no near-tie was hit; 1 otherwise.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/cmd_generate.h"
#include "apps/commands.h"
#include "runtime/core/error.h"
#include "runtime/selftest/backend_compare.h"
#include "runtime/selftest/selftest.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

namespace {

struct CompareArgs {
  std::string model;
  std::vector<std::string> backends, prompts;
  BackendOptions backend_options;  // --threads
  int64_t tokens = 32;
  SamplingParams sampling;
  double tolerance = 0;
  bool json = false;
};

struct Prompt {
  std::string text;
  std::vector<int32_t> ids;
};

// --prompt texts, else the file's self-test prompts, else the default ones.
std::vector<Prompt> compare_prompts(const CompareArgs& a, const LoadedModel& m) {
  std::vector<Prompt> out;
  const LoadedTokenizer tok = load_tokenizer(m.file);
  if (a.prompts.empty()) {
    if (const auto ref = read_reference_block(m.file)) {
      for (const ReferencePrompt& p : ref->prompts) out.push_back({p.text, p.ids});
      return out;
    }
  }
  for (const std::string& t : a.prompts.empty() ? default_reference_prompts() : a.prompts)
    out.push_back({t, tok.tokenizer->encode(t, /*add_special=*/true)});
  return out;
}

// "cpu,cpu:threads=1,onednn=off" -> {"cpu", "cpu:threads=1,onednn=off"}: an item with "=" and no
// ":" is one more option of the backend before it.
std::vector<std::string> split_backend_list(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t end = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, end - start);
    if (!out.empty() && item.find('=') != std::string::npos && item.find(':') == std::string::npos) out.back() += "," + item;
    else out.push_back(item);
    start = end + 1;
  }
  return out;
}

std::string shown(const std::string& text) {
  std::string s = text.size() > 48 ? text.substr(0, 45) + "..." : text;
  for (char& c : s)
    if (c == '\n') c = ' ';
  return s;
}

void run_compare(const CompareArgs& a) {
  if (a.backends.size() < 2) fail("--backends: name at least two backends to compare, e.g. cpu,vulkan");
  std::vector<std::vector<PromptRun>> runs(a.backends.size());
  std::vector<Prompt> prompts;
  double tol = a.tolerance;
  for (size_t b = 0; b < a.backends.size(); ++b) {
    LoadOptions load;
    load.backend = a.backends[b];
    load.backend_options = a.backend_options;
    const LoadedModel m = load_model(a.model, load);
    if (b == 0) {
      prompts = compare_prompts(a, m);
      if (!(tol > 0)) tol = default_selftest_tolerance(m.file);
    }
    for (const Prompt& p : prompts) runs[b].push_back(run_sampled(m, p.ids, a.tokens, a.sampling));
  }

  bool ok = true;
  nlohmann::json report = {{"model", a.model}, {"backends", a.backends}, {"tolerance", tol},
                           {"seed", a.sampling.seed}, {"temperature", a.sampling.temperature}};
  nlohmann::json prompts_json = nlohmann::json::array();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Prompt& p = prompts[i];
    nlohmann::json pj = {{"text", p.text}, {"tokens", p.ids.size()}, {"comparisons", nlohmann::json::array()}};
    if (!a.json) std::printf("prompt %zu \"%s\" (%zu tokens)\n", i, shown(p.text).c_str(), p.ids.size());
    for (size_t b = 1; b < a.backends.size(); ++b) {
      const RunComparison c = compare_runs(runs[0][i], runs[b][i], p.ids, a.sampling, tol);
      ok = ok && c.ok;
      nlohmann::json cj = comparison_json(c);
      cj["backend"] = a.backends[b];
      cj["against"] = a.backends[0];
      pj["comparisons"].push_back(std::move(cj));
      if (a.json) continue;
      std::printf("  %s against %s: logits differ by at most %.3g of the row's largest (tolerance %.3g), top-1 differs at %lld of %zu positions%s\n",
                  a.backends[b].c_str(), a.backends[0].c_str(), c.max_rel, tol, static_cast<long long>(c.top1_differ),
                  p.ids.size(), c.max_rel <= tol ? "" : "  << beyond tolerance");
      std::printf("    position  token   rel.difference  top-1\n");
      for (size_t q = 0; q < c.position_rel.size(); ++q)
        std::printf("    %8zu  %6d  %14.3g  %s%s\n", q, p.ids[q], c.position_rel[q], c.position_top1_same[q] ? "same" : "DIFFERS",
                    c.position_rel[q] <= tol ? "" : "  <<");
      std::printf("    sampled continuation: %s\n", c.explanation.c_str());
    }
    prompts_json.push_back(std::move(pj));
  }
  report["prompts"] = std::move(prompts_json);
  report["ok"] = ok;
  if (a.json) std::printf("%s\n", report.dump(2).c_str());
  else std::printf("%s\n", ok ? "backends agree" : "backends DISAGREE beyond near-ties (see above)");
  if (!ok) throw ExitStatus{1};
}

}  // namespace

void add_compare_command(CLI::App& app) {
  auto args = std::make_shared<CompareArgs>();
  args->sampling.temperature = 1.0f;
  args->sampling.seed = 1;
  CLI::App* cmd = app.add_subcommand("compare", "Run the same prompts with the same seed on several backends and compare");
  cmd->add_option("model", args->model, "Model file (.sparq)")->required()->check(CLI::ExistingFile);
  cmd->add_option_function<std::string>(
         "--backends", [args](const std::string& list) { args->backends = split_backend_list(list); },
         "Backends to compare, the first is the baseline, e.g. cpu,vulkan; each may take options as for --backend "
         "(cpu,cpu:threads=1,onednn=off)")
      ->required()
      ->check([](const std::string& list) -> std::string {
        for (const std::string& spec : split_backend_list(list))
          if (std::string why = backend_spec_problem(spec); !why.empty()) return why;
        return {};
      });
  cmd->add_option("-p,--prompt", args->prompts, "A prompt (repeatable); default: the file's self-test prompts, or three built in");
  // Every logits row of every backend is kept (vocab floats each), so runs stay short.
  cmd->add_option("-n,--tokens", args->tokens, "Tokens to sample after each prompt (default 32, at most 256)")
      ->check(CLI::Range(int64_t{0}, int64_t{256}));
  add_sampling_flags(*cmd, args->sampling);
  cmd->add_option("--threads", args->backend_options.threads, "CPU threads (0 = all)")->check(CLI::Range(0, 1024));
  cmd->add_option("--tolerance", args->tolerance, "Largest logit difference, relative to the row's largest |logit| (default as selftest)")
      ->check(CLI::Range(1e-9, 1.0));
  cmd->add_flag("--json", args->json, "Print the report as JSON");
  cmd->callback([args] { run_compare(*args); });
}

}  // namespace sparq
