// sparq tokenize / detokenize / template: the model's tokenizer and chat template from the CLI.
#pragma once
#include <CLI/CLI.hpp>

namespace sparq {

void add_tokenizer_commands(CLI::App& app);

}  // namespace sparq
