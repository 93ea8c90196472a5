// A context-free grammar over Unicode code points, compiled for matching: every alternative of
// every rule is a run of symbols in one flat array (`code`), ended by an End symbol, so a parse
// position is one index. Repetitions and groups of the source grammar become helper rules.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sparq {

// One code point out of a set: ranges (inclusive), or everything outside them when negated.
struct CharClass {
  bool negated = false;
  std::vector<std::pair<char32_t, char32_t>> ranges;
  bool matches(char32_t c) const {
    bool in = false;
    for (const auto& [lo, hi] : ranges) in |= (c >= lo && c <= hi);
    return in != negated;
  }
};

struct GrammarSymbol {
  enum class Kind : uint8_t { End, Chars, Rule };
  Kind kind = Kind::End;
  int32_t index = 0;  // Chars: into Grammar::classes; Rule: into Grammar::rules
};

struct GrammarRule {
  std::string name;
  std::vector<int32_t> alternatives;  // start of each alternative in Grammar::code
};

struct Grammar {
  std::vector<GrammarRule> rules;
  std::vector<CharClass> classes;
  std::vector<GrammarSymbol> code;
  int32_t root = 0;
};

}  // namespace sparq
