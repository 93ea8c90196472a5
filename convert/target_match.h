// compressed-tensors "targets"/"ignore" entries: a class name ("Linear"), an exact module path, or
// "re:<pattern>" matched with Python's re.match semantics (anchored at the start only).
#pragma once
#include <string>
#include <vector>

namespace sparq {

struct ModuleRef {
  std::string name;        // "model.layers.0.mlp.down_proj"
  std::string class_name;  // "Linear", "Embedding", "RMSNorm"
};

enum class MatchKind { None, ClassName, Regex, ExactName };

// The most specific way any of `targets` matches (exact name > regex > class name).
MatchKind match_targets(const ModuleRef& m, const std::vector<std::string>& targets);

// True when the pattern (without "re:") matches at the start of `text`; throws on a bad pattern.
bool regex_match_prefix(const std::string& pattern, const std::string& text);

}  // namespace sparq
