// The few character properties the tokenizer needs outside the regex engine.
#pragma once

namespace sparq::unicode {

inline bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Unicode White_Space (what Hugging Face's `char::is_whitespace` tests).
inline bool is_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Word characters for single_word added tokens: ASCII letters and digits, and any non-ASCII
// character that is not whitespace (a deliberate approximation of Unicode alphanumerics).
inline bool is_alnum(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return !is_whitespace(c);
}

}  // namespace sparq::unicode
