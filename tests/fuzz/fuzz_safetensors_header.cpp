// libFuzzer target: the safetensors header parser must reject any byte string without crashing or
// reading past the buffer it was given.
#include <cstddef>
#include <cstdint>

#include "convert/safetensors.h"
#include "runtime/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto h = sparq::parse_safetensors_header({data, size}, size);
    for (const auto& t : h.tensors)
      if (t.end > size || t.begin > t.end) __builtin_trap();  // validated ranges must lie in the file
  } catch (const sparq::Error&) {
  }
  return 0;
}
