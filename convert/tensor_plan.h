// Decides, for every tensor of a checkpoint, what goes into the .sparq file and how: which scheme
// each Linear has (validated against quantization_config), its layout, and the streaming producer
// and the verifier of its bytes.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "convert/checkpoint.h"
#include "convert/ct_config.h"
#include "runtime/model_file/architecture.h"
#include "runtime/model_file/tensor_layout.h"

namespace sparq {

using ByteSink = std::function<void(std::span<const uint8_t>)>;

struct PlannedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  Layout layout;
  uint64_t bytes;
  std::vector<const SourceTensor*> sources;
  // Streams the output bytes in chunks; peak memory is one chunk, not one tensor.
  std::function<void(const ByteSink&)> produce;
  // Checks written bytes against the source through independent decoders; throws on a mismatch.
  std::function<void(std::span<const uint8_t>)> verify;
};

struct ConversionPlan {
  ModelConfig model;
  CompressionConfig compression;
  std::vector<PlannedTensor> tensors;
  nlohmann::json linears = nlohmann::json::object();  // module -> linear scheme
  std::string scheme_summary;                         // e.g. "w8a8-int8 (182 linears), bf16 (1)"
  std::vector<std::string> notes;                     // what the user should know (skipped tensors, ...)
};

// int8_head: store an unquantized lm_head (or the tied embeddings as lm_head) as INT8 W8A8.
ConversionPlan plan_conversion(const HfCheckpoint& ckpt, bool int8_head = false);

}  // namespace sparq
