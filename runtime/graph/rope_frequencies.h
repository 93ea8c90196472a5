// Rotary-embedding inverse frequencies from a model's config, with any frequency scaling applied,
// computed in f32 as Hugging Face does (so angles pos * inv_freq round the same way).
#pragma once
#include <vector>

#include "runtime/model_file/architecture.h"

namespace sparq {

// head_dim / 2 values: theta^(-2i/head_dim), rescaled per band for rope_type "llama3".
std::vector<float> rope_inv_freq(const ModelConfig& cfg);

}  // namespace sparq
