// sparq: run compressed-tensors LLMs from one model file, offline.
#include <cstdio>
#include <exception>

#include "apps/cmd_generate.h"
#include "apps/cmd_tokenize.h"
#include "apps/commands.h"
#include "runtime/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"sparq: a CPU-first runtime for compressed-tensors language models"};
  app.set_version_flag("--version", "sparq 0.1.0");
  app.require_subcommand(1);
  sparq::add_convert_command(app);
  sparq::add_info_command(app);
  sparq::add_devices_command(app);
  sparq::add_tokenizer_commands(app);
  sparq::add_generate_command(app);
  sparq::add_bench_command(app);
  sparq::add_perplexity_command(app);
  sparq::add_chat_command(app);
  sparq::add_serve_command(app);
  sparq::add_selftest_command(app);
  sparq::add_compare_command(app);
  sparq::add_grammar_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const sparq::ExitStatus& e) {
    return e.code;
  } catch (const sparq::Error& e) {
    std::fprintf(stderr, "sparq: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparq: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
