// The syntax tree of a parsed template: expressions and statements. Plain structs; the
// interpreter (interpreter.cpp) walks them.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "runtime/jinja/value.h"

namespace sparq::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct CallArgs {
  std::vector<ExprPtr> pos;
  std::vector<std::pair<std::string, ExprPtr>> kw;
};

struct Expr {
  enum class Type {
    Literal,    // value
    Name,       // name
    Attr,       // a.name
    Index,      // a[b]
    Slice,      // a[b:c:d] (missing parts are null)
    Call,       // a(args)
    Filter,     // a | name(args)
    Test,       // a is [not] name(args)
    Unary,      // op a        (op: "not", "-", "+")
    Binary,     // a op b      (op: or and == != < <= > >= in notin + - * / // % ** ~)
    Cond,       // b if a else c
    ListLit,    // [items]
    DictLit,    // {k: v}      (items as pairs: items[2k] key, items[2k+1] value)
  };
  Type type;
  int line = 0;
  std::string name;  // Name, Attr, Filter, Test, operator for Unary/Binary
  bool negate = false;  // Test: "is not"
  Value value;       // Literal
  ExprPtr a, b, c, d;
  std::vector<ExprPtr> items;
  CallArgs args;  // Call, Filter, Test
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Type {
    Text,      // text
    Output,    // {{ expr }}
    If,        // branches: (cond, body)...; else_body
    For,       // targets in iter [if filter] body [else else_body]
    Set,       // targets = expr, or target.attr = expr (attr non-empty)
    SetBlock,  // {% set x %}body{% endset %}
    Macro,     // {% macro name(params) %}body{% endmacro %}
    Break,
    Continue,
    FilterBlock,  // {% filter name(args) %}body{% endfilter %}
    Scope,        // {% generation %}, {% with %}: body in a new scope (with: targets = exprs)
  };
  Type type;
  int line = 0;
  std::string text;                 // Text
  ExprPtr expr;                     // Output, For iter, Set value, FilterBlock (as a Filter expr with null a)
  ExprPtr cond;                     // For filter
  std::vector<std::string> targets; // For / Set / SetBlock / Macro name in targets[0] / With names
  std::string attr;                 // Set ns.attr
  std::vector<std::pair<ExprPtr, Body>> branches;  // If
  Body body, else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // Macro params (default may be null); With values
};

struct Template {
  Body body;
};

}  // namespace sparq::jinja
