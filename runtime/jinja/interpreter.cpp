#include "runtime/jinja/interpreter.h"

#include <chrono>
#include <cmath>
#include <climits>
#include <map>
#include <unordered_set>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"
#include "runtime/jinja/builtins.h"

namespace sparq::jinja {

namespace {

// Whether `v` holds the dict `target` at any depth. Setting a namespace attribute is the only way a
// value changes after it is made, and it may not close a cycle, so values form a DAG; `seen` keeps
// the walk linear where they share parts.
bool holds(const Value& v, const Dict* target, std::unordered_set<const void*>& seen) {
  if (v.is_dict()) {
    if (v.dict.get() == target) return true;
    if (!seen.insert(v.dict.get()).second) return false;
    for (const auto& kv : v.dict->items)
      if (holds(kv.second, target, seen)) return true;
  } else if (v.is_list()) {
    if (!seen.insert(v.list.get()).second) return false;
    for (const auto& x : *v.list)
      if (holds(x, target, seen)) return true;
  }
  return false;
}

}  // namespace

namespace {

enum class Flow { Normal, Break, Continue };

[[noreturn]] void error_at(int line, const std::string& msg) { fail("chat template: line ", line, ": ", msg); }

// Code point slicing/indexing of UTF-8 strings.
std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> cps;
  for (size_t i = 0; i < s.size();) {
    size_t n = std::min<size_t>(utf8::seq_len(static_cast<unsigned char>(s[i])), s.size() - i);
    cps.push_back(s.substr(i, n));
    i += n;
  }
  return cps;
}

int64_t to_int(const Value& v, int line, const char* what) {
  if (v.kind == Value::Kind::Int) return v.i;
  if (v.kind == Value::Kind::Bool) return v.b;
  error_at(line, std::string(what) + " must be an integer, not " + v.type_name());
}

}  // namespace

class Interpreter {
 public:
  explicit Interpreter(const RenderEnv& env) : env_(env) { scopes_.push_back({}); }

  std::string run(const Template& t) {
    std::string out;
    exec_body(t.body, out);
    return out;
  }

 private:
  using Scope = std::map<std::string, Value, std::less<>>;

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    if (const Value* g = env_.globals.dict->find(name)) return *g;
    if (auto b = builtin(name); !b.is_undefined()) return b;
    return Value::undefined(name);
  }

  Value builtin(const std::string& name) const {
    if (name == "range")
      return Value::function([](Args& a) {
        int64_t start = 0, stop, step = 1;
        if (a.pos.size() == 1) {
          stop = to_int(a.pos[0], 0, "range() argument");
        } else if (a.pos.size() >= 2) {
          start = to_int(a.pos[0], 0, "range() argument");
          stop = to_int(a.pos[1], 0, "range() argument");
          if (a.pos.size() > 2) step = to_int(a.pos[2], 0, "range() argument");
        } else {
          fail("chat template: range() needs arguments");
        }
        if (step == 0) fail("chat template: range() step must not be zero");
        List l;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
          l.push_back(Value::integer(i));
          if (l.size() > 10'000'000) fail("chat template: range() too large");
        }
        return Value::make_list(std::move(l));
      });
    if (name == "namespace" || name == "dict")
      return Value::function([name](Args& a) {
        Value d = Value::make_dict();
        d.dict->is_namespace = name == "namespace";
        for (auto& p : a.pos)
          if (p.is_dict())
            for (auto& kv : p.dict->items) d.dict->set(kv.first, kv.second);
        for (auto& [k, v] : a.kw) d.dict->set(k, v);
        return d;
      });
    if (name == "raise_exception")
      return Value::function([](Args& a) -> Value {
        fail("chat template raised an exception: ", a.pos.empty() ? std::string() : a.pos[0].str());
      });
    if (name == "strftime_now") {
      std::time_t now = env_.now;
      return Value::function([now](Args& a) {
        std::time_t t = now ? now : std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
        std::tm tm{};
        localtime_r(&t, &tm);
        std::string fmt = a.pos.empty() ? std::string("%Y-%m-%d") : a.pos[0].str();
        char buf[512];
        size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
        return Value::string(std::string(buf, n));
      });
    }
    return Value::undefined(name);
  }

  void assign(const std::string& name, Value v) { scopes_.back()[name] = std::move(v); }

  // ---- statements -------------------------------------------------------------------------
  Flow emit(const std::string& text, int line, std::string& out) {
    if (out.size() + text.size() > Value::kMaxStringBytes)
      error_at(line, "the rendered text would grow over " + std::to_string(Value::kMaxStringBytes >> 20) + " MiB");
    out += text;
    return Flow::Normal;
  }

  Flow exec_body(const Body& body, std::string& out) {
    for (const auto& s : body) {
      Flow f = exec(*s, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec(const Stmt& s, std::string& out) {
    switch (s.type) {
      case Stmt::Type::Text: return emit(s.text, s.line, out);
      case Stmt::Type::Output: return emit(eval(*s.expr).str(), s.line, out);
      case Stmt::Type::If:
        for (const auto& [cond, body] : s.branches)
          if (eval(*cond).truthy()) return exec_body(body, out);
        return exec_body(s.else_body, out);
      case Stmt::Type::For: return exec_for(s, out);
      case Stmt::Type::Set: {
        Value v = eval(*s.expr);
        if (!s.attr.empty()) {
          Value ns = lookup(s.targets[0]);
          if (!ns.is_dict() || !ns.dict->is_namespace)
            error_at(s.line, "cannot assign attribute '" + s.attr + "' on '" + s.targets[0] + "', which is not a namespace");
          // Values are shared by reference: a namespace holding itself would be a cycle nothing frees.
          std::unordered_set<const void*> seen;
          if (holds(v, ns.dict.get(), seen))
            error_at(s.line, "cannot store namespace '" + s.targets[0] + "' inside itself (attribute '" + s.attr + "')");
          ns.dict->set(s.attr, std::move(v));
        } else if (s.targets.size() == 1) {
          assign(s.targets[0], std::move(v));
        } else {
          List items = iterate(v, s.line);
          if (items.size() != s.targets.size()) error_at(s.line, "wrong number of values to unpack in {% set %}");
          for (size_t k = 0; k < items.size(); ++k) assign(s.targets[k], items[k]);
        }
        return Flow::Normal;
      }
      case Stmt::Type::SetBlock: {
        std::string captured;
        exec_body(s.body, captured);
        assign(s.targets[0], Value::string(std::move(captured)));
        return Flow::Normal;
      }
      case Stmt::Type::Macro: {
        const Stmt* def = &s;
        Interpreter* self = this;
        assign(s.targets[0], Value::function([self, def](Args& a) { return self->call_macro(*def, a); }));
        return Flow::Normal;
      }
      case Stmt::Type::Break: return Flow::Break;
      case Stmt::Type::Continue: return Flow::Continue;
      case Stmt::Type::FilterBlock: {
        std::string captured;
        Flow f = exec_body(s.body, captured);
        Args args = eval_args(s.expr->args);
        out += apply_filter(s.expr->name, Value::string(captured), args, s.line).str();
        return f;
      }
      case Stmt::Type::Scope: {
        Scope scope;
        for (const auto& [name, e] : s.params) scope[name] = eval(*e);
        scopes_.push_back(std::move(scope));
        Flow f = exec_body(s.body, out);
        scopes_.pop_back();
        return f;
      }
    }
    return Flow::Normal;
  }

  Flow exec_for(const Stmt& s, std::string& out) {
    Value iterable = eval(*s.expr);
    if (iterable.is_undefined()) iterable = Value::make_list();
    List items = iterate(iterable, s.line);
    if (s.cond) {  // the filter sees each item (without loop)
      List kept;
      for (auto& it : items) {
        scopes_.push_back({});
        bind_targets(s, it);
        bool keep = eval(*s.cond).truthy();
        scopes_.pop_back();
        if (keep) kept.push_back(it);
      }
      items.swap(kept);
    }
    if (items.empty()) {
      scopes_.push_back({});
      exec_body(s.else_body, out);
      scopes_.pop_back();
      return Flow::Normal;
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < n; ++k) {
      if (++iterations_ > env_.max_loop_iterations)
        error_at(s.line, "the template ran too long (over " + std::to_string(env_.max_loop_iterations) +
                             " loop iterations)");
      scopes_.push_back({});
      bind_targets(s, items[k]);
      Value loop = Value::make_dict();
      auto& d = *loop.dict;
      d.set("index", Value::integer(k + 1));
      d.set("index0", Value::integer(k));
      d.set("revindex", Value::integer(n - k));
      d.set("revindex0", Value::integer(n - k - 1));
      d.set("first", Value::boolean(k == 0));
      d.set("last", Value::boolean(k == n - 1));
      d.set("length", Value::integer(n));
      d.set("depth", Value::integer(1));
      d.set("depth0", Value::integer(0));
      d.set("previtem", k > 0 ? items[k - 1] : Value::undefined("previtem"));
      d.set("nextitem", k + 1 < n ? items[k + 1] : Value::undefined("nextitem"));
      d.set("cycle", Value::function([k](Args& a) {
              if (a.pos.empty()) fail("chat template: loop.cycle() needs arguments");
              return a.pos[static_cast<size_t>(k) % a.pos.size()];
            }));
      scopes_.back()["loop"] = loop;
      Flow f = exec_body(s.body, out);
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void bind_targets(const Stmt& s, const Value& item) {
    if (s.targets.size() == 1) {
      scopes_.back()[s.targets[0]] = item;
      return;
    }
    List parts = iterate(item, s.line);
    if (parts.size() != s.targets.size())
      error_at(s.line, "cannot unpack " + std::to_string(parts.size()) + " values into " +
                           std::to_string(s.targets.size()) + " loop variables");
    for (size_t k = 0; k < parts.size(); ++k) scopes_.back()[s.targets[k]] = parts[k];
  }

  Value call_macro(const Stmt& def, Args& a) {
    if (macro_depth_ >= kMaxMacroDepth)
      error_at(def.line, "macro '" + def.targets[0] + "' recursed too deeply (over " + std::to_string(kMaxMacroDepth) +
                             " nested calls)");
    struct DepthGuard {
      int& d;
      explicit DepthGuard(int& x) : d(x) { ++d; }
      ~DepthGuard() { --d; }
    } guard(macro_depth_);
    // Macros see the template's top-level names and their own parameters.
    std::vector<Scope> saved;
    saved.swap(scopes_);
    scopes_.push_back(saved.front());
    Scope params;
    for (size_t k = 0; k < def.params.size(); ++k) {
      const auto& [pname, pdef] = def.params[k];
      Value v = Value::undefined(pname);
      if (k < a.pos.size()) {
        v = a.pos[k];
      } else {
        bool found = false;
        for (auto& [kn, kv] : a.kw)
          if (kn == pname) {
            v = kv;
            found = true;
          }
        if (!found && pdef) v = eval(*pdef);
      }
      params[pname] = v;
    }
    scopes_.push_back(std::move(params));
    std::string out;
    exec_body(def.body, out);
    scopes_.swap(saved);
    return Value::string(std::move(out));
  }

  // ---- expressions ------------------------------------------------------------------------
  Args eval_args(const CallArgs& ca) {
    Args a;
    for (const auto& e : ca.pos) a.pos.push_back(eval(*e));
    for (const auto& [k, e] : ca.kw) a.kw.emplace_back(k, eval(*e));
    return a;
  }

  Value get_attr(const Value& obj, const std::string& name, int line) {
    if (obj.is_undefined())
      error_at(line, "'" + (obj.s.empty() ? std::string("value") : obj.s) + "' is undefined (reading ." + name + ")");
    if (obj.is_dict()) {
      if (!obj.dict->is_namespace && is_method_name(obj, name)) return bound_method(obj, name, line);
      if (const Value* v = obj.dict->find(name)) return *v;
      return Value::undefined(name);
    }
    if (is_method_name(obj, name)) return bound_method(obj, name, line);
    return Value::undefined(name);
  }

  Value bound_method(const Value& obj, const std::string& name, int line) {
    return Value::function([obj, name, line](Args& a) {
      Value out;
      if (!call_method(obj, name, a, line, out))
        error_at(line, "'" + obj.type_name() + "' object has no method '" + name + "'");
      return out;
    });
  }

  Value get_item(const Value& obj, const Value& key, int line) {
    if (obj.is_undefined())
      error_at(line, "'" + (obj.s.empty() ? std::string("value") : obj.s) + "' is undefined (reading [" + key.repr() + "])");
    if (obj.is_dict()) {
      if (key.is_string()) {
        if (const Value* v = obj.dict->find(key.s)) return *v;
        return Value::undefined(key.s);
      }
      return Value::undefined();
    }
    if (obj.is_list() || obj.is_string()) {
      if (!(key.kind == Value::Kind::Int || key.kind == Value::Kind::Bool)) {
        if (key.is_string()) return get_attr(obj, key.s, line);
        error_at(line, "indices must be integers, not " + key.type_name());
      }
      int64_t i = key.kind == Value::Kind::Bool ? key.b : key.i;
      if (obj.is_list()) {
        int64_t n = static_cast<int64_t>(obj.list->size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) return Value::undefined();
        return (*obj.list)[i];
      }
      auto cps = code_points(obj.s);
      int64_t n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined();
      return Value::string(cps[i]);
    }
    return Value::undefined();
  }

  Value slice(const Value& obj, const Expr& e) {
    auto opt = [&](const ExprPtr& x, bool& has) -> int64_t {
      has = false;
      if (!x) return 0;
      Value v = eval(*x);
      if (v.is_none()) return 0;
      has = true;
      return to_int(v, e.line, "slice index");
    };
    bool hs, he, hst;
    int64_t start = opt(e.b, hs), stop = opt(e.c, he), step = opt(e.d, hst);
    if (!hst) step = 1;
    if (step == 0) error_at(e.line, "slice step cannot be zero");
    std::vector<Value> elems;
    std::vector<std::string> cps;
    bool is_str = obj.is_string();
    int64_t n;
    if (obj.is_list()) {
      n = static_cast<int64_t>(obj.list->size());
    } else if (is_str) {
      cps = code_points(obj.s);
      n = static_cast<int64_t>(cps.size());
    } else {
      error_at(e.line, "cannot slice a " + obj.type_name());
    }
    auto clamp = [&](int64_t v, bool has, int64_t def_pos, int64_t def_neg) {
      if (!has) return step > 0 ? def_pos : def_neg;
      if (v < 0) v += n;
      if (step > 0) return std::clamp<int64_t>(v, 0, n);
      return std::clamp<int64_t>(v, -1, n - 1);
    };
    int64_t b = clamp(start, hs, 0, n - 1), en = clamp(stop, he, n, -1);
    List l;
    std::string s;
    for (int64_t i = b; step > 0 ? i < en : i > en; i += step) {
      if (is_str)
        s += cps[i];
      else
        l.push_back((*obj.list)[i]);
    }
    return is_str ? Value::string(std::move(s)) : Value::make_list(std::move(l));
  }

  Value arith(const std::string& op, const Value& a, const Value& b, int line) {
    auto bad = [&]() -> Value {
      error_at(line, "unsupported operand types for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
    };
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        if (a.s.size() + b.s.size() > Value::kMaxStringBytes) error_at(line, "string concatenation result too large");
        return Value::string(a.s + b.s);
      }
      if (a.is_list() && b.is_list()) {
        if (a.list->size() + b.list->size() > 1'000'000) error_at(line, "list concatenation result too large");
        List l = *a.list;
        l.insert(l.end(), b.list->begin(), b.list->end());
        return Value::make_list(std::move(l));
      }
    }
    if (op == "*") {
      const Value* str = a.is_string() || a.is_list() ? &a : b.is_string() || b.is_list() ? &b : nullptr;
      const Value* cnt = str == &a ? &b : &a;
      if (str && (cnt->kind == Value::Kind::Int || cnt->kind == Value::Kind::Bool)) {
        int64_t n = std::max<int64_t>(0, cnt->kind == Value::Kind::Bool ? cnt->b : cnt->i);
        if (n > 1'000'000) error_at(line, "repetition count too large");
        const size_t unit = str->is_string() ? str->s.size() : str->list->size();
        const size_t most = str->is_string() ? Value::kMaxStringBytes : size_t{1'000'000};
        if (unit > 0 && static_cast<size_t>(n) > most / unit) error_at(line, "repetition result too large");
        if (str->is_string()) {
          std::string r;
          for (int64_t k = 0; k < n; ++k) r += str->s;
          return Value::string(std::move(r));
        }
        List l;
        for (int64_t k = 0; k < n; ++k) l.insert(l.end(), str->list->begin(), str->list->end());
        return Value::make_list(std::move(l));
      }
    }
    if (op == "%" && a.is_string()) {
      Args fa;
      fa.pos = b.is_list() ? *b.list : List{b};
      return apply_filter("format", a, fa, line);
    }
    if (!a.is_number() || !b.is_number()) return bad();
    bool ints = a.kind != Value::Kind::Float && b.kind != Value::Kind::Float;
    int64_t x = a.kind == Value::Kind::Bool ? a.b : a.i, y = b.kind == Value::Kind::Bool ? b.b : b.i;
    double fx = a.as_double(), fy = b.as_double();
    // Python's integers do not overflow; ours are 64-bit, and an overflow is an error, not UB.
    int64_t r = 0;
    auto checked = [&](bool overflowed) {  // called after the builtin has written r
      if (overflowed) error_at(line, "integer overflow in '" + op + "' (results beyond 64 bits are not supported)");
      return Value::integer(r);
    };
    if (op == "+") return ints ? checked(__builtin_add_overflow(x, y, &r)) : Value::number(fx + fy);
    if (op == "-") return ints ? checked(__builtin_sub_overflow(x, y, &r)) : Value::number(fx - fy);
    if (op == "*") return ints ? checked(__builtin_mul_overflow(x, y, &r)) : Value::number(fx * fy);
    if (op == "/") {
      if (fy == 0) error_at(line, "division by zero");
      return Value::number(fx / fy);
    }
    if (op == "//" || op == "%") {
      if (fy == 0) error_at(line, "integer division or modulo by zero");
      if (ints) {
        if (x == INT64_MIN && y == -1) checked(true);
        int64_t q = x / y;
        r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          --q;
          r += y;
        }
        return Value::integer(op == "//" ? q : r);
      }
      double q = std::floor(fx / fy);
      return Value::number(op == "//" ? q : fx - q * fy);
    }
    if (op == "**") {
      if (ints && y >= 0) {
        r = 1;
        for (int64_t k = 0; k < y && k < 64; ++k) checked(__builtin_mul_overflow(r, x, &r));
        return Value::integer(r);
      }
      return Value::number(std::pow(fx, fy));
    }
    return bad();
  }

  bool contains(const Value& container, const Value& item, int line) {
    if (container.is_string()) {
      if (!item.is_string()) error_at(line, "'in <string>' requires a string on the left, not " + item.type_name());
      return container.s.find(item.s) != std::string::npos;
    }
    if (container.is_list()) {
      for (auto& x : *container.list)
        if (equals(x, item)) return true;
      return false;
    }
    if (container.is_dict()) return item.is_string() && container.dict->find(item.s) != nullptr;
    if (container.is_undefined()) return false;
    error_at(line, "argument of type '" + container.type_name() + "' is not iterable");
  }

  Value eval(const Expr& e) {
    switch (e.type) {
      case Expr::Type::Literal: return e.value;
      case Expr::Type::Name: return lookup(e.name);
      case Expr::Type::Attr: return get_attr(eval(*e.a), e.name, e.line);
      case Expr::Type::Index: return get_item(eval(*e.a), eval(*e.b), e.line);
      case Expr::Type::Slice: return slice(eval(*e.a), e);
      case Expr::Type::Call: {
        Value f = eval(*e.a);
        Args a = eval_args(e.args);
        if (f.kind != Value::Kind::Function) {
          std::string what = e.a->type == Expr::Type::Name ? e.a->name : e.a->type == Expr::Type::Attr ? e.a->name : "value";
          if (f.is_undefined()) error_at(e.line, "'" + what + "' is undefined (called as a function)");
          error_at(e.line, "'" + what + "' (a " + f.type_name() + ") is not callable");
        }
        return (*f.fn)(a);
      }
      case Expr::Type::Filter: {
        Value v = eval(*e.a);
        Args a = eval_args(e.args);
        return apply_filter(e.name, v, a, e.line);
      }
      case Expr::Type::Test: {
        Value v;
        if (e.name == "defined" || e.name == "undefined") {
          v = eval(*e.a);
        } else {
          v = eval(*e.a);
        }
        Args a = eval_args(e.args);
        bool r = apply_test(e.name, v, a, e.line);
        return Value::boolean(e.negate ? !r : r);
      }
      case Expr::Type::Unary: {
        Value v = eval(*e.a);
        if (e.name == "not") return Value::boolean(!v.truthy());
        if (!v.is_number()) error_at(e.line, "bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
        if (e.name == "-") {
          if (v.kind == Value::Kind::Float) return Value::number(-v.f);
          const int64_t i = v.kind == Value::Kind::Bool ? int64_t(v.b) : v.i;
          if (i == INT64_MIN) error_at(e.line, "integer overflow in unary '-' (results beyond 64 bits are not supported)");
          return Value::integer(-i);
        }
        return v;
      }
      case Expr::Type::Binary: {
        const std::string& op = e.name;
        if (op == "and") {
          Value l = eval(*e.a);
          return l.truthy() ? eval(*e.b) : l;
        }
        if (op == "or") {
          Value l = eval(*e.a);
          return l.truthy() ? l : eval(*e.b);
        }
        Value l = eval(*e.a), r = eval(*e.b);
        if (op == "==") return Value::boolean(equals(l, r));
        if (op == "!=") return Value::boolean(!equals(l, r));
        if (op == "<" || op == "<=" || op == ">" || op == ">=") {
          if (l.is_undefined() || r.is_undefined()) error_at(e.line, "cannot compare an undefined value");
          int c;
          try {
            c = compare(l, r);
          } catch (const Error&) {
            error_at(e.line, "'" + op + "' not supported between '" + l.type_name() + "' and '" + r.type_name() + "'");
          }
          return Value::boolean(op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0);
        }
        if (op == "in") return Value::boolean(contains(r, l, e.line));
        if (op == "notin") return Value::boolean(!contains(r, l, e.line));
        if (op == "~") return Value::string(l.str() + r.str());
        return arith(op, l, r, e.line);
      }
      case Expr::Type::Cond: {
        if (eval(*e.a).truthy()) return eval(*e.b);
        return e.c ? eval(*e.c) : Value::undefined();
      }
      case Expr::Type::ListLit: {
        List l;
        for (const auto& x : e.items) l.push_back(eval(*x));
        return Value::make_list(std::move(l));
      }
      case Expr::Type::DictLit: {
        Value d = Value::make_dict();
        for (size_t k = 0; k + 1 < e.items.size(); k += 2) {
          Value key = eval(*e.items[k]);
          d.dict->set(key.str(), eval(*e.items[k + 1]));
        }
        return d;
      }
    }
    return Value::undefined();
  }

  static constexpr int kMaxMacroDepth = 200;

  const RenderEnv& env_;
  std::vector<Scope> scopes_;
  int macro_depth_ = 0;
  int64_t iterations_ = 0;
};

std::string render(const Template& tmpl, const RenderEnv& env) {
  Interpreter in(env);
  return in.run(tmpl);
}

}  // namespace sparq::jinja
