// What a request's output must match, from what users give: a GBNF grammar, or a JSON schema
// (file text or parsed JSON), compiled once and shared by every request that uses it.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>

#include "runtime/grammar/grammar.h"

namespace sparq {

// Throws sparq::Error naming the problem (syntax, unsupported keyword, left recursion, ...).
std::shared_ptr<const Grammar> compile_gbnf(std::string_view text);
std::shared_ptr<const Grammar> compile_json_schema(const nlohmann::ordered_json& schema);
// JSON text of a schema; `source` names it in errors (a file name, "response_format").
std::shared_ptr<const Grammar> compile_json_schema_text(std::string_view text, std::string_view source);
// Any JSON value whose outermost value is an object (OpenAI's response_format json_object).
std::shared_ptr<const Grammar> json_object_grammar();

}  // namespace sparq
