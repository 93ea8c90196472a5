// JSON schema -> GBNF: the grammar of the compact JSON texts (no whitespace between tokens, ","
// and ":" as separators) that a schema accepts.
//
// Supported: type (one or a list), properties in their declared order with required and optional
// ones, additionalProperties (true, the default; false; or a schema) with declared names kept out
// of the additional keys, enum, const, anyOf / oneOf (as alternatives), local $ref into #/$defs or
// #/definitions, items with minItems / maxItems, strings with minLength / maxLength and pattern (a
// regular expression subset: literals, escapes \d \w \s and their negations, classes, ., groups,
// |, * + ? {m,n}; unanchored ends match anything, as JSON schema says), integers with minimum /
// maximum / exclusiveMinimum / exclusiveMaximum. Annotations (title, description, default,
// examples, $schema, $id, $comment, ...) are ignored; every other keyword is refused by name.
// A string's length counts an escape sequence as the one character it stands for; a declared name
// written with escapes is not recognised as that name, and declared names outside ASCII (or longer
// than 256 bytes) are not kept out of the additional keys. Nesting is bounded (64 levels of
// subschemas, 128 of pattern groups), so no input can exhaust the stack.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace sparq {

// Properties keep the order the schema declares them in (hence ordered_json). Throws sparq::Error
// naming the unsupported keyword or the malformed part, with its JSON pointer.
std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema);

}  // namespace sparq
