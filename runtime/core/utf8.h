// UTF-8 helpers shared by the tokenizers and the template interpreter.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace sparq::utf8 {

// Length of the UTF-8 sequence that starts with lead byte c (1 for an invalid lead byte).
inline int seq_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

// Decodes the code point at s[i]; returns the number of bytes consumed, or 0 when the bytes
// at i do not start a valid (shortest form, non-surrogate, <= U+10FFFF) sequence.
int decode(std::string_view s, size_t i, char32_t& cp);

void append(std::string& out, char32_t cp);

bool is_valid(std::string_view s);

// Replaces each maximal invalid subpart with U+FFFD, like Rust's String::from_utf8_lossy and
// Python's bytes.decode("utf-8", "replace").
std::string lossy(std::string_view s);

// Number of bytes at the end of s that form the start of a UTF-8 sequence still missing bytes
// (0 when s ends on a character boundary or with bytes that can never complete).
size_t incomplete_tail(std::string_view s);

}  // namespace sparq::utf8
