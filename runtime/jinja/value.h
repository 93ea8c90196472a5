// Values of the chat-template interpreter: Python/Jinja semantics (truthiness, ==, str(), repr)
// for undefined, none, bool, int, float, str, list, dict (insertion-ordered), callables.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sparq::jinja {

struct Value;
using List = std::vector<Value>;
struct Dict;
struct Args;
using Function = std::function<Value(Args&)>;

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Function };
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                  // String; for Undefined: the name that was looked up
  std::shared_ptr<List> list;     // List (shared: Python reference semantics)
  std::shared_ptr<Dict> dict;     // Dict and namespace()
  std::shared_ptr<Function> fn;   // builtins and macros

  static Value undefined(std::string name = {}) {
    Value v;
    v.s = std::move(name);
    return v;
  }
  static Value none() { return make(Kind::None); }
  static Value boolean(bool x) {
    Value v = make(Kind::Bool);
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v = make(Kind::Int);
    v.i = x;
    return v;
  }
  static Value number(double x) {
    Value v = make(Kind::Float);
    v.f = x;
    return v;
  }
  // No string a template makes may exceed this: a chat prompt is far smaller, and a template that
  // multiplies or concatenates its way past it would otherwise exhaust memory.
  static constexpr size_t kMaxStringBytes = size_t{64} << 20;
  [[noreturn]] static void too_long(size_t bytes);
  static Value string(std::string x) {
    if (x.size() > kMaxStringBytes) too_long(x.size());
    Value v = make(Kind::String);
    v.s = std::move(x);
    return v;
  }
  static Value make_list(List items = {});
  static Value make_dict();
  static Value function(Function f) {
    Value v = make(Kind::Function);
    v.fn = std::make_shared<Function>(std::move(f));
    return v;
  }
  static Value from_json(const nlohmann::json& j);
  static Value from_json(const nlohmann::ordered_json& j);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_list() const { return kind == Kind::List; }
  bool is_dict() const { return kind == Kind::Dict; }
  double as_double() const { return kind == Kind::Float ? f : kind == Kind::Bool ? (b ? 1 : 0) : double(i); }

  bool truthy() const;
  std::string str() const;   // Python str(): what {{ }} prints
  std::string repr() const;  // Python repr()
  nlohmann::json to_json() const;
  std::string type_name() const;

 private:
  static Value make(Kind k) {
    Value v;
    v.kind = k;
    return v;
  }
};

struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;
  const Value* find(std::string_view key) const {
    for (auto& kv : items)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
  void set(const std::string& key, Value v) {
    for (auto& kv : items)
      if (kv.first == key) {
        kv.second = std::move(v);
        return;
      }
    items.emplace_back(key, std::move(v));
  }
};

// Arguments of a call: positional then keyword.
struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // Positional argument i, else keyword `name`, else def. Returned by value: `def` is often a
  // temporary, and callers keep the result in a local.
  Value get(size_t i, std::string_view name, const Value& def) const {
    if (i < pos.size()) return pos[i];
    for (auto& kv : kw)
      if (kv.first == name) return kv.second;
    return def;
  }
};

bool equals(const Value& a, const Value& b);
// <0, 0, >0; throws for values Python cannot order.
int compare(const Value& a, const Value& b);

// Python float repr: 1.0, 0.1, 1e-07, 1e+16.
std::string float_repr(double x);
// Python json.dumps(x, ensure_ascii=False, indent=indent, separators=..., sort_keys=...).
// indent < 0: single line with ", " and ": ".
std::string to_json_text(const Value& v, int indent, bool sort_keys, const std::string& item_sep = "",
                         const std::string& key_sep = "");

}  // namespace sparq::jinja
