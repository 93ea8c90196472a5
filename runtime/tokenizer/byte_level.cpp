#include "runtime/tokenizer/byte_level.h"

#include <array>

#include "runtime/core/utf8.h"

namespace sparq::byte_level {

namespace {
struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 324> to_byte{};  // code points used are < 0x144
  Tables() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[b] = printable ? char32_t(b) : next++;
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}
}  // namespace

char32_t byte_to_char(unsigned char b) { return tables().to_char[b]; }

int char_to_byte(char32_t cp) { return cp < 324 ? tables().to_byte[cp] : -1; }

bool unmap(std::string_view mapped, std::string& out) {
  out.clear();
  size_t i = 0;
  while (i < mapped.size()) {
    char32_t cp;
    int k = utf8::decode(mapped, i, cp);
    if (k == 0) return false;
    int b = char_to_byte(cp);
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
    i += k;
  }
  return true;
}

std::string map(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) utf8::append(out, byte_to_char(b));
  return out;
}

}  // namespace sparq::byte_level
