// sparq grammar (--gbnf FILE | --json-schema FILE) [--print] [--check FILE] [--model FILE]:
// compiles a grammar as generate would, prints its GBNF, checks texts against it (one JSON string
// per line of the check file: "accept" or "reject" per line), and with a model, times the token
// mask over its vocabulary.
#include <chrono>
#include <cstdio>
#include <fstream>

#include "apps/commands.h"
#include "runtime/core/error.h"
#include "runtime/core/mapped_file.h"
#include "runtime/grammar/gbnf_parser.h"
#include "runtime/grammar/grammar_matcher.h"
#include "runtime/grammar/json_schema_grammar.h"
#include "runtime/model_file/sparq_reader.h"
#include "runtime/tokenizer/tokenizer_loader.h"

namespace sparq {

namespace {

struct GrammarArgs {
  std::string gbnf, json_schema, check, model;
  bool print = false;
};

void run_grammar(const GrammarArgs& a) {
  std::string gbnf;
  if (!a.gbnf.empty()) {
    gbnf = read_text_file(a.gbnf);
  } else {
    nlohmann::ordered_json schema;
    try {
      schema = nlohmann::ordered_json::parse(read_text_file(a.json_schema));
    } catch (const nlohmann::json::exception& e) {
      fail("--json-schema ", a.json_schema, ": not valid JSON: ", e.what());
    }
    gbnf = json_schema_to_gbnf(schema);
  }
  const Grammar grammar = parse_gbnf(gbnf);
  if (a.print) std::printf("%s", gbnf.c_str());
  if (!a.check.empty()) {
    std::ifstream f(a.check, std::ios::binary);
    if (!f) fail("--check: cannot read ", a.check);
    std::string line;
    int n = 0;
    while (std::getline(f, line)) {
      ++n;
      if (line.empty()) continue;
      nlohmann::json text;
      try {
        text = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error&) {
        fail("--check ", a.check, ": line ", n, " is not a JSON string");
      }
      if (!text.is_string()) fail("--check ", a.check, ": line ", n, " is not a JSON string");
      std::printf("%s\n", GrammarMatcher::matches(grammar, text.get<std::string>()) ? "accept" : "reject");
    }
  }
  if (!a.model.empty()) {
    const ModelFile file = ModelFile::open(a.model);
    const LoadedTokenizer tok = load_tokenizer(file);
    auto t0 = std::chrono::steady_clock::now();
    auto vocab = std::make_shared<const GrammarVocabulary>(*tok.tokenizer);
    const double build_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    GrammarMatcher m(std::make_shared<const Grammar>(grammar), vocab);
    std::vector<uint32_t> mask;
    t0 = std::chrono::steady_clock::now();
    m.allowed_tokens(mask);
    const double first_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t allowed = 0;
    for (uint32_t w : mask) allowed += __builtin_popcount(w);
    std::printf("vocabulary %zu tokens, %zu trie nodes, built in %.3f s; first mask %.2f ms, %lld tokens allowed\n",
                vocab->size(), vocab->nodes().size(), build_s, first_s * 1e3, static_cast<long long>(allowed));
  }
}

}  // namespace

void add_grammar_command(CLI::App& app) {
  auto a = std::make_shared<GrammarArgs>();
  CLI::App* cmd = app.add_subcommand("grammar", "Compile a GBNF grammar or a JSON schema; print it, check texts against it");
  auto* g = cmd->add_option("--gbnf", a->gbnf, "GBNF grammar file")->check(CLI::ExistingFile);
  auto* j = cmd->add_option("--json-schema", a->json_schema, "JSON schema file")->check(CLI::ExistingFile);
  g->excludes(j);
  j->excludes(g);
  cmd->add_flag("--print", a->print, "Print the grammar as GBNF (a JSON schema's translation)");
  cmd->add_option("--check", a->check, "File of JSON strings, one per line: print accept or reject for each")
      ->check(CLI::ExistingFile);
  cmd->add_option("-m,--model", a->model, "Model file (.sparq): time the first token mask over its vocabulary")
      ->check(CLI::ExistingFile);
  cmd->callback([a] {
    if (a->gbnf.empty() && a->json_schema.empty()) fail("grammar: give --gbnf FILE or --json-schema FILE");
    run_grammar(*a);
  });
}

}  // namespace sparq
