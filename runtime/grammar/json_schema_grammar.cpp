#include "runtime/grammar/json_schema_grammar.h"

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "runtime/core/error.h"
#include "runtime/grammar/gbnf_parser.h"

namespace sparq {

namespace {

using json = nlohmann::ordered_json;

// Strings are written canonically, as llguidance generates them: a character is written as itself
// unless JSON requires an escape (quote, backslash, controls and DEL), with the short escapes or
// \u00XX for the other controls, so every string has one spelling.

// An escape sequence in that canonical form.
constexpr const char* kEscape = R"("\\" ( ["\\bfnrt] | "u" ( "00" [01] [0-9a-fA-F] | "007" [fF] ) ))";

constexpr const char* kBaseRules = R"(json-value ::= json-object | json-array | json-string | json-number | "true" | "false" | "null"
json-object ::= "{" ( json-string ":" json-value ( "," json-string ":" json-value )* )? "}"
json-array ::= "[" ( json-value ( "," json-value )* )? "]"
json-char ::= [^"\\\x00-\x1F\x7F] | "\\" ( ["\\bfnrt] | "u" ( "00" [01] [0-9a-fA-F] | "007" [fF] ) )
json-string ::= "\"" json-char* "\""
json-int ::= "-"? ( "0" | [1-9] [0-9]* )
json-number ::= json-int ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?
json-boolean ::= "true" | "false"
json-null ::= "null"
)";

const std::set<std::string> kAnnotations = {"title", "description", "default", "examples", "$schema", "$id",
                                            "$comment", "deprecated", "readOnly", "writeOnly", "$defs",
                                            "definitions"};

// A GBNF literal of UTF-8 text.
std::string literal(std::string_view text) {
  std::string out = "\"";
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string group(const std::vector<std::string>& alternatives) {
  if (alternatives.size() == 1) return alternatives[0];
  std::string out = "(";
  for (size_t i = 0; i < alternatives.size(); ++i) out += (i ? " | " : " ") + alternatives[i];
  return out + " )";
}

std::string repeat(int64_t n) { return n == 1 ? "" : "{" + std::to_string(n) + "}"; }

// ---- integer ranges as digit strings -------------------------------------------------------

// Decimal strings of one length from lo to hi (lo <= hi, same length, no sign).
std::string same_length_range(const std::string& lo, const std::string& hi) {
  if (lo.empty()) return "\"\"";
  if (lo == hi) return literal(lo);
  const size_t rest = lo.size() - 1;
  const char a = lo[0], b = hi[0];
  const std::string lo_rest = lo.substr(1), hi_rest = hi.substr(1);
  const std::string digits_rest = rest ? " [0-9]" + repeat(static_cast<int64_t>(rest)) : "";
  if (a == b) return literal(std::string(1, a)) + " " + same_length_range(lo_rest, hi_rest);
  std::vector<std::string> alts;
  const bool lo_full = lo_rest.find_first_not_of('0') == std::string::npos;
  const bool hi_full = hi_rest.find_first_not_of('9') == std::string::npos;
  const char first = lo_full ? a : static_cast<char>(a + 1), last = hi_full ? b : static_cast<char>(b - 1);
  if (!lo_full) alts.push_back(literal(std::string(1, a)) + " " + same_length_range(lo_rest, std::string(rest, '9')));
  if (first <= last) alts.push_back(std::string("[") + first + "-" + last + "]" + digits_rest);
  if (!hi_full) alts.push_back(literal(std::string(1, b)) + " " + same_length_range(std::string(rest, '0'), hi_rest));
  return group(alts);
}

std::string pow10_string(size_t digits) {  // 10^(digits-1)
  std::string s(digits, '0');
  s[0] = '1';
  return s;
}

// Non-negative integers (no leading zeros) in [lo, hi]; hi < 0 means no upper bound.
std::string magnitude_range(int64_t lo, int64_t hi) {
  const std::string los = std::to_string(lo);
  std::vector<std::string> alts;
  const size_t max_len = hi < 0 ? los.size() : std::to_string(hi).size();
  for (size_t len = los.size(); len <= max_len; ++len) {
    const std::string from = len == los.size() ? los : pow10_string(len);
    const std::string to = hi >= 0 && len == max_len ? std::to_string(hi) : std::string(len, '9');
    alts.push_back(same_length_range(from, to));
  }
  if (hi < 0) alts.push_back("[1-9] [0-9]{" + std::to_string(los.size()) + ",}");  // every longer number
  return group(alts);
}

// ---- regular expressions (pattern) -> JSON string content ----------------------------------

class PatternConverter {
 public:
  PatternConverter(std::string_view re, std::string where) : re_(re), where_(std::move(where)) {}
  // Each top-level alternative has its own anchors: "^a|b$" is "a" at the start or "b" at the end.
  std::string convert() {
    std::vector<std::string> alts;
    for (;;) {
      const bool anchored_start = more() && peek() == '^';
      if (anchored_start) ++pos_;
      anchored_end_ = false;
      std::string body = sequence();
      if (!anchored_start) body = "json-char* " + body;
      if (!anchored_end_) body += " json-char*";
      alts.push_back(body);
      if (!more()) break;
      if (peek() != '|') bad("unexpected ')'");
      ++pos_;
    }
    return group(alts);
  }

 private:
  [[noreturn]] void bad(const std::string& why) const {
    fail("JSON schema: ", where_, "/pattern: ", why, " (at offset ", pos_, " of the pattern)");
  }
  bool more() const { return pos_ < re_.size(); }
  // '$' ending a top-level alternative (the end of the pattern or a '|' follows).
  bool at_end_anchor() const {
    return depth_ == 0 && peek() == '$' && (pos_ + 1 == re_.size() || re_[pos_ + 1] == '|');
  }
  char peek() const { return re_[pos_]; }

  std::string alternatives() {
    std::vector<std::string> alts{sequence()};
    while (more() && peek() == '|') {
      ++pos_;
      alts.push_back(sequence());
    }
    return group(alts);
  }

  std::string sequence() {
    std::string out = "\"\"";
    while (more() && peek() != '|' && peek() != ')') {
      if (at_end_anchor()) {
        ++pos_;
        anchored_end_ = true;
        break;
      }
      std::string a = atom();
      if (more() && (peek() == '*' || peek() == '+' || peek() == '?' || peek() == '{')) {
        const char op = peek();
        if (op == '{') {
          const size_t close = re_.find('}', pos_);
          if (close == std::string_view::npos) bad("unterminated {");
          a = "( " + a + " )" + std::string(re_.substr(pos_, close - pos_ + 1));
          pos_ = close + 1;
        } else {
          a = "( " + a + " )" + op;
          ++pos_;
        }
        if (more() && (peek() == '?' || peek() == '+')) bad("lazy and possessive quantifiers are not supported");
      }
      out += " " + a;
    }
    return out;
  }

  // A character as JSON string content: quote and backslash escaped; control characters refused.
  std::string char_literal(char32_t c) {
    if (c == '"') return "\"\\\\\\\"\"";
    if (c == '\\') return "\"\\\\\\\\\"";
    if (c == '\n') return "\"\\\\n\"";
    if (c == '\t') return "\"\\\\t\"";
    if (c == '\r') return "\"\\\\r\"";
    if (c < 0x20) bad("control characters other than tab, newline and carriage return are not supported");
    std::string s;
    append_utf8(s, c);
    return literal(s);
  }

  static void append_utf8(std::string& s, char32_t c) {
    if (c < 0x80) {
      s += static_cast<char>(c);
    } else if (c < 0x800) {
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      s += static_cast<char>(0xE0 | (c >> 12));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (c >> 18));
      s += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
  }

  char32_t utf8() {
    const auto b = static_cast<unsigned char>(re_[pos_]);
    const int extra = b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : 3;
    char32_t c = extra == 0 ? b : (b & (0x3F >> extra));
    ++pos_;
    for (int i = 0; i < extra && more(); ++i) c = (c << 6) | (static_cast<unsigned char>(re_[pos_++]) & 0x3F);
    return c;
  }

  // GBNF class text of a class escape (\d, \w, \s), without brackets; negated ones set `negated`.
  static std::string class_escape(char e, bool& negated) {
    negated = e == 'D' || e == 'W' || e == 'S';
    switch (e) {
      case 'd': case 'D': return "0-9";
      case 'w': case 'W': return "a-zA-Z0-9_";
      case 's': case 'S': return " \\t\\n\\r";
      default: return {};
    }
  }

  static std::string class_char(char32_t c) {
    if (c == ']' || c == '[' || c == '\\' || c == '^' || c == '-' || c == '"') {
      return std::string("\\") + static_cast<char>(c);
    }
    if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned>(c));
      return buf;
    }
    std::string s;
    append_utf8(s, c);
    return s;
  }

  // A class as JSON string content: its members that JSON writes as they are (no quote, backslash
  // or control character), plus the escaped forms of the quote, backslash, tab, newline and
  // carriage return when the class holds them.
  std::string json_class(const std::string& members, bool negated) {
    const CharClass cls = parse_gbnf("root ::= [" + std::string(negated ? "^" : "") + members + "]").classes.at(0);
    auto code = [](char32_t c) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "\\U%08X", static_cast<unsigned>(c));
      return std::string(buf);
    };
    std::vector<std::string> alts;
    if (negated) {
      alts.push_back("[^" + members + "\"\\\\\\x00-\\x1F\\x7F]");
    } else {
      std::string plain;
      for (auto [lo, hi] : cls.ranges) {
        // Cut out 0x00-0x1F, '"' (0x22) and '\\' (0x5C).
        const std::pair<char32_t, char32_t> cuts[] = {{0x00, 0x1F}, {0x22, 0x22}, {0x5C, 0x5C}};
        std::vector<std::pair<char32_t, char32_t>> pieces{{lo, hi}};
        for (const auto& [clo, chi] : cuts) {
          std::vector<std::pair<char32_t, char32_t>> next;
          for (const auto& [a, b] : pieces) {
            if (b < clo || a > chi) {
              next.push_back({a, b});
              continue;
            }
            if (a < clo) next.push_back({a, clo - 1});
            if (b > chi) next.push_back({chi + 1, b});
          }
          pieces = std::move(next);
        }
        for (const auto& [a, b] : pieces) plain += code(a) + "-" + code(b);
      }
      if (!plain.empty()) alts.push_back("[" + plain + "]");
    }
    if (cls.matches('"')) alts.push_back("\"\\\\\\\"\"");
    if (cls.matches('\\')) alts.push_back("\"\\\\\\\\\"");
    if (cls.matches('\t')) alts.push_back("\"\\\\t\"");
    if (cls.matches('\n')) alts.push_back("\"\\\\n\"");
    if (cls.matches('\r')) alts.push_back("\"\\\\r\"");
    if (alts.empty()) bad("a class that matches nothing");
    return group(alts);
  }

  std::string atom() {
    const char c = peek();
    if (c == '(') {
      if (++depth_ > kMaxNesting) bad("groups nest more than " + std::to_string(kMaxNesting) + " deep");
      ++pos_;
      if (re_.substr(pos_, 2) == "?:") pos_ += 2;
      else if (more() && peek() == '?') bad("lookarounds and named groups are not supported");
      std::string inner = alternatives();
      if (!more() || peek() != ')') bad("unterminated (");
      ++pos_;
      --depth_;
      return inner;
    }
    if (c == '.') {
      ++pos_;
      return R"(( [^"\\\x00-\x1F\x7F] | "\\" ( ["\\bfrt] | "u" ( "00" ( "0" [0-9b-fB-F] | "1" [0-9a-fA-F] ) | "007" [fF] ) ) ))";
    }
    if (c == '[') return bracket();
    if (c == '\\') {
      ++pos_;
      if (!more()) bad("a pattern cannot end with a backslash");
      const char e = re_[pos_++];
      bool negated = false;
      const std::string members = class_escape(e, negated);
      if (!members.empty()) return json_class(members, negated);
      if (e == 'n') return char_literal('\n');
      if (e == 't') return char_literal('\t');
      if (e == 'r') return char_literal('\r');
      if (std::string_view(".*+?()[]{}|^$\\/-\"").find(e) != std::string_view::npos) return char_literal(static_cast<char32_t>(e));
      bad(std::string("the escape \\") + e + " is not supported");
    }
    if (c == '^' || c == '$') bad("anchors are supported only at the start and the end");
    if (c == '*' || c == '+' || c == '?' || c == '{') bad(std::string("'") + c + "' follows nothing");
    return char_literal(utf8());
  }

  std::string bracket() {
    ++pos_;
    bool negated = false;
    if (more() && peek() == '^') {
      negated = true;
      ++pos_;
    }
    std::string members;
    bool first = true;
    while (more() && (peek() != ']' || first)) {
      first = false;
      if (peek() == '\\') {
        ++pos_;
        if (!more()) bad("unterminated [");
        const char e = re_[pos_++];
        bool neg = false;
        const std::string cls = class_escape(e, neg);
        if (!cls.empty()) {
          if (neg) bad("negated class escapes inside [] are not supported");
          members += cls;
          continue;
        }
        if (std::string_view("ntr.*+?()[]{}|^$\\/-\"").find(e) == std::string_view::npos)
          bad(std::string("the escape \\") + e + " is not supported inside []");
        const char32_t lit = e == 'n' ? U'\n' : e == 't' ? U'\t' : e == 'r' ? U'\r' : static_cast<char32_t>(e);
        members += class_char(lit);
        continue;
      }
      const char32_t lo = utf8();
      members += class_char(lo);
      if (more() && peek() == '-' && pos_ + 1 < re_.size() && re_[pos_ + 1] != ']') {
        ++pos_;
        char32_t hi = 0;
        if (peek() == '\\') {
          ++pos_;
          if (!more()) bad("unterminated [");
          const char e = re_[pos_++];
          if (std::string_view("ntr.*+?()[]{}|^$\\/-\"").find(e) == std::string_view::npos)
            bad(std::string("the escape \\") + e + " cannot end a range");
          hi = e == 'n' ? U'\n' : e == 't' ? U'\t' : e == 'r' ? U'\r' : static_cast<char32_t>(e);
        } else {
          hi = utf8();
        }
        if (hi < lo) bad("a character range runs backwards");
        members += "-" + class_char(hi);
      }
    }
    if (!more()) bad("unterminated [");
    ++pos_;
    return json_class(members, negated);
  }

  static constexpr int kMaxNesting = 128;
  std::string_view re_;
  std::string where_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool anchored_end_ = false;
};

class SchemaConverter {
 public:
  explicit SchemaConverter(const json& root) : root_(root) {}

  std::string convert() {
    const std::string body = visit(root_, "");
    std::string out = "root ::= " + body + "\n" + kBaseRules;
    for (const auto& [name, rule] : rules_) out += name + " ::= " + rule + "\n";
    return out;
  }

 private:
  [[noreturn]] static void bad(const std::string& where, const std::string& why) {
    fail("JSON schema: ", where.empty() ? "(root)" : where, ": ", why);
  }

  std::string add_rule(const std::string& body) {
    auto it = by_body_.find(body);
    if (it != by_body_.end()) return it->second;
    const std::string name = "s" + std::to_string(rules_.size());
    rules_[name] = body;
    by_body_[body] = name;
    return name;
  }

  static int64_t integer_bound(const json& v, const std::string& where, const char* key, bool lower, bool exclusive) {
    if (!v.is_number()) bad(where, std::string(key) + " must be a number");
    constexpr int64_t kLimit = 100'000'000'000'000'000;  // 1e17: digit ranges stay within int64
    if (v.is_number_integer()) {  // exact: a double would round above 2^53
      if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(kLimit))
        bad(where, std::string(key) + " is beyond +-1e17");
      const int64_t i = v.get<int64_t>();
      if (i > kLimit || i < -kLimit) bad(where, std::string(key) + " is beyond +-1e17");
      return exclusive ? i + (lower ? 1 : -1) : i;
    }
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::abs(d) > 1e17) bad(where, std::string(key) + " is beyond +-1e17");
    double b = lower ? std::ceil(d) : std::floor(d);
    if (exclusive && b == d) b += lower ? 1 : -1;
    return static_cast<int64_t>(b);
  }

  // A length or count keyword: -1 when absent; a non-negative integer up to `limit` (the grammar
  // spells each unit out) or an error naming it.
  static int64_t count_of(const json& s, const char* key, const std::string& where, uint64_t limit) {
    if (!s.contains(key)) return -1;
    const json& v = s[key];
    if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
      bad(where + "/" + key, "must be a non-negative integer");
    if (v.get<uint64_t>() > limit) bad(where + "/" + key, "values above " + std::to_string(limit) + " are not supported");
    return v.get<int64_t>();
  }

  std::string integer(const json& s, const std::string& where) {
    bool has_lo = false, has_hi = false;
    int64_t lo = 0, hi = 0;
    auto take = [&](const char* key, bool lower, bool exclusive) {
      if (!s.contains(key)) return;
      const int64_t v = integer_bound(s[key], where, key, lower, exclusive);
      if (lower) {
        lo = has_lo ? std::max(lo, v) : v;
        has_lo = true;
      } else {
        hi = has_hi ? std::min(hi, v) : v;
        has_hi = true;
      }
    };
    take("minimum", true, false);
    take("exclusiveMinimum", true, true);
    take("maximum", false, false);
    take("exclusiveMaximum", false, true);
    if (!has_lo && !has_hi) return "json-int";
    if (has_lo && has_hi && lo > hi) bad(where, "no integer lies between the minimum and the maximum");
    std::vector<std::string> alts;
    // Negative values: "-" then magnitudes from max(1, -hi) to -lo.
    if (!has_lo || lo < 0) {
      const int64_t mag_lo = has_hi && hi < 0 ? -hi : 1;
      const int64_t mag_hi = has_lo ? -lo : -1;
      alts.push_back("\"-\" " + magnitude_range(mag_lo, mag_hi));
    }
    // Zero and up.
    if (!has_hi || hi >= 0) alts.push_back(magnitude_range(has_lo ? std::max<int64_t>(lo, 0) : 0, has_hi ? hi : -1));
    return add_rule(group(alts));
  }

  std::string string_type(const json& s, const std::string& where) {
    if (s.contains("format")) bad(where + "/format", "string formats are not supported");
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string()) bad(where + "/pattern", "must be a string");
      if (s.contains("minLength") || s.contains("maxLength"))
        bad(where, "pattern together with minLength or maxLength is not supported");
      return add_rule("\"\\\"\" " + PatternConverter(s["pattern"].get<std::string>(), where).convert() + " \"\\\"\"");
    }
    const int64_t lo = std::max<int64_t>(0, count_of(s, "minLength", where, 10000));
    const int64_t hi = count_of(s, "maxLength", where, 10000);
    if (hi >= 0 && hi < lo) bad(where, "maxLength is below minLength");
    if (lo == 0 && hi < 0) return "json-string";
    const std::string count = "{" + std::to_string(lo) + "," + (hi >= 0 ? std::to_string(hi) : "") + "}";
    return add_rule("\"\\\"\" json-char" + count + " \"\\\"\"");
  }

  std::string array_type(const json& s, const std::string& where) {
    for (const char* k : {"prefixItems", "contains", "uniqueItems", "minContains", "maxContains", "unevaluatedItems"})
      if (s.contains(k)) bad(where + "/" + k, "the keyword is not supported");
    const std::string item = s.contains("items") ? visit(s["items"], where + "/items") : "json-value";
    const int64_t lo = std::max<int64_t>(0, count_of(s, "minItems", where, 1000)), hi = count_of(s, "maxItems", where, 1000);
    if (hi >= 0 && hi < lo) bad(where, "maxItems is below minItems");
    if (hi == 0) return add_rule("\"[\" \"]\"");
    // "[" item ("," item){lo-1, hi-1} "]", optional as a whole when lo is 0.
    const std::string more_lo = std::to_string(std::max<int64_t>(lo - 1, 0));
    const std::string more_hi = hi >= 0 ? std::to_string(hi - 1) : "";
    std::string items = item + " ( \",\" " + item + " ){" + more_lo + "," + more_hi + "}";
    if (lo == 0) items = "( " + items + " )?";
    return add_rule("\"[\" " + items + " \"]\"");
  }

  // A JSON string key that is none of `names` (as written: an escaped spelling is another key).
  std::string key_not_in(const std::set<std::string>& names) {
    if (names.empty()) return "json-string";
    // Names outside plain ASCII, or long ones, are not excluded (an additional key may then repeat
    // a declared name): the exclusion works byte by byte and one rule per byte.
    for (const std::string& n : names) {
      if (n.size() > 256) return "json-string";
      for (unsigned char c : n)
        if (c >= 0x80 || c == '"' || c == '\\' || c < 0x20) return "json-string";
    }
    // A trie of the names; a key leaves it at some point (a different character, or ending where
    // no name ends, or going on after a name's end), after which anything goes.
    struct Node {
      std::map<unsigned char, size_t> next;
      bool end = false;
    };
    std::vector<Node> trie(1);
    for (const std::string& n : names) {
      size_t at = 0;
      for (unsigned char c : n) {
        auto it = trie[at].next.find(c);
        if (it == trie[at].next.end()) {
          trie.push_back({});
          it = trie[at].next.emplace(c, trie.size() - 1).first;
        }
        at = it->second;
      }
      trie[at].end = true;
    }
    std::function<std::string(size_t)> rule_for = [&](size_t at) -> std::string {
      std::vector<std::string> alts;
      if (!trie[at].end) alts.push_back("\"\\\"\"");  // the key ends here, and no name does
      // A character no name continues with, then anything.
      std::string excluded = "\"\\\\\\x00-\\x1F\\x7F";
      std::vector<std::string> follow;
      for (const auto& [c, child] : trie[at].next) {
        excluded += c == ']' || c == '[' || c == '^' || c == '-' ? std::string("\\") + static_cast<char>(c)
                                                                : std::string(1, static_cast<char>(c));
        follow.push_back(literal(std::string(1, static_cast<char>(c))) + " " + rule_for(child));
      }
      alts.push_back("( [^" + excluded + "] | " + kEscape + " ) json-char* \"\\\"\"");
      for (auto& f : follow) alts.push_back(f);
      return add_rule(group(alts));
    };
    return add_rule("\"\\\"\" " + rule_for(0));
  }

  std::string object_type(const json& s, const std::string& where) {
    for (const char* k : {"patternProperties", "propertyNames", "minProperties", "maxProperties", "dependentRequired",
                          "dependentSchemas", "unevaluatedProperties", "dependencies"})
      if (s.contains(k)) bad(where + "/" + k, "the keyword is not supported");
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) bad(where + "/required", "must be an array of names");
      for (const auto& r : s["required"]) {
        if (!r.is_string()) bad(where + "/required", "must be an array of names");
        required.insert(r.get<std::string>());
      }
    }
    struct Member {
      std::string name, pair;
      bool required;
    };
    std::vector<Member> members;
    std::set<std::string> names;
    if (s.contains("properties")) {
      if (!s["properties"].is_object()) bad(where + "/properties", "must be an object");
      for (const auto& [name, sub] : s["properties"].items()) {
        members.push_back({name, literal(json(name).dump()) + " \":\" " + visit(sub, where + "/properties/" + name),
                           required.count(name) > 0});
        names.insert(name);
      }
    }
    for (const std::string& r : required)
      if (!names.count(r)) bad(where + "/required", "names '" + r + "', which is not among the properties");
    std::string extra;  // one additional member, or empty when none is allowed
    const json additional = s.value("additionalProperties", json(true));
    if (additional.is_boolean()) {
      if (additional.get<bool>()) extra = key_not_in(names) + " \":\" json-value";
    } else if (additional.is_object()) {
      extra = key_not_in(names) + " \":\" " + visit(additional, where + "/additionalProperties");
    } else {
      bad(where + "/additionalProperties", "must be a boolean or a schema");
    }
    // tail(i, comma): members i.. in order, each optional one optional, then additional ones;
    // `comma`: something came before, so the next member starts with ",".
    std::map<std::pair<size_t, bool>, std::string> memo;
    std::function<std::string(size_t, bool)> tail = [&](size_t i, bool comma) -> std::string {
      auto key = std::make_pair(i, comma);
      if (auto it = memo.find(key); it != memo.end()) return it->second;
      std::string body;
      const std::string sep = comma ? "\",\" " : "";
      if (i == members.size()) {
        if (extra.empty()) body = "\"\"";
        else if (comma) body = "( \",\" " + extra + " )*";
        else body = "( " + extra + " ( \",\" " + extra + " )* )?";
      } else if (members[i].required) {
        body = sep + members[i].pair + " " + tail(i + 1, true);
      } else {
        body = "( " + sep + members[i].pair + " " + tail(i + 1, true) + " | " + tail(i + 1, comma) + " )";
      }
      return memo[key] = add_rule(body);
    };
    return add_rule("\"{\" " + tail(0, false) + " \"}\"");
  }

  const json& resolve(const std::string& ref, const std::string& where) {
    for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
      const std::string p = prefix;
      if (ref.rfind(p, 0) == 0) {
        const std::string section = p.substr(2, p.size() - 3);
        const std::string name = ref.substr(p.size());
        if (root_.contains(section) && root_[section].contains(name)) return root_[section][name];
        bad(where + "/$ref", "'" + ref + "' names no definition");
      }
    }
    if (ref == "#") return root_;
    bad(where + "/$ref", "only local references (#, #/$defs/NAME, #/definitions/NAME) are supported, not '" + ref + "'");
  }

  std::string visit(const json& s, const std::string& where) {
    // Nesting is bounded: the converter recurses into every subschema.
    struct Depth {
      int& d;
      explicit Depth(int& depth) : d(depth) { ++d; }
      ~Depth() { --d; }
    } depth(depth_);
    if (depth_ > kMaxDepth) bad(where, "schemas nest more than " + std::to_string(kMaxDepth) + " deep");
    if (s.is_boolean()) {
      if (s.get<bool>()) return "json-value";
      bad(where, "the schema false accepts nothing");
    }
    if (!s.is_object()) bad(where, "a schema must be an object or a boolean");
    static const std::set<std::string> known = {
        "type", "properties", "required", "additionalProperties", "enum", "const", "anyOf", "oneOf", "allOf", "$ref",
        "items", "minItems", "maxItems", "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "format", "prefixItems", "contains", "uniqueItems", "minContains", "maxContains",
        "unevaluatedItems", "patternProperties", "propertyNames", "minProperties", "maxProperties",
        "dependentRequired", "dependentSchemas", "unevaluatedProperties", "dependencies"};
    static const std::set<std::string> refused = {"not", "if", "then", "else", "multipleOf"};
    for (const auto& [key, value] : s.items()) {
      (void)value;
      if (kAnnotations.count(key)) continue;
      if (refused.count(key) || !known.count(key)) bad(where + "/" + key, "the keyword '" + key + "' is not supported");
    }
    if (s.contains("$ref")) {
      if (!s["$ref"].is_string()) bad(where + "/$ref", "must be a string");
      const std::string ref = s["$ref"].get<std::string>();
      auto it = ref_rules_.find(ref);
      if (it != ref_rules_.end()) return it->second;
      const std::string name = "ref" + std::to_string(ref_rules_.size());
      ref_rules_[ref] = name;  // before visiting, so a recursive definition refers to itself
      rules_[name] = visit(resolve(ref, where), where + "/$ref");
      return name;
    }
    if (s.contains("const")) return literal(s["const"].dump());
    if (s.contains("enum")) {
      if (!s["enum"].is_array() || s["enum"].empty()) bad(where + "/enum", "must be a non-empty array");
      std::vector<std::string> alts;
      for (const auto& v : s["enum"]) alts.push_back(literal(v.dump()));
      return add_rule(group(alts));
    }
    for (const char* k : {"anyOf", "oneOf"}) {
      if (!s.contains(k)) continue;
      if (!s[k].is_array() || s[k].empty()) bad(where + "/" + k, "must be a non-empty array of schemas");
      std::vector<std::string> alts;
      for (size_t i = 0; i < s[k].size(); ++i) alts.push_back(visit(s[k][i], where + "/" + k + "/" + std::to_string(i)));
      return add_rule(group(alts));
    }
    if (s.contains("allOf")) {
      if (!s["allOf"].is_array() || s["allOf"].size() != 1) bad(where + "/allOf", "only an allOf of one schema is supported");
      return visit(s["allOf"][0], where + "/allOf/0");
    }
    std::vector<std::string> types;
    if (!s.contains("type")) {
      // No type: what the other keywords describe, or any value.
      if (s.contains("properties") || s.contains("additionalProperties") || s.contains("required")) types = {"object"};
      else if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) types = {"array"};
      else if (s.contains("pattern") || s.contains("minLength") || s.contains("maxLength")) types = {"string"};
      else if (s.contains("minimum") || s.contains("maximum")) types = {"number"};
      else return "json-value";
    } else if (s["type"].is_string()) {
      types = {s["type"].get<std::string>()};
    } else if (s["type"].is_array()) {
      for (const auto& t : s["type"]) {
        if (!t.is_string()) bad(where + "/type", "must be a type name or a list of them");
        types.push_back(t.get<std::string>());
      }
    } else {
      bad(where + "/type", "must be a type name or a list of them");
    }
    std::vector<std::string> alts;
    for (const std::string& t : types) {
      if (t == "object") alts.push_back(object_type(s, where));
      else if (t == "array") alts.push_back(array_type(s, where));
      else if (t == "string") alts.push_back(string_type(s, where));
      else if (t == "integer") alts.push_back(integer(s, where));
      else if (t == "number") {
        if (s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") || s.contains("exclusiveMaximum"))
          bad(where, "minimum and maximum are supported on integers, not on numbers");
        alts.push_back("json-number");
      } else if (t == "boolean") alts.push_back("json-boolean");
      else if (t == "null") alts.push_back("json-null");
      else bad(where + "/type", "unknown type '" + t + "'");
    }
    return add_rule(group(alts));
  }

  static constexpr int kMaxDepth = 64;
  const json& root_;
  int depth_ = 0;
  std::map<std::string, std::string> rules_;
  std::map<std::string, std::string> by_body_;
  std::map<std::string, std::string> ref_rules_;
};

}  // namespace

std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema) { return SchemaConverter(schema).convert(); }

}  // namespace sparq
