// sparq selftest FILE [--backend B] [--tolerance REL] [--json]: runs the self-test reference the
// file carries (sparq convert --reference) on this machine's backend and compares (see
// runtime/selftest/selftest.h). Exit status: 0 passed, 1 failed (or could not run), 3 the file
// carries no reference.
#include <cstdio>
#include <memory>
#include <string>

#include "apps/cmd_generate.h"
#include "apps/commands.h"
#include "runtime/core/error.h"
#include "runtime/selftest/selftest.h"

namespace sparq {

namespace {

constexpr int kNoReference = 3;

struct SelftestArgs {
  std::string model;
  LoadOptions load;
  double tolerance = 0;
  bool json = false;
};

void run_selftest_command(const SelftestArgs& a) {
  // The block first: a file without one (or with a broken one) is told so before the model loads.
  const auto reference = read_reference_block(ModelFile::open(a.model));
  if (!reference) {
    std::fprintf(stderr, "%s carries no self-test reference: convert it with --reference REF.json (transformers' logits) "
                 "or --reference cpu\n", a.model.c_str());
    throw ExitStatus{kNoReference};
  }
  LoadedModel m = load_model(a.model, a.load);
  const double tol = a.tolerance > 0 ? a.tolerance : default_selftest_tolerance(m.file);
  const SelftestReport r = run_selftest(m, *reference, tol);
  if (a.json) {
    std::printf("%s\n", r.to_json().dump(2).c_str());
  } else {
    std::printf("reference: %s\n", r.source.dump().c_str());
    for (size_t i = 0; i < r.prompts.size(); ++i) {
      const PromptCheck& c = r.prompts[i];
      std::printf("prompt %zu (%lld tokens): top-1 %lld/%lld (%lld near-ties), max error %.3g%% at position %lld; greedy: %s\n", i,
                  static_cast<long long>(c.positions), static_cast<long long>(c.top1_agree), static_cast<long long>(c.positions),
                  static_cast<long long>(c.top1_near_ties), c.max_rel_error * 100, static_cast<long long>(c.worst_position),
                  c.greedy.c_str());
    }
    std::printf("%s (%.1f s)\n", r.summary().c_str(), r.seconds);
  }
  if (!r.passed()) {
    for (const std::string& p : r.problems) std::fprintf(stderr, "  %s\n", p.c_str());
    std::fprintf(stderr,
                 "sparq: self-test failed: %s does not compute here what its reference computed. If the file was copied, "
                 "check it (sparq info --check %s); if it passes, the backend is at fault: try another (--backend cpu, "
                 "cpu:onednn=off) and report the difference (sparq compare).\n",
                 a.model.c_str(), a.model.c_str());
    throw ExitStatus{1};
  }
}

}  // namespace

void add_selftest_command(CLI::App& app) {
  auto args = std::make_shared<SelftestArgs>();
  CLI::App* cmd = app.add_subcommand("selftest", "Check the model on this machine against the reference its file carries");
  cmd->add_option("model", args->model, "Model file (.sparq)")->required()->check(CLI::ExistingFile);
  add_backend_flags(*cmd, args->load);
  cmd->add_option("--tolerance", args->tolerance,
                  "Largest logit error, relative to the row's largest |logit| (default: 2e-2 for models that quantize "
                  "activations, 1e-4 otherwise)")
      ->check(CLI::Range(1e-9, 1.0));
  cmd->add_flag("--json", args->json, "Print the report as JSON");
  cmd->callback([args] { run_selftest_command(*args); });
}

}  // namespace sparq
