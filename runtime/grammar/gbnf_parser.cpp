#include "runtime/grammar/gbnf_parser.h"

#include <algorithm>
#include <functional>
#include <map>

#include "runtime/core/error.h"

namespace sparq {

namespace {

using Sequence = std::vector<GrammarSymbol>;
using Alternatives = std::vector<Sequence>;

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view text) : text_(text) {}

  Grammar parse() {
    skip_space(true);
    while (pos_ < text_.size()) {
      const size_t name_at = pos_;
      const std::string name = parse_name();
      skip_space(false);
      if (text_.substr(pos_, 3) != "::=") error("expected ::= after the rule name '" + name + "'");
      pos_ += 3;
      skip_space(true);
      const int32_t id = rule_id(name);
      if (defined_[static_cast<size_t>(id)]) error_at(name_at, "rule '" + name + "' is defined twice");
      defined_[static_cast<size_t>(id)] = true;
      alternatives_[static_cast<size_t>(id)] = parse_alternatives(false);
      skip_space(true);
    }
    for (size_t i = 0; i < names_.size(); ++i)
      if (!defined_[i]) error_at(first_use_[i], "rule '" + names_[i] + "' is used but never defined");
    const auto root = ids_.find("root");
    if (root == ids_.end()) fail("grammar: there is no rule named 'root' to start from");
    check_left_recursion();
    return flatten(root->second);
  }

 private:
  [[noreturn]] void error_at(size_t at, const std::string& what) const {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < at && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    fail("grammar: line ", line, ", column ", column, ": ", what);
  }
  [[noreturn]] void error(const std::string& what) const { error_at(pos_, what); }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  // Spaces, tabs and # comments; newlines too when `newlines` (inside parentheses, after ::= or |).
  void skip_space(bool newlines) {
    while (!at_end()) {
      const char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
        ++pos_;
      } else if (c == '#') {
        while (!at_end() && text_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }

  std::string parse_name() {
    const size_t start = pos_;
    while (!at_end() && name_char(text_[pos_])) ++pos_;
    if (pos_ == start) error(at_end() ? "expected a rule name, found the end" : std::string("expected a rule name, found '") + peek() + "'");
    return std::string(text_.substr(start, pos_ - start));
  }

  int32_t rule_id(const std::string& name) {
    auto [it, added] = ids_.try_emplace(name, static_cast<int32_t>(names_.size()));
    if (added) {
      names_.push_back(name);
      defined_.push_back(false);
      first_use_.push_back(pos_);
      alternatives_.emplace_back();
    }
    return it->second;
  }

  int32_t helper_rule(Alternatives alts) {
    // '#' cannot appear in a GBNF name, so helper rules never clash with the grammar's own.
    std::string name = std::to_string(names_.size());
    name.insert(name.begin(), '#');
    const int32_t id = rule_id(name);
    defined_[static_cast<size_t>(id)] = true;
    alternatives_[static_cast<size_t>(id)] = std::move(alts);
    return id;
  }

  // One UTF-8 character of the source, as a code point.
  char32_t parse_utf8() {
    const auto b = static_cast<unsigned char>(text_[pos_]);
    int extra = b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : (b >> 3) == 30 ? 3 : -1;
    if (extra < 0) error("invalid UTF-8 in the grammar");
    char32_t c = extra == 0 ? b : (b & (0x3F >> extra));
    ++pos_;
    for (int i = 0; i < extra; ++i) {
      if (at_end() || (static_cast<unsigned char>(text_[pos_]) >> 6) != 2) error("invalid UTF-8 in the grammar");
      c = (c << 6) | (static_cast<unsigned char>(text_[pos_++]) & 0x3F);
    }
    return c;
  }

  char32_t parse_hex(int digits) {
    char32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const char c = peek();
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) error("expected " + std::to_string(digits) + " hex digits in the escape");
      v = v * 16 + static_cast<char32_t>(d);
      ++pos_;
    }
    if (v > 0x10FFFF) error("the escape is beyond U+10FFFF");
    return v;
  }

  // A character of a literal or class, with its escapes.
  char32_t parse_char() {
    if (at_end()) error("unexpected end of the grammar");
    if (peek() != '\\') return parse_utf8();
    ++pos_;
    if (at_end()) error("unexpected end after a backslash");
    const char c = text_[pos_++];
    switch (c) {
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case 'x': return parse_hex(2);
      case 'u': return parse_hex(4);
      case 'U': return parse_hex(8);
      case '\\': case '"': case '[': case ']': case '-': case '^': case '/': case '\'': return static_cast<char32_t>(c);
      default: --pos_; error(std::string("unknown escape \\") + c);
    }
  }

  int32_t single_char_class(char32_t c) {
    auto [it, added] = char_class_ids_.try_emplace(c, static_cast<int32_t>(classes_.size()));
    if (added) classes_.push_back({false, {{c, c}}});
    return it->second;
  }

  Alternatives parse_alternatives(bool nested) {
    Alternatives alts;
    alts.push_back(parse_sequence(nested));
    for (;;) {
      // An alternative may also start the next line with '|'.
      const size_t here = pos_;
      skip_space(true);
      if (peek() != '|') {
        pos_ = here;
        break;
      }
      ++pos_;
      skip_space(true);
      alts.push_back(parse_sequence(nested));
    }
    return alts;
  }

  Sequence parse_sequence(bool nested) {
    Sequence seq;
    size_t last_item = 0;  // where the item a postfix operator applies to starts
    bool have_item = false;
    while (!at_end()) {
      const char c = peek();
      if (c == '"') {
        ++pos_;
        last_item = seq.size();
        while (peek() != '"') {
          if (at_end() || peek() == '\n') error("unterminated literal");
          seq.push_back({GrammarSymbol::Kind::Chars, single_char_class(parse_char())});
        }
        ++pos_;
        have_item = true;
      } else if (c == '[') {
        ++pos_;
        CharClass cls;
        if (peek() == '^') {
          cls.negated = true;
          ++pos_;
        }
        while (peek() != ']') {
          if (at_end()) error("unterminated character class");
          const char32_t lo = parse_char();
          char32_t hi = lo;
          if (peek() == '-' && pos_ + 1 < text_.size() && text_[pos_ + 1] != ']') {
            ++pos_;
            hi = parse_char();
            if (hi < lo) error("a character range runs backwards");
          }
          cls.ranges.push_back({lo, hi});
        }
        ++pos_;
        last_item = seq.size();
        seq.push_back({GrammarSymbol::Kind::Chars, static_cast<int32_t>(classes_.size())});
        classes_.push_back(std::move(cls));
        have_item = true;
      } else if (c == '.') {
        ++pos_;
        last_item = seq.size();
        seq.push_back({GrammarSymbol::Kind::Chars, static_cast<int32_t>(classes_.size())});
        classes_.push_back({true, {}});
        have_item = true;
      } else if (name_char(c)) {
        const size_t at = pos_;
        const std::string name = parse_name();
        // A name followed by ::= starts the next rule: this sequence ended at the line break.
        size_t p = pos_;
        while (p < text_.size() && (text_[p] == ' ' || text_[p] == '\t')) ++p;
        if (text_.substr(p, 3) == "::=") {
          pos_ = at;
          break;
        }
        last_item = seq.size();
        seq.push_back({GrammarSymbol::Kind::Rule, rule_id(name)});
        have_item = true;
      } else if (c == '(') {
        if (++depth_ > kMaxNesting) error("groups nest more than " + std::to_string(kMaxNesting) + " deep");
        ++pos_;
        skip_space(true);
        Alternatives inner = parse_alternatives(true);
        if (peek() != ')') error("expected ')'");
        ++pos_;
        --depth_;
        last_item = seq.size();
        seq.push_back({GrammarSymbol::Kind::Rule, helper_rule(std::move(inner))});
        have_item = true;
      } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (!have_item) error(std::string("'") + c + "' follows nothing");
        apply_repetition(seq, last_item);
      } else {
        break;
      }
      skip_space(nested);
    }
    if (!at_end() && peek() != '|' && peek() != ')' && peek() != '\n' && !name_char(peek()))
      error(std::string("unexpected '") + peek() + "'");
    return seq;
  }

  int64_t parse_count() {
    if (!(peek() >= '0' && peek() <= '9')) error("expected a number in {}");
    int64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      v = v * 10 + (peek() - '0');
      if (v > 10000) error("repetition counts above 10000 are not supported");
      ++pos_;
    }
    return v;
  }

  // Repetitions copy their item; nested ones multiply, so the copies are counted and bounded.
  void count_symbols(int64_t n) {
    symbols_ += n;
    if (symbols_ > kMaxSymbols) error("the grammar expands to more than " + std::to_string(kMaxSymbols) + " symbols");
  }

  void apply_repetition(Sequence& seq, size_t last_item) {
    const Sequence item(seq.begin() + static_cast<std::ptrdiff_t>(last_item), seq.end());
    seq.resize(last_item);
    int64_t lo = 0, hi = -1;  // hi -1: unbounded
    const char op = peek();
    ++pos_;
    if (op == '+') {
      lo = 1;
    } else if (op == '?') {
      hi = 1;
    } else if (op == '{') {
      skip_space(true);
      lo = parse_count();
      skip_space(true);
      hi = lo;
      if (peek() == ',') {
        ++pos_;
        skip_space(true);
        hi = peek() == '}' ? -1 : parse_count();
        skip_space(true);
      }
      if (peek() != '}') error("expected '}'");
      ++pos_;
      if (hi >= 0 && hi < lo) error("a repetition's maximum is below its minimum");
    }
    count_symbols(static_cast<int64_t>(item.size() + 1) * (std::max<int64_t>(lo, hi) + 1));
    for (int64_t i = 0; i < lo; ++i) seq.insert(seq.end(), item.begin(), item.end());
    if (hi < 0) {
      // star ::= item star | (empty): right recursion, so the matcher's stacks do not grow.
      const int32_t star = helper_rule({});
      Sequence again = item;
      again.push_back({GrammarSymbol::Kind::Rule, star});
      alternatives_[static_cast<size_t>(star)] = {again, {}};
      seq.push_back({GrammarSymbol::Kind::Rule, star});
    } else if (hi > lo) {
      // opt_k ::= item opt_(k-1) | (empty), k = hi - lo optional copies.
      int32_t prev = -1;
      for (int64_t k = 0; k < hi - lo; ++k) {
        Sequence more = item;
        if (prev >= 0) more.push_back({GrammarSymbol::Kind::Rule, prev});
        prev = helper_rule({more, {}});
      }
      seq.push_back({GrammarSymbol::Kind::Rule, prev});
    }
  }

  // A rule that can reach itself before reading a character would send a top-down matcher into a loop.
  void check_left_recursion() const {
    const size_t n = names_.size();
    std::vector<bool> nullable(n, false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (const Sequence& alt : alternatives_[r]) {
          bool all = true;
          for (const GrammarSymbol& s : alt)
            all &= s.kind == GrammarSymbol::Kind::Rule && nullable[static_cast<size_t>(s.index)];
          if (all) {
            nullable[r] = changed = true;
            break;
          }
        }
      }
    }
    std::vector<std::vector<int32_t>> starts(n);  // rules each rule can begin with
    for (size_t r = 0; r < n; ++r)
      for (const Sequence& alt : alternatives_[r])
        for (const GrammarSymbol& s : alt) {
          if (s.kind != GrammarSymbol::Kind::Rule) break;
          starts[r].push_back(s.index);
          if (!nullable[static_cast<size_t>(s.index)]) break;
        }
    // Depth-first with an explicit stack (a chain of many rules must not exhaust the call stack).
    std::vector<int> mark(n, 0);  // 0 new, 1 on the path, 2 done
    std::vector<std::pair<size_t, size_t>> path;  // (rule, next edge to follow)
    for (size_t root = 0; root < n; ++root) {
      if (mark[root] != 0) continue;
      mark[root] = 1;
      path.push_back({root, 0});
      while (!path.empty()) {
        auto& [r, edge] = path.back();
        if (edge == starts[r].size()) {
          mark[r] = 2;
          path.pop_back();
          continue;
        }
        const auto u = static_cast<size_t>(starts[r][edge++]);
        if (mark[u] == 1) fail("grammar: rule '", display(u), "' is left-recursive (it can reach itself before any character)");
        if (mark[u] == 0) {
          mark[u] = 1;
          path.push_back({u, 0});
        }
      }
    }
  }

  std::string display(size_t r) const { return names_[r][0] == '#' ? "(a group or repetition)" : names_[r]; }

  Grammar flatten(int32_t root) {
    Grammar g;
    g.root = root;
    g.classes = std::move(classes_);
    for (size_t r = 0; r < names_.size(); ++r) {
      GrammarRule rule;
      rule.name = names_[r];
      for (const Sequence& alt : alternatives_[r]) {
        rule.alternatives.push_back(static_cast<int32_t>(g.code.size()));
        g.code.insert(g.code.end(), alt.begin(), alt.end());
        g.code.push_back({GrammarSymbol::Kind::End, 0});
      }
      g.rules.push_back(std::move(rule));
    }
    return g;
  }

  static constexpr int64_t kMaxSymbols = int64_t{1} << 21;
  static constexpr int kMaxNesting = 256;  // parentheses: the parser recurses into each
  int depth_ = 0;
  std::string_view text_;
  size_t pos_ = 0;
  int64_t symbols_ = 0;
  std::map<std::string, int32_t> ids_;
  std::vector<std::string> names_;
  std::vector<bool> defined_;
  std::vector<size_t> first_use_;
  std::vector<Alternatives> alternatives_;
  std::vector<CharClass> classes_;
  std::map<char32_t, int32_t> char_class_ids_;
};

}  // namespace

Grammar parse_gbnf(std::string_view text) { return GbnfParser(text).parse(); }

}  // namespace sparq
