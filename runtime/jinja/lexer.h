// Splits a template into text and tags, applying Jinja's whitespace control as transformers
// configures it (trim_blocks=True, lstrip_blocks=True, "-" and "+" modifiers), and tokenizes the
// inside of tags.
#pragma once
#include <string>
#include <vector>

namespace sparq::jinja {

struct Token {
  enum class Type { Name, String, Int, Float, Op, End };
  Type type;
  std::string text;  // name, operator, or the unescaped string literal
  int line = 0;
};

struct Chunk {
  enum class Type { Text, Output, Statement };
  Type type;
  std::string text;           // Text
  std::vector<Token> tokens;  // Output / Statement, ending with an End token
  int line = 0;
};

// Throws sparq::Error with the line for unterminated tags or strings and unknown characters.
std::vector<Chunk> lex(const std::string& source);

}  // namespace sparq::jinja
