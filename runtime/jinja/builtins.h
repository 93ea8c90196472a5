// Filters, tests and methods of str/dict/list available to chat templates.
#pragma once
#include <string>

#include "runtime/jinja/value.h"

namespace sparq::jinja {

class Interpreter;

// Code-point aware string helpers (Python str semantics on UTF-8).
size_t py_len(const std::string& s);
std::string py_strip(const std::string& s, bool left, bool right, const Value& chars);

// Applies filter `name`; `call_test` evaluates a test by name for select/reject.
Value apply_filter(const std::string& name, const Value& v, Args& args, int line);
bool apply_test(const std::string& name, const Value& v, Args& args, int line);
// obj.name(args) for str, dict and list methods; returns undefined when `name` is not a method.
bool call_method(const Value& obj, const std::string& name, Args& args, int line, Value& out);
bool is_method_name(const Value& obj, const std::string& name);
// Python iteration: list items, dict keys, string characters.
List iterate(const Value& v, int line);

}  // namespace sparq::jinja
