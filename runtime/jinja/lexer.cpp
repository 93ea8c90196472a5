#include "runtime/jinja/lexer.h"

#include <cstring>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"

namespace sparq::jinja {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Python "unicode-escape" decoding of a string literal body, as Jinja's lexer does.
std::string unescape(const std::string& s, int line) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '\\' || i + 1 >= s.size()) {
      out += c;
      continue;
    }
    char e = s[++i];
    auto hex = [&](int n) -> char32_t {
      char32_t v = 0;
      for (int k = 0; k < n; ++k) {
        if (i + 1 >= s.size()) fail("chat template: line ", line, ": truncated escape in a string literal");
        char h = s[++i];
        v <<= 4;
        if (h >= '0' && h <= '9') v |= h - '0';
        else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
        else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
        else fail("chat template: line ", line, ": bad hex digit in an escape");
      }
      return v;
    };
    switch (e) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '\n': break;
      case 'x': utf8::append(out, hex(2)); break;
      case 'u': utf8::append(out, hex(4)); break;
      case 'U': utf8::append(out, hex(8)); break;
      default:
        if (e >= '0' && e <= '7') {
          int v = e - '0';
          for (int k = 0; k < 2 && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7'; ++k) v = v * 8 + (s[++i] - '0');
          utf8::append(out, char32_t(v));
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

std::vector<Token> tokenize(const std::string& src, size_t begin, size_t end, int line) {
  std::vector<Token> toks;
  size_t i = begin;
  static const char* ops2[] = {"==", "!=", "<=", ">=", "//", "**"};
  while (i < end) {
    char c = src[i];
    if (is_space(c)) {
      if (c == '\n') ++line;
      ++i;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < end && (std::isalnum(static_cast<unsigned char>(src[j])) || src[j] == '_')) ++j;
      toks.push_back({Token::Type::Name, src.substr(i, j - i), line});
      i = j;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      bool is_float = false;
      while (j < end && (std::isdigit(static_cast<unsigned char>(src[j])) || src[j] == '_')) ++j;
      if (j + 1 < end && src[j] == '.' && std::isdigit(static_cast<unsigned char>(src[j + 1]))) {
        is_float = true;
        ++j;
        while (j < end && std::isdigit(static_cast<unsigned char>(src[j]))) ++j;
      }
      if (j < end && (src[j] == 'e' || src[j] == 'E')) {
        size_t k = j + 1;
        if (k < end && (src[k] == '+' || src[k] == '-')) ++k;
        if (k < end && std::isdigit(static_cast<unsigned char>(src[k]))) {
          is_float = true;
          j = k;
          while (j < end && std::isdigit(static_cast<unsigned char>(src[j]))) ++j;
        }
      }
      std::string num;
      for (size_t k = i; k < j; ++k)
        if (src[k] != '_') num += src[k];
      toks.push_back({is_float ? Token::Type::Float : Token::Type::Int, num, line});
      i = j;
      continue;
    }
    if (c == '\'' || c == '"') {
      size_t j = i + 1;
      while (j < end && src[j] != c) {
        if (src[j] == '\\') ++j;
        ++j;
      }
      if (j >= end) fail("chat template: line ", line, ": unterminated string literal");
      std::string raw = src.substr(i + 1, j - i - 1);
      int nl = 0;
      for (char x : raw) nl += x == '\n';
      toks.push_back({Token::Type::String, unescape(raw, line), line});
      line += nl;
      i = j + 1;
      continue;
    }
    bool matched = false;
    for (const char* op : ops2)
      if (src.compare(i, 2, op) == 0) {
        toks.push_back({Token::Type::Op, op, line});
        i += 2;
        matched = true;
        break;
      }
    if (matched) continue;
    if (std::strchr("+-*/%~|.,:()[]{}=<>", c)) {
      toks.push_back({Token::Type::Op, std::string(1, c), line});
      ++i;
      continue;
    }
    fail("chat template: line ", line, ": unexpected character '", std::string(1, c), "' inside a tag");
  }
  toks.push_back({Token::Type::End, "", line});
  return toks;
}

}  // namespace

std::vector<Chunk> lex(const std::string& source_in) {
  // Jinja normalizes newlines and drops a single trailing newline (keep_trailing_newline=False).
  std::string src;
  src.reserve(source_in.size());
  for (size_t i = 0; i < source_in.size(); ++i) {
    if (source_in[i] == '\r') {
      src += '\n';
      if (i + 1 < source_in.size() && source_in[i + 1] == '\n') ++i;
    } else {
      src += source_in[i];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();

  std::vector<Chunk> chunks;
  size_t pos = 0;
  int line = 1;
  bool strip_next = false;  // a "-" closed the previous tag: strip leading whitespace of the next text
  bool trim_newline = false;
  auto count_lines = [&](size_t a, size_t b) {
    for (size_t k = a; k < b; ++k) line += src[k] == '\n';
  };
  while (pos <= src.size()) {
    size_t open = src.find('{', pos);
    while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' &&
           src[open + 1] != '#')
      open = src.find('{', open + 1);
    if (open != std::string::npos && open + 1 >= src.size()) open = std::string::npos;
    std::string text = src.substr(pos, (open == std::string::npos ? src.size() : open) - pos);
    int text_line = line;
    count_lines(pos, open == std::string::npos ? src.size() : open);
    if (strip_next) {
      size_t k = 0;
      while (k < text.size() && is_space(text[k])) ++k;
      text.erase(0, k);
    } else if (trim_newline && !text.empty() && text[0] == '\n') {
      text.erase(0, 1);
    }
    strip_next = trim_newline = false;
    if (open == std::string::npos) {
      if (!text.empty()) chunks.push_back({Chunk::Type::Text, text, {}, text_line});
      break;
    }
    char kind = src[open + 1];
    size_t inner = open + 2;
    char mod = inner < src.size() ? src[inner] : 0;
    bool lstrip_all = mod == '-';
    bool keep = mod == '+';
    if (lstrip_all || keep) ++inner;
    if (lstrip_all) {
      while (!text.empty() && is_space(text.back())) text.pop_back();
    } else if (!keep && (kind == '%' || kind == '#')) {
      // lstrip_blocks: drop spaces/tabs between the line start and the tag (judged on the source).
      size_t k = text.size();
      while (k > 0 && (text[k - 1] == ' ' || text[k - 1] == '\t')) --k;
      size_t blank_start = open - (text.size() - k);
      if (blank_start == 0 || src[blank_start - 1] == '\n') text.erase(k);
    }
    if (!text.empty()) chunks.push_back({Chunk::Type::Text, text, {}, text_line});

    int tag_line = line;
    if (kind == '#') {
      size_t close = src.find("#}", inner);
      if (close == std::string::npos) fail("chat template: line ", tag_line, ": unterminated comment");
      bool rstrip = close > inner && src[close - 1] == '-';
      bool keep_nl = close > inner && src[close - 1] == '+';
      count_lines(open, close + 2);
      pos = close + 2;
      strip_next = rstrip;
      trim_newline = !rstrip && !keep_nl;
      continue;
    }
    const char* closer = kind == '{' ? "}}" : "%}";
    // Find the closer outside string literals and outside brackets (as Jinja's lexer balances
    // them: "{{ {'a': {'b': 1}} }}" ends at the last "}}").
    size_t k = inner;
    size_t close = std::string::npos;
    int depth = 0;
    while (k + 1 < src.size()) {
      char c = src[k];
      if (c == '(' || c == '[' || c == '{') {
        ++depth;
        ++k;
        continue;
      }
      if (depth > 0 && (c == ')' || c == ']' || c == '}')) {
        --depth;
        ++k;
        continue;
      }
      if (c == '\'' || c == '"') {
        size_t j = k + 1;
        while (j < src.size() && src[j] != c) {
          if (src[j] == '\\') ++j;
          ++j;
        }
        k = j + 1;
        continue;
      }
      if (c == closer[0] && src[k + 1] == closer[1]) {
        close = k;
        break;
      }
      ++k;
    }
    if (close == std::string::npos)
      fail("chat template: line ", tag_line, ": unterminated ", kind == '{' ? "{{ ... }}" : "{% ... %}", " tag");
    size_t inner_end = close;
    bool rstrip = false, keep_nl = false;
    if (inner_end > inner && src[inner_end - 1] == '-') {
      rstrip = true;
      --inner_end;
    } else if (inner_end > inner && src[inner_end - 1] == '+') {
      keep_nl = true;
      --inner_end;
    }
    Chunk ch{kind == '{' ? Chunk::Type::Output : Chunk::Type::Statement, {}, tokenize(src, inner, inner_end, tag_line),
             tag_line};
    count_lines(open, close + 2);
    pos = close + 2;
    strip_next = rstrip;
    trim_newline = kind == '%' && !rstrip && !keep_nl;
    // {% raw %}...{% endraw %}: the text in between is literal.
    if (ch.type == Chunk::Type::Statement && ch.tokens.size() == 2 && ch.tokens[0].text == "raw") {
      size_t endraw = pos;
      for (;;) {
        endraw = src.find("{%", endraw);
        if (endraw == std::string::npos) fail("chat template: line ", tag_line, ": {% raw %} without {% endraw %}");
        size_t q = endraw + 2;
        if (q < src.size() && (src[q] == '-' || src[q] == '+')) ++q;
        while (q < src.size() && is_space(src[q])) ++q;
        if (src.compare(q, 6, "endraw") == 0) break;
        endraw += 2;
      }
      std::string raw = src.substr(pos, endraw - pos);
      if (strip_next) {
        size_t s = 0;
        while (s < raw.size() && is_space(raw[s])) ++s;
        raw.erase(0, s);
      } else if (trim_newline && !raw.empty() && raw[0] == '\n') {
        raw.erase(0, 1);
      }
      if (src[endraw + 2] == '-') {
        while (!raw.empty() && is_space(raw.back())) raw.pop_back();
      } else {
        size_t b = raw.size();
        while (b > 0 && (raw[b - 1] == ' ' || raw[b - 1] == '\t')) --b;
        if (b == 0 || raw[b - 1] == '\n') raw.erase(b);
      }
      if (!raw.empty()) chunks.push_back({Chunk::Type::Text, raw, {}, tag_line});
      count_lines(pos, endraw);
      size_t close2 = src.find("%}", endraw);
      if (close2 == std::string::npos) fail("chat template: line ", tag_line, ": unterminated {% endraw %}");
      strip_next = src[close2 - 1] == '-';
      trim_newline = !strip_next && src[close2 - 1] != '+';
      pos = close2 + 2;
      continue;
    }
    chunks.push_back(std::move(ch));
  }
  return chunks;
}

}  // namespace sparq::jinja
