// sparq convert HF_DIR -o FILE [--verify] [--head keep|int8] [--reference REF.json|cpu]
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>

#include "apps/commands.h"
#include "apps/progress_bar.h"
#include "backends/device_info.h"
#include "convert/converter.h"
#include "runtime/core/error.h"
#include "runtime/selftest/prompt_run.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

namespace {

// The temporary output, removed if the conversion is interrupted by a signal.
char g_temp_path[4096];

void remove_temp_and_die(int sig) {
  if (g_temp_path[0]) ::unlink(g_temp_path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

constexpr int64_t kCpuReferenceTopK = 10;
constexpr int64_t kCpuReferenceGreedyTokens = 16;

// `--reference cpu`: the complete temporary file run on this machine's CPU backend.
std::string cpu_reference(const std::string& temp_path, bool quiet) {
  if (!quiet) std::fprintf(stderr, "computing the self-test reference on the CPU backend...\n");
  LoadOptions load;
  load.backend = "cpu";
  const LoadedModel model = load_model(temp_path, load);
  const LoadedTokenizer tok = load_tokenizer(model.file);
  const std::vector<DeviceInfo> cpus = list_cpu_devices();
  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  nlohmann::json source = {{"producer", "sparq-cpu"},
                           {"description", std::string("sparq's CPU backend while converting (") + kConverterVersion + ")"},
                           {"machine", cpus.empty() ? std::string("?") : cpus.front().name + ", " + cpus.front().details},
                           {"created", date}};
  return make_reference_block(model, *tok.tokenizer, default_reference_prompts(), kCpuReferenceTopK,
                              kCpuReferenceGreedyTokens, std::move(source))
      .to_json();
}

void set_reference(ConvertOptions& opts, const std::string& value, bool quiet) {
  if (value == "cpu") {
    opts.make_reference = [quiet](const std::string& temp_path) { return cpu_reference(temp_path, quiet); };
    return;
  }
  std::ifstream f(value, std::ios::binary);
  if (!f) fail("--reference: cannot read ", value, " (give a reference JSON file, or cpu)");
  opts.reference_json.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  if (opts.reference_json.empty()) fail("--reference: ", value, " is empty");
  opts.reference_origin = value;
}

void run_convert(const ConvertOptions& opts, bool quiet) {
  struct sigaction sa {};
  sa.sa_handler = remove_temp_and_die;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);

  ProgressBar bar;
  auto progress = [&](const std::string& phase, uint64_t done, uint64_t total, const std::string& item) {
    if (!quiet) bar.update(phase, done, total, item);
  };
  auto on_temp = [](const std::string& p) { std::snprintf(g_temp_path, sizeof g_temp_path, "%s", p.c_str()); };
  ConvertReport r;
  try {
    r = convert_checkpoint(opts, progress, on_temp);
  } catch (...) {
    bar.finish();
    g_temp_path[0] = 0;
    throw;
  }
  bar.finish();
  g_temp_path[0] = 0;
  if (quiet) return;
  for (const auto& n : r.notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  std::printf("wrote %s: %s, %zu tensors, %s, %s%s\n", opts.output_path.c_str(), r.architecture.c_str(), r.tensors,
              r.scheme_summary.c_str(), human_bytes(r.file_bytes).c_str(), r.verified ? ", verified" : "");
  if (!r.reference.empty()) std::printf("embedded a %s\n", r.reference.c_str());
}

}  // namespace

void add_convert_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("convert", "Convert a Hugging Face model directory into one .sparq file");
  auto opts = std::make_shared<ConvertOptions>();
  auto quiet = std::make_shared<bool>(false);
  cmd->add_option("input", opts->input_dir, "Hugging Face model directory (config.json, *.safetensors, tokenizer)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("-o,--output", opts->output_path, "Output .sparq file (written atomically)")->required();
  cmd->add_flag("--verify", opts->verify, "Re-open the output and check every tensor against the source");
  cmd->add_option_function<std::string>(
         "--head", [opts](const std::string& v) { opts->int8_head = v == "int8"; },
         "Output head: keep (as in the checkpoint, default) or int8 (an unquantized head, or the tied embeddings, "
         "stored as W8A8 INT8 per row: faster decode, lossy)")
      ->check(CLI::IsMember({"keep", "int8"}));
  auto reference = std::make_shared<std::string>();
  cmd->add_option("--reference", *reference,
                  "Embed a self-test reference for `sparq selftest`: a JSON file (tests/fixtures/export_selftest_reference.py "
                  "makes one from transformers' logits), or cpu (this machine's CPU backend runs the converted model)");
  cmd->add_flag("-q,--quiet", *quiet, "No progress bar or summary");
  cmd->callback([opts, quiet, reference] {
    if (!reference->empty()) set_reference(*opts, *reference, *quiet);
    run_convert(*opts, *quiet);
  });
}

}  // namespace sparq
