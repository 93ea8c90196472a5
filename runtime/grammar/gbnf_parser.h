// GBNF, the grammar notation of llama.cpp (rules `name ::= alternatives`; "literals" with
// escapes, [character classes] with ranges and ^, `.`, (groups), |, and the postfix operators * +
// ? {m} {m,} {m,n}; # comments), parsed into a Grammar starting at the rule `root`.
#pragma once
#include <string_view>

#include "runtime/grammar/grammar.h"

namespace sparq {

// Throws sparq::Error naming the line and column of a syntax error, an undefined or redefined rule,
// a missing root, or left recursion (which a top-down matcher cannot run).
Grammar parse_gbnf(std::string_view text);

}  // namespace sparq
