// Parses the lexed chunks of a template into statements and expressions. Supports the subset of
// Jinja that chat templates use; anything else fails with an error naming the construct and line.
#pragma once
#include <string>

#include "runtime/jinja/ast.h"

namespace sparq::jinja {

Template parse(const std::string& source);

}  // namespace sparq::jinja
