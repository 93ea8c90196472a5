// Renders a parsed template with Jinja semantics as transformers configures them (sandboxed,
// trim_blocks, lstrip_blocks, loopcontrols; raise_exception, tojson and strftime_now globals).
#pragma once
#include <cstdint>
#include <ctime>
#include <string>

#include "runtime/jinja/ast.h"
#include "runtime/jinja/value.h"

namespace sparq::jinja {

struct RenderEnv {
  Value globals = Value::make_dict();  // variables visible to the template
  std::time_t now = 0;                 // strftime_now's clock; 0: the real time
  int64_t max_loop_iterations = 5'000'000;  // in total, over all loops
};

std::string render(const Template& tmpl, const RenderEnv& env);

}  // namespace sparq::jinja
