#include "runtime/model_file/tensor_view.h"

#include <cstring>

#include "runtime/core/error.h"
#include "runtime/core/float_formats.h"
#include "runtime/core/mapped_file.h"

namespace sparq {

void release_view_pages(const TensorView& view) {
  if (view.mapped && view.data) release_mapped_range(view.data, view.bytes);
}

std::vector<float> view_floats(const TensorView& v) {
  std::vector<float> out;
  switch (v.dtype) {
    case DType::F32:
      out.resize(v.bytes / 4);
      std::memcpy(out.data(), v.data, out.size() * 4);
      break;
    case DType::BF16:
    case DType::F16:
      out.resize(v.bytes / 2);
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t h;
        std::memcpy(&h, v.data + 2 * i, 2);
        out[i] = v.dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
      }
      break;
    default:
      fail("tensor ", v.name, " has dtype ", dtype_name(v.dtype), "; expected F32, BF16 or F16");
  }
  return out;
}

}  // namespace sparq
