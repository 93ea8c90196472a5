// A tensor's bytes and what they hold: the one way ops and backends see weights, whether the bytes
// lie in a model file's mmap or (in tests) in memory the caller owns.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/model_file/tensor_layout.h"

namespace sparq {

struct TensorView {
  std::string name;  // for messages
  const uint8_t* data = nullptr;
  uint64_t bytes = 0;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // logical shape, e.g. [out, in] for a weight whatever its layout
  Layout layout = Layout::RowMajor;
  bool mapped = false;  // the bytes are a model file's mmap: their pages may be released after a copy

  bool present() const { return data != nullptr; }
  std::span<const uint8_t> span() const { return {data, static_cast<size_t>(bytes)}; }
  int64_t elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Drops a mapped view's pages from the resident set (they stay in the page cache); nothing for
// memory that is not a mapping.
void release_view_pages(const TensorView& view);

// The values of a small F32/BF16/F16 tensor (scales, biases, norms) as f32; throws naming the
// tensor for another dtype.
std::vector<float> view_floats(const TensorView& view);

}  // namespace sparq
