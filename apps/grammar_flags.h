// --grammar FILE / --json-schema FILE: structured output for generate and chat.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "runtime/grammar/grammar.h"

namespace sparq {

struct GrammarFlags {
  std::string gbnf_file, json_schema_file;
};

void add_grammar_flags(CLI::App& cmd, GrammarFlags& flags);
// Null when neither flag was given; throws sparq::Error naming the file and the problem.
std::shared_ptr<const Grammar> load_grammar_flags(const GrammarFlags& flags);

}  // namespace sparq
