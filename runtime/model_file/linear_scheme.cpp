#include "runtime/model_file/linear_scheme.h"

#include "runtime/core/error.h"
#include "runtime/core/json_fields.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

using nlohmann::json;

json linear_scheme_to_json(const LinearScheme& s) {
  json j{{"weight_dtype", dtype_name(s.weight_dtype)},
         {"weight_strategy", s.weight_strategy},
         {"group_size", s.group_size},
         {"weight_zero_point", s.weight_zero_point},
         {"g_idx", s.g_idx},
         {"sparse24", s.sparse24},
         {"bias", s.bias},
         {"input", nullptr}};
  if (s.input)
    j["input"] = {{"type", s.input->is_float ? "float" : "int"},
                  {"num_bits", s.input->num_bits},
                  {"strategy", s.input->strategy},
                  {"dynamic", s.input->dynamic},
                  {"symmetric", s.input->symmetric}};
  return j;
}

LinearScheme linear_scheme_from_json(const json& j, const std::string& module) {
  const std::string owner = "scheme of " + module;
  LinearScheme s;
  auto dt = dtype_from_name(json_string(j, "weight_dtype", owner));
  if (!dt) fail(owner, ": unknown weight_dtype");
  s.weight_dtype = *dt;
  s.weight_strategy = json_string(j, "weight_strategy", owner);
  if (s.weight_strategy != "none" && s.weight_strategy != "tensor" && s.weight_strategy != "channel" &&
      s.weight_strategy != "group")
    fail(owner, ": unknown weight_strategy \"", s.weight_strategy, "\"");
  s.group_size = json_int(j, "group_size", owner);
  s.weight_zero_point = json_bool(j, "weight_zero_point", owner);
  s.g_idx = json_bool(j, "g_idx", owner);
  s.sparse24 = json_bool(j, "sparse24", owner);
  s.bias = json_bool(j, "bias", owner);
  const json& in = json_field(j, "input", owner);
  if (!in.is_null()) {
    ActivationQuant a;
    std::string type = json_string(in, "type", owner + " input");
    if (type != "int" && type != "float") fail(owner, ": input type must be int or float");
    a.is_float = type == "float";
    a.num_bits = static_cast<int>(json_int(in, "num_bits", owner + " input"));
    a.strategy = json_string(in, "strategy", owner + " input");
    a.dynamic = json_bool(in, "dynamic", owner + " input");
    a.symmetric = json_bool(in, "symmetric", owner + " input");
    if (a.num_bits != 8) fail(owner, ": only 8-bit input activations are supported");
    if (a.strategy != "token" && a.strategy != "tensor") fail(owner, ": input strategy must be token or tensor");
    if (a.strategy == "token" && !a.dynamic) fail(owner, ": per-token input scales must be dynamic");
    s.input = a;
  }
  const bool dense = s.weight_dtype == DType::BF16 || s.weight_dtype == DType::F16 || s.weight_dtype == DType::F32;
  if (dense != !s.quantized()) fail(owner, ": weight_dtype ", dtype_name(s.weight_dtype), " does not fit strategy ", s.weight_strategy);
  if (!dense && s.weight_dtype != DType::I8 && s.weight_dtype != DType::F8_E4M3 && s.weight_dtype != DType::I4)
    fail(owner, ": unsupported weight_dtype ", dtype_name(s.weight_dtype));
  if ((s.weight_strategy == "group") != (s.group_size > 0)) fail(owner, ": group_size does not fit the strategy");
  return s;
}

std::string linear_scheme_label(const LinearScheme& s) {
  std::string w;
  switch (s.weight_dtype) {
    case DType::I8: w = "int8"; break;
    case DType::F8_E4M3: w = "fp8"; break;
    case DType::I4: w = "int4"; break;
    default: w = std::string(dtype_name(s.weight_dtype)); break;
  }
  std::string label;
  if (!s.quantized()) {
    label = w;
    for (auto& c : label) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  } else if (!s.input) {
    label = "w" + std::to_string(dtype_bits(s.weight_dtype)) + "a16-" + w;
  } else if (s.input->is_float) {
    label = std::string("fp8-") + (s.input->dynamic ? "dynamic" : "static");
  } else {
    label = std::string("w8a8-int8") + (s.input->dynamic ? "" : "-static");
  }
  if (s.weight_strategy == "group") label += "-g" + std::to_string(s.group_size);
  if (s.sparse24) label = "2:4+" + label;
  return label;
}

std::vector<int64_t> weight_scale_shape(const LinearScheme& s, int64_t out, int64_t in) {
  if (s.weight_strategy == "tensor") return {1};
  if (s.weight_strategy == "channel") return {out, 1};
  if (s.weight_strategy == "group") return {out, (in + s.group_size - 1) / s.group_size};
  return {};
}

bool int8_tiles_eligible(const LinearScheme& s, int64_t in) {
  return s.weight_dtype == DType::I8 && !s.sparse24 && (s.weight_strategy == "channel" || s.weight_strategy == "tensor") &&
         !s.weight_zero_point && !s.g_idx && s.input && !s.input->is_float && s.input->dynamic && s.input->symmetric &&
         in <= kInt8TilesMaxColumns;
}

void validate_linear_tensors(const std::string& module, const LinearScheme& s, int64_t out, int64_t in,
                             const std::function<const TensorEntry*(const std::string&)>& find) {
  auto need = [&](const std::string& suffix, DType dtype, const std::vector<int64_t>& shape, Layout layout) {
    const std::string name = module + "." + suffix;
    const TensorEntry* t = find(name);
    if (!t) fail(module, " (", linear_scheme_label(s), ") needs tensor ", name, ", which is missing");
    if (t->dtype != dtype)
      fail("tensor ", name, " has dtype ", dtype_name(t->dtype), ", its scheme needs ", dtype_name(dtype));
    if (t->shape != shape)
      fail("tensor ", name, " has shape ", shape_string(t->shape), ", expected ", shape_string(shape));
    if (t->layout != layout)
      fail("tensor ", name, " has layout ", layout_name(t->layout), ", expected ", layout_name(layout));
  };
  Layout weight_layout = s.sparse24 ? Layout::Sparse24 : Layout::RowMajor;
  if (const TensorEntry* w = find(module + ".weight"); w && w->layout == Layout::Int8K4Tiles && int8_tiles_eligible(s, in))
    weight_layout = Layout::Int8K4Tiles;
  need("weight", s.weight_dtype, {out, in}, weight_layout);
  if (s.quantized()) {
    const auto scale_shape = weight_scale_shape(s, out, in);
    need("weight_scale", DType::F32, scale_shape, Layout::RowMajor);
    if (s.weight_zero_point) need("weight_zero_point", DType::I8, scale_shape, Layout::RowMajor);
    if (s.g_idx) need("weight_g_idx", DType::I32, {in}, Layout::RowMajor);
  }
  if (s.input && !s.input->dynamic) {
    need("input_scale", DType::F32, {1}, Layout::RowMajor);
    if (!s.input->symmetric) need("input_zero_point", DType::I8, {1}, Layout::RowMajor);
  }
  if (s.bias) {
    const TensorEntry* b = find(module + ".bias");
    if (!b || b->shape != std::vector<int64_t>{out}) fail(module, " needs a bias of shape [", out, "]");
  }
}

}  // namespace sparq
