// Each sparq subcommand registers itself on the CLI11 app; main() only dispatches.
#pragma once
#include <CLI/CLI.hpp>

namespace sparq {

void add_convert_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_devices_command(CLI::App& app);
void add_perplexity_command(CLI::App& app);
void add_chat_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_selftest_command(CLI::App& app);
void add_compare_command(CLI::App& app);
void add_grammar_command(CLI::App& app);

// Thrown by a command that has printed its result and must end with this exit status.
struct ExitStatus {
  int code;
};

}  // namespace sparq
