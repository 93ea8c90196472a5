// sparq convert HF_DIR -o FILE [--verify] [--head keep|int8]
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "apps/commands.h"
#include "apps/progress_bar.h"
#include "convert/converter.h"

namespace sparq {

namespace {

// The temporary output, removed if the conversion is interrupted by a signal.
char g_temp_path[4096];

void remove_temp_and_die(int sig) {
  if (g_temp_path[0]) ::unlink(g_temp_path);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
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
  cmd->add_flag("-q,--quiet", *quiet, "No progress bar or summary");
  cmd->callback([opts, quiet] { run_convert(*opts, *quiet); });
}

}  // namespace sparq
