// GPT-2's byte <-> printable code point table used by byte-level BPE vocabularies.
#pragma once
#include <string>
#include <string_view>

namespace sparq::byte_level {

// The code point that byte b is written as in a byte-level vocabulary (space -> U+0120 'Ġ').
char32_t byte_to_char(unsigned char b);
// The byte a code point stands for, or -1 when it is not one of the 256 table entries.
int char_to_byte(char32_t cp);

// "ĠHello" -> " Hello". Returns false (and leaves out unspecified) when some character is not in
// the table.
bool unmap(std::string_view mapped, std::string& out);
// " Hello" -> "ĠHello".
std::string map(std::string_view bytes);

}  // namespace sparq::byte_level
