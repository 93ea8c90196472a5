// How one Linear layer's weight is stored and how its input is quantized at run time,
// recorded per module in the .sparq metadata ("linears").
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"

namespace sparq {

struct TensorEntry;

// Dynamic or static quantization of a Linear's input activations (vLLM semantics).
struct ActivationQuant {
  bool is_float = false;     // FP8 E4M3 when true, INT8 otherwise
  int num_bits = 8;
  std::string strategy;      // "token" or "tensor"
  bool dynamic = true;       // scales from the current activations; static ones are P.input_scale
  bool symmetric = true;     // asymmetric static inputs carry P.input_zero_point
};

struct LinearScheme {
  DType weight_dtype = DType::BF16;  // BF16/F16/F32 (dense), I8, F8_E4M3, I4
  std::string weight_strategy = "none";  // "none" (unquantized), "tensor", "channel", "group"
  int64_t group_size = 0;
  bool weight_zero_point = false;  // P.weight_zero_point, I8, shaped like the scale
  bool g_idx = false;              // P.weight_g_idx, I32 [in]: group of each input column
  bool sparse24 = false;           // P.weight stored in the sparse24 layout
  bool bias = false;               // P.bias [out]
  std::optional<ActivationQuant> input;

  bool quantized() const { return weight_strategy != "none"; }
};

nlohmann::json linear_scheme_to_json(const LinearScheme& s);
LinearScheme linear_scheme_from_json(const nlohmann::json& j, const std::string& module);

// Whether the weight may be stored as int8_k4_tiles: INT8 W8A8 with one scale per output row (or
// tensor), symmetric, dense, and dynamically quantized INT8 inputs - what VNNI GEMMs run.
bool int8_tiles_eligible(const LinearScheme& s, int64_t in);

// Short label for tables: "w8a8-int8", "fp8-dynamic", "2:4+fp8-dynamic", "w4a16-g128", "bf16", ...
std::string linear_scheme_label(const LinearScheme& s);

// Scale shape for a weight [out, in] under the scheme's strategy.
std::vector<int64_t> weight_scale_shape(const LinearScheme& s, int64_t out, int64_t in);

// Checks that the tensors a scheme needs exist with the right dtype, layout and shape.
void validate_linear_tensors(const std::string& module, const LinearScheme& s, int64_t out, int64_t in,
                             const std::function<const TensorEntry*(const std::string&)>& find);

}  // namespace sparq
