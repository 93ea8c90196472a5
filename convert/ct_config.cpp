#include "convert/ct_config.h"

#include "runtime/core/error.h"
#include "runtime/core/json_fields.h"

namespace sparq {

using nlohmann::json;

namespace {

std::vector<std::string> string_list(const json& obj, const char* key, const std::string& owner) {
  std::vector<std::string> out;
  if (!obj.contains(key) || obj[key].is_null()) return out;
  const json& v = obj[key];
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) fail(owner, ": \"", key, "\" must be a list of strings");
  for (const auto& e : v) {
    if (!e.is_string()) fail(owner, ": \"", key, "\" must be a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::optional<QuantArgs> parse_args(const json& g, const char* key, const std::string& owner) {
  if (!g.contains(key) || g[key].is_null()) return std::nullopt;
  const json& a = g[key];
  const std::string who = owner + "." + key;
  if (!a.is_object()) fail(who, " must be an object or null");
  QuantArgs q;
  q.num_bits = static_cast<int>(json_int_or(a, "num_bits", 8, who));
  q.type = json_string_or(a, "type", "int", who);
  if (q.type != "int" && q.type != "float") fail(who, ": type \"", q.type, "\" is not int or float");
  q.symmetric = json_bool_or(a, "symmetric", true, who);
  q.group_size = json_int_or(a, "group_size", 0, who);
  q.strategy = json_string_or(a, "strategy", "", who);
  if (q.strategy.empty())  // inferred as compressed-tensors does
    q.strategy = q.group_size == 0 ? "tensor" : q.group_size < 0 ? "channel" : "group";
  if (q.group_size < 0) q.group_size = 0;
  if (a.contains("dynamic") && !a["dynamic"].is_null()) {
    const json& d = a["dynamic"];
    if (d.is_boolean()) q.dynamic = d.get<bool>() ? "true" : "false";
    else if (d.is_string()) q.dynamic = d.get<std::string>();
    else fail(who, ": dynamic must be a boolean or a string");
  } else {
    q.dynamic = "false";
  }
  if (a.contains("actorder") && a["actorder"].is_string()) q.actorder = a["actorder"].get<std::string>();
  if (a.contains("actorder") && a["actorder"].is_boolean() && a["actorder"].get<bool>()) q.actorder = "group";
  return q;
}

}  // namespace

CompressionConfig parse_compression_config(const json& config) {
  CompressionConfig c;
  const json* block = nullptr;
  if (config.contains("quantization_config") && !config["quantization_config"].is_null())
    block = &config["quantization_config"];
  else if (config.contains("compression_config") && !config["compression_config"].is_null())
    block = &config["compression_config"];
  if (!block) return c;
  const std::string owner = "quantization_config";
  if (!block->is_object()) fail(owner, " must be an object");
  c.raw = *block;
  const std::string method = json_string_or(*block, "quant_method", "compressed-tensors", owner);
  if (method != "compressed-tensors" && method != "sparseml")
    fail("quant_method \"", method, "\" is not supported (only compressed-tensors checkpoints)");
  if (block->contains("transform_config") && !(*block)["transform_config"].is_null() &&
      !(*block)["transform_config"].empty())
    fail("quantization_config.transform_config (rotations) is not supported");
  c.format = json_string_or(*block, "format", "dense", owner);
  c.status = json_string_or(*block, "quantization_status", "compressed", owner);
  c.ignore = string_list(*block, "ignore", owner);

  if (block->contains("config_groups") && !(*block)["config_groups"].is_null()) {
    const json& groups = (*block)["config_groups"];
    if (!groups.is_object()) fail(owner, ".config_groups must be an object");
    for (auto it = groups.begin(); it != groups.end(); ++it) {
      const std::string gname = owner + ".config_groups." + it.key();
      if (!it->is_object()) fail(gname, " must be an object");
      QuantGroup g;
      g.name = it.key();
      g.targets = string_list(*it, "targets", gname);
      if (g.targets.empty()) fail(gname, " has no targets");
      g.weights = parse_args(*it, "weights", gname);
      g.input_activations = parse_args(*it, "input_activations", gname);
      g.output_activations = parse_args(*it, "output_activations", gname);
      g.format = json_string_or(*it, "format", "", gname);
      c.groups.push_back(std::move(g));
    }
  }
  c.quantized = !c.groups.empty();
  c.kv_cache = parse_args(*block, "kv_cache_scheme", owner);

  // Newer compressed-tensors always writes "sparsity_config": {}, meaning none.
  if (block->contains("sparsity_config") && !(*block)["sparsity_config"].is_null() &&
      !(*block)["sparsity_config"].empty()) {
    const json& s = (*block)["sparsity_config"];
    const std::string who = owner + ".sparsity_config";
    if (!s.is_object()) fail(who, " must be an object");
    SparsityConfig sc;
    sc.format = json_string_or(s, "format", "dense", who);
    sc.structure = json_string_or(s, "sparsity_structure", "unstructured", who);
    sc.targets = string_list(s, "targets", who);
    sc.ignore = string_list(s, "ignore", who);
    c.sparsity = sc;
  }
  return c;
}

const QuantGroup* find_quant_group(const CompressionConfig& c, const ModuleRef& m) {
  if (match_targets(m, c.ignore) != MatchKind::None) return nullptr;
  const QuantGroup* best = nullptr;
  MatchKind best_kind = MatchKind::None;
  for (const auto& g : c.groups) {
    MatchKind k = match_targets(m, g.targets);
    if (k > best_kind) {
      best_kind = k;
      best = &g;
    }
  }
  return best;
}

bool sparsity_targets(const CompressionConfig& c, const ModuleRef& m) {
  if (!c.sparsity) return false;
  if (match_targets(m, c.sparsity->ignore) != MatchKind::None) return false;
  // Pydantic leftovers can leave targets empty; the sparse structure then applies to every Linear.
  if (c.sparsity->targets.empty()) return m.class_name == "Linear";
  return match_targets(m, c.sparsity->targets) != MatchKind::None;
}

std::string group_format(const CompressionConfig& c, const QuantGroup& g) {
  return g.format.empty() ? c.format : g.format;
}

}  // namespace sparq
