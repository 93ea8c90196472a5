// libFuzzer target: opening a .sparq image must either validate or throw sparq::Error; every tensor
// it accepts must lie inside the image.
#include <cstddef>
#include <cstdint>

#include "runtime/core/error.h"
#include "runtime/model_file/sparq_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = sparq::ModelFile::from_bytes({data, size});
    for (const auto& t : f.tensors()) {
      auto d = f.data(t);
      if (d.data() < data || d.data() + d.size() > data + size) __builtin_trap();
    }
    f.verify_checksums();
  } catch (const sparq::Error&) {
  }
  return 0;
}
