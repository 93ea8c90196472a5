#include "runtime/grammar/structured_output.h"

#include "runtime/core/error.h"
#include "runtime/grammar/gbnf_parser.h"
#include "runtime/grammar/json_schema_grammar.h"

namespace sparq {

std::shared_ptr<const Grammar> compile_gbnf(std::string_view text) { return std::make_shared<const Grammar>(parse_gbnf(text)); }

std::shared_ptr<const Grammar> compile_json_schema(const nlohmann::ordered_json& schema) {
  return compile_gbnf(json_schema_to_gbnf(schema));
}

std::shared_ptr<const Grammar> compile_json_schema_text(std::string_view text, std::string_view source) {
  nlohmann::ordered_json schema;
  try {
    schema = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(source, ": not valid JSON: ", e.what());
  }
  return compile_json_schema(schema);
}

std::shared_ptr<const Grammar> json_object_grammar() {
  static const std::shared_ptr<const Grammar> g = compile_json_schema(nlohmann::ordered_json{{"type", "object"}});
  return g;
}

}  // namespace sparq
