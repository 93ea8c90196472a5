#include "apps/grammar_flags.h"

#include "runtime/core/error.h"
#include "runtime/core/mapped_file.h"
#include "runtime/grammar/structured_output.h"

namespace sparq {

void add_grammar_flags(CLI::App& cmd, GrammarFlags& f) {
  auto* g = cmd.add_option("--grammar", f.gbnf_file, "Constrain the output to this GBNF grammar (file)")
                ->check(CLI::ExistingFile);
  auto* j = cmd.add_option("--json-schema", f.json_schema_file,
                           "Constrain the output to compact JSON valid under this JSON schema (file)")
                ->check(CLI::ExistingFile);
  g->excludes(j);
  j->excludes(g);
}

std::shared_ptr<const Grammar> load_grammar_flags(const GrammarFlags& f) {
  const std::string& path = f.gbnf_file.empty() ? f.json_schema_file : f.gbnf_file;
  if (path.empty()) return nullptr;
  const char* flag = f.gbnf_file.empty() ? "--json-schema" : "--grammar";
  try {
    const std::string text = read_text_file(path);
    return f.gbnf_file.empty() ? compile_json_schema_text(text, path) : compile_gbnf(text);
  } catch (const Error& e) {
    fail(flag, " ", path, ": ", e.what());
  }
}

}  // namespace sparq
