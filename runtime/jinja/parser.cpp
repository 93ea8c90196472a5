#include "runtime/jinja/parser.h"

#include <set>

#include "runtime/core/error.h"
#include "runtime/jinja/lexer.h"

namespace sparq::jinja {

namespace {

class ExprParser {
 public:
  ExprParser(const std::vector<Token>& toks, size_t pos = 0) : t_(toks), p_(pos) {}

  const Token& peek(size_t k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool at_end() const { return peek().type == Token::Type::End; }
  bool is_op(const char* op, size_t k = 0) const { return peek(k).type == Token::Type::Op && peek(k).text == op; }
  bool is_name(const char* n, size_t k = 0) const { return peek(k).type == Token::Type::Name && peek(k).text == n; }
  const Token& next() { return t_[std::min(p_++, t_.size() - 1)]; }
  [[noreturn]] void error(const std::string& what) const {
    fail("chat template: line ", peek().line, ": ", what, peek().type == Token::Type::End ? " at the end of the tag"
                                                                                        : " near '" + peek().text + "'");
  }
  void expect_op(const char* op) {
    if (!is_op(op)) error(std::string("expected '") + op + "'");
    ++p_;
  }
  std::string expect_name() {
    if (peek().type != Token::Type::Name) error("expected a name");
    return next().text;
  }

  ExprPtr node(Expr::Type type) {
    auto e = std::make_unique<Expr>();
    e->type = type;
    e->line = peek().line;
    return e;
  }

  ExprPtr expression() {
    DepthGuard g(*this);
    return cond_expr();
  }

  // Bounds the recursion on hostile input such as "((((((...".
  struct DepthGuard {
    ExprParser& p;
    explicit DepthGuard(ExprParser& x) : p(x) {
      if (++p.depth_ > kMaxDepth) p.error("expression nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };
  static constexpr int kMaxDepth = 200;

  ExprPtr cond_expr() {
    ExprPtr e = or_expr();
    while (is_name("if")) {
      ++p_;
      auto c = node(Expr::Type::Cond);
      c->a = or_expr();  // condition
      c->b = std::move(e);
      if (is_name("else")) {
        ++p_;
        c->c = cond_expr();
      }
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(std::string_view op, ExprPtr l, ExprPtr r) {
    auto e = node(Expr::Type::Binary);
    e->name.assign(op.data(), op.size());
    e->a = std::move(l);
    e->b = std::move(r);
    return e;
  }

  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (is_name("or")) {
      ++p_;
      e = binary("or", std::move(e), and_expr());
    }
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (is_name("and")) {
      ++p_;
      e = binary("and", std::move(e), not_expr());
    }
    return e;
  }
  ExprPtr not_expr() {
    if (is_name("not")) {
      ++p_;
      auto e = node(Expr::Type::Unary);
      e->name = "not";
      e->a = not_expr();
      return e;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr e = math1();
    for (;;) {
      const Token& t = peek();
      if (t.type == Token::Type::Op && (t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" ||
                                        t.text == ">" || t.text == ">=")) {
        std::string op = next().text;
        e = binary(op, std::move(e), math1());
      } else if (is_name("in")) {
        ++p_;
        e = binary("in", std::move(e), math1());
      } else if (is_name("not") && is_name("in", 1)) {
        p_ += 2;
        e = binary("notin", std::move(e), math1());
      } else {
        return e;
      }
    }
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().text;
      e = binary(op, std::move(e), concat());
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (is_op("~")) {
      ++p_;
      e = binary("~", std::move(e), math2());
    }
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().text;
      e = binary(op, std::move(e), power());
    }
    return e;
  }
  ExprPtr power() {
    ExprPtr e = unary(true);
    while (is_op("**")) {
      ++p_;
      e = binary("**", std::move(e), unary(true));
    }
    return e;
  }
  ExprPtr unary(bool with_filter) {
    DepthGuard g(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      auto u = node(Expr::Type::Unary);
      u->name = next().text;
      u->a = unary(false);
      e = std::move(u);
    } else {
      e = primary();
    }
    e = postfix(std::move(e));
    if (with_filter) e = filters_and_tests(std::move(e));
    return e;
  }

  ExprPtr primary() {
    const Token& t = peek();
    if (t.type == Token::Type::Name) {
      std::string n = next().text;
      auto e = node(Expr::Type::Literal);
      if (n == "true" || n == "True") e->value = Value::boolean(true);
      else if (n == "false" || n == "False") e->value = Value::boolean(false);
      else if (n == "none" || n == "None") e->value = Value::none();
      else {
        e->type = Expr::Type::Name;
        e->name = n;
      }
      return e;
    }
    if (t.type == Token::Type::String) {
      auto e = node(Expr::Type::Literal);
      std::string s;
      while (peek().type == Token::Type::String) s += next().text;  // adjacent literals concatenate
      e->value = Value::string(std::move(s));
      return e;
    }
    if (t.type == Token::Type::Int || t.type == Token::Type::Float) {
      auto e = node(Expr::Type::Literal);
      std::string n = next().text;
      try {
        e->value = t.type == Token::Type::Int ? Value::integer(std::stoll(n)) : Value::number(std::stod(n));
      } catch (const std::exception&) {
        error("number out of range");
      }
      return e;
    }
    if (is_op("(")) {
      ++p_;
      if (is_op(")")) {
        ++p_;
        return node(Expr::Type::ListLit);  // empty tuple
      }
      ExprPtr e = expression();
      if (is_op(",")) {  // tuple: treated as a list
        auto l = node(Expr::Type::ListLit);
        l->items.push_back(std::move(e));
        while (is_op(",")) {
          ++p_;
          if (is_op(")")) break;
          l->items.push_back(expression());
        }
        e = std::move(l);
      }
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      ++p_;
      auto l = node(Expr::Type::ListLit);
      while (!is_op("]")) {
        l->items.push_back(expression());
        if (!is_op(",")) break;
        ++p_;
      }
      expect_op("]");
      return l;
    }
    if (is_op("{")) {
      ++p_;
      auto d = node(Expr::Type::DictLit);
      while (!is_op("}")) {
        d->items.push_back(expression());
        expect_op(":");
        d->items.push_back(expression());
        if (!is_op(",")) break;
        ++p_;
      }
      expect_op("}");
      return d;
    }
    error("expected an expression");
  }

  void call_args(CallArgs& args) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().type == Token::Type::Name && is_op("=", 1)) {
        std::string k = next().text;
        ++p_;
        args.kw.emplace_back(k, expression());
      } else {
        if (!args.kw.empty()) error("positional argument after a keyword argument");
        args.pos.push_back(expression());
      }
      if (!is_op(",")) break;
      ++p_;
    }
    expect_op(")");
  }

  ExprPtr postfix(ExprPtr e) {
    for (;;) {
      if (is_op(".")) {
        ++p_;
        auto a = node(Expr::Type::Attr);
        if (peek().type == Token::Type::Int) {  // foo.0
          a->type = Expr::Type::Index;
          a->b = node(Expr::Type::Literal);
          try {
            a->b->value = Value::integer(std::stoll(next().text));
          } catch (const std::exception&) {
            error("index out of range");
          }
        } else {
          a->name = expect_name();
        }
        a->a = std::move(e);
        e = std::move(a);
      } else if (is_op("[")) {
        ++p_;
        ExprPtr start, stop, step;
        bool slice = false;
        if (!is_op(":")) start = expression();
        if (is_op(":")) {
          slice = true;
          ++p_;
          if (!is_op("]") && !is_op(":")) stop = expression();
          if (is_op(":")) {
            ++p_;
            if (!is_op("]")) step = expression();
          }
        }
        expect_op("]");
        auto x = node(slice ? Expr::Type::Slice : Expr::Type::Index);
        x->a = std::move(e);
        x->b = std::move(start);
        x->c = std::move(stop);
        x->d = std::move(step);
        e = std::move(x);
      } else if (is_op("(")) {
        auto c = node(Expr::Type::Call);
        call_args(c->args);
        c->a = std::move(e);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr filter_call(ExprPtr target) {
    auto f = node(Expr::Type::Filter);
    f->name = expect_name();
    while (is_op(".")) {  // dotted filter names are not a thing in chat templates; reject clearly
      error("unsupported dotted filter name");
    }
    if (is_op("(")) call_args(f->args);
    f->a = std::move(target);
    return f;
  }

  ExprPtr filters_and_tests(ExprPtr e) {
    for (;;) {
      if (is_op("|")) {
        ++p_;
        e = postfix(filter_call(std::move(e)));
      } else if (is_name("is")) {
        ++p_;
        auto t = node(Expr::Type::Test);
        if (is_name("not")) {
          ++p_;
          t->negate = true;
        }
        t->name = expect_name();
        if (t->name == "none" || t->name == "true" || t->name == "false") {
          // `is none` etc.: the names are also literals
        }
        if (is_op("(")) {
          call_args(t->args);
        } else if (starts_primary()) {
          t->args.pos.push_back(unary(false));
        }
        t->a = std::move(e);
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  bool starts_primary() const {
    const Token& t = peek();
    if (t.type == Token::Type::String || t.type == Token::Type::Int || t.type == Token::Type::Float) return true;
    if (t.type == Token::Type::Name) {
      static const std::set<std::string> stop = {"and", "or", "not", "in", "is", "if", "else", "recursive"};
      return !stop.count(t.text);
    }
    return t.type == Token::Type::Op && (t.text == "[" || t.text == "{" || t.text == "(" || t.text == "-");
  }

  size_t pos() const { return p_; }

 private:
  const std::vector<Token>& t_;
  size_t p_;
  int depth_ = 0;
};

class Parser {
 public:
  explicit Parser(std::vector<Chunk> chunks) : chunks_(std::move(chunks)) {}

  Template parse() {
    Template t;
    std::string end = parse_body(t.body, {});
    if (!end.empty()) fail("chat template: line ", line_, ": unexpected {% ", end, " %}");
    return t;
  }

 private:
  // Parses statements until a tag whose keyword is in `stops`; returns that keyword ("" at EOF).
  // The stop tag's chunk stays current so the caller can read its arguments.
  std::string parse_body(Body& body, const std::set<std::string>& stops) {
    while (i_ < chunks_.size()) {
      Chunk& ch = chunks_[i_];
      line_ = ch.line;
      if (ch.type == Chunk::Type::Text) {
        auto s = std::make_unique<Stmt>();
        s->type = Stmt::Type::Text;
        s->text = std::move(ch.text);
        s->line = ch.line;
        body.push_back(std::move(s));
        ++i_;
        continue;
      }
      if (ch.type == Chunk::Type::Output) {
        ExprParser ep(ch.tokens);
        auto s = std::make_unique<Stmt>();
        s->type = Stmt::Type::Output;
        s->line = ch.line;
        s->expr = ep.expression();
        if (!ep.at_end()) ep.error("unexpected token in {{ ... }}");
        body.push_back(std::move(s));
        ++i_;
        continue;
      }
      if (ch.tokens.empty() || ch.tokens[0].type != Token::Type::Name)
        fail("chat template: line ", ch.line, ": empty or malformed {% ... %} tag");
      const std::string kw = ch.tokens[0].text;
      if (stops.count(kw)) return kw;
      body.push_back(statement(kw));
    }
    return {};
  }

  StmtPtr make(Stmt::Type type) {
    auto s = std::make_unique<Stmt>();
    s->type = type;
    s->line = line_;
    return s;
  }

  void expect_end(ExprParser& ep, const char* tag) {
    if (!ep.at_end()) ep.error(std::string("unexpected token in {% ") + tag + " %}");
  }

  void close_tag(const std::string& got, const std::string& want, int open_line) {
    if (got != want)
      fail("chat template: line ", open_line, ": block is not closed by {% ", want, " %}",
           got.empty() ? std::string(" before the end of the template") : " (found {% " + got + " %})");
    ++i_;
  }

  StmtPtr statement(const std::string& kw) {
    const Chunk& ch = chunks_[i_];
    if (nesting_ >= kMaxNesting) fail("chat template: line ", ch.line, ": blocks nested too deeply");
    struct NestGuard {
      int& n;
      explicit NestGuard(int& x) : n(x) { ++n; }
      ~NestGuard() { --n; }
    } nest(nesting_);
    int open_line = ch.line;
    ExprParser ep(ch.tokens, 1);
    if (kw == "if") {
      auto s = make(Stmt::Type::If);
      ExprPtr cond = ep.expression();
      expect_end(ep, "if");
      ++i_;
      for (;;) {
        Body b;
        std::string end = parse_body(b, {"elif", "else", "endif"});
        s->branches.emplace_back(std::move(cond), std::move(b));
        if (end == "elif") {
          ExprParser e2(chunks_[i_].tokens, 1);
          cond = e2.expression();
          expect_end(e2, "elif");
          ++i_;
          continue;
        }
        if (end == "else") {
          ++i_;
          std::string end2 = parse_body(s->else_body, {"endif"});
          close_tag(end2, "endif", open_line);
        } else {
          close_tag(end, "endif", open_line);
        }
        break;
      }
      return s;
    }
    if (kw == "for") {
      auto s = make(Stmt::Type::For);
      s->targets.push_back(ep.expect_name());
      while (ep.is_op(",")) {
        ep.next();
        s->targets.push_back(ep.expect_name());
      }
      if (!ep.is_name("in")) ep.error("expected 'in' in {% for %}");
      ep.next();
      // The iterable stops before a trailing "if" filter (no conditional expression here).
      s->expr = ep.or_expr();
      if (ep.is_name("if")) {
        ep.next();
        s->cond = ep.expression();
      }
      if (ep.is_name("recursive")) ep.error("recursive loops are not supported");
      expect_end(ep, "for");
      ++i_;
      std::string end = parse_body(s->body, {"else", "endfor"});
      if (end == "else") {
        ++i_;
        end = parse_body(s->else_body, {"endfor"});
      }
      close_tag(end, "endfor", open_line);
      return s;
    }
    if (kw == "set") {
      std::vector<std::string> targets{ep.expect_name()};
      std::string attr;
      if (ep.is_op(".")) {
        ep.next();
        attr = ep.expect_name();
      }
      while (ep.is_op(",")) {
        ep.next();
        targets.push_back(ep.expect_name());
      }
      if (ep.at_end()) {  // block set
        auto s = make(Stmt::Type::SetBlock);
        s->targets = targets;
        if (!attr.empty()) fail("chat template: line ", open_line, ": {% set ns.attr %} blocks are not supported");
        ++i_;
        std::string end = parse_body(s->body, {"endset"});
        close_tag(end, "endset", open_line);
        return s;
      }
      auto s = make(Stmt::Type::Set);
      s->targets = targets;
      s->attr = attr;
      ep.expect_op("=");
      s->expr = ep.expression();
      if (ep.is_op(",")) {  // set a, b = x, y
        auto l = std::make_unique<Expr>();
        l->type = Expr::Type::ListLit;
        l->items.push_back(std::move(s->expr));
        while (ep.is_op(",")) {
          ep.next();
          l->items.push_back(ep.expression());
        }
        s->expr = std::move(l);
      }
      expect_end(ep, "set");
      ++i_;
      return s;
    }
    if (kw == "macro") {
      auto s = make(Stmt::Type::Macro);
      s->targets.push_back(ep.expect_name());
      ep.expect_op("(");
      while (!ep.is_op(")")) {
        std::string p = ep.expect_name();
        ExprPtr def;
        if (ep.is_op("=")) {
          ep.next();
          def = ep.expression();
        }
        s->params.emplace_back(p, std::move(def));
        if (!ep.is_op(",")) break;
        ep.next();
      }
      ep.expect_op(")");
      expect_end(ep, "macro");
      ++i_;
      std::string end = parse_body(s->body, {"endmacro"});
      close_tag(end, "endmacro", open_line);
      return s;
    }
    if (kw == "break" || kw == "continue") {
      expect_end(ep, kw.c_str());
      ++i_;
      return make(kw == "break" ? Stmt::Type::Break : Stmt::Type::Continue);
    }
    if (kw == "filter") {
      auto s = make(Stmt::Type::FilterBlock);
      s->expr = ep.filter_call(nullptr);
      expect_end(ep, "filter");
      ++i_;
      std::string end = parse_body(s->body, {"endfilter"});
      close_tag(end, "endfilter", open_line);
      return s;
    }
    if (kw == "generation") {  // transformers' AssistantTracker extension: renders its body
      auto s = make(Stmt::Type::Scope);
      expect_end(ep, "generation");
      ++i_;
      std::string end = parse_body(s->body, {"endgeneration"});
      close_tag(end, "endgeneration", open_line);
      return s;
    }
    if (kw == "with") {
      auto s = make(Stmt::Type::Scope);
      while (!ep.at_end()) {
        std::string n = ep.expect_name();
        ep.expect_op("=");
        s->params.emplace_back(n, ep.expression());
        if (!ep.is_op(",")) break;
        ep.next();
      }
      expect_end(ep, "with");
      ++i_;
      std::string end = parse_body(s->body, {"endwith"});
      close_tag(end, "endwith", open_line);
      return s;
    }
    if (kw == "elif" || kw == "else" || kw.rfind("end", 0) == 0)
      fail("chat template: line ", open_line, ": {% ", kw, " %} without a matching opening tag");
    fail("chat template: line ", open_line, ": the tag {% ", kw,
         " %} is not supported (supported: if/elif/else, for, set, macro, filter, with, generation, break, continue, raw)");
  }

  static constexpr int kMaxNesting = 100;
  std::vector<Chunk> chunks_;
  size_t i_ = 0;
  int line_ = 1;
  int nesting_ = 0;
};

}  // namespace

Template parse(const std::string& source) { return Parser(lex(source)).parse(); }

}  // namespace sparq::jinja
