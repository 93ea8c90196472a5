// The compressed-tensors `quantization_config` (or the older `compression_config`) of config.json.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "convert/target_match.h"

namespace sparq {

struct QuantArgs {
  int num_bits = 8;
  std::string type = "int";  // "int" or "float"
  bool symmetric = true;
  std::string strategy;      // tensor, channel, group, block, token, tensor_group, attn_head
  int64_t group_size = 0;
  std::string dynamic;       // "true", "false", "local"
  std::string actorder;      // "", "group", "weight", "static", ...
  bool is_dynamic() const { return dynamic == "true"; }
};

struct QuantGroup {
  std::string name;
  std::vector<std::string> targets;
  std::optional<QuantArgs> weights, input_activations, output_activations;
  std::string format;  // per-group format ("mixed-precision" configs), else empty
};

struct SparsityConfig {
  std::string format;     // "dense", "sparse-24-bitmask", "sparse-bitmask", ...
  std::string structure;  // "2:4", "unstructured", ...
  std::vector<std::string> targets, ignore;
};

struct CompressionConfig {
  bool quantized = false;  // has config_groups
  std::string format;      // global format
  std::string status;      // "compressed", "frozen", ...
  std::vector<QuantGroup> groups;
  std::vector<std::string> ignore;
  std::optional<QuantArgs> kv_cache;
  std::optional<SparsityConfig> sparsity;
  nlohmann::json raw;  // the block as found, recorded in the output
};

// Parses the block from config.json; an absent block means a dense checkpoint. Throws on anything
// malformed or on features sparq cannot run (transforms, unknown quant_method).
CompressionConfig parse_compression_config(const nlohmann::json& config);

// The group that quantizes a module, or nullptr when the module is ignored or not targeted.
const QuantGroup* find_quant_group(const CompressionConfig& c, const ModuleRef& m);
// True when the sparsity config targets the module (and does not ignore it).
bool sparsity_targets(const CompressionConfig& c, const ModuleRef& m);
// The format that applies to a group (its own, or the global one).
std::string group_format(const CompressionConfig& c, const QuantGroup& g);

}  // namespace sparq
