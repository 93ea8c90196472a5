// libFuzzer target for the model-file reader. An input starting with '{' is a self-test reference
// block (runtime/model_file/reference_block.h): it must parse or throw sparq::Error, and what parses
// must survive a round trip unchanged. Anything else is a .sparq image: opening it must either
// validate or throw sparq::Error, every tensor it accepts must lie inside the image, and an
// embedded reference block is validated like the rest.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/core/error.h"
#include "runtime/model_file/reference_block.h"
#include "runtime/model_file/sparq_reader.h"

namespace {

constexpr int64_t kVocab = 1000;  // the Gemma fixtures' vocabulary

void fuzz_reference_block(std::string_view text) {
  try {
    const sparq::ReferenceBlock b = sparq::ReferenceBlock::parse(text, kVocab, "fuzz");
    const std::string once = b.to_json();
    if (sparq::ReferenceBlock::parse(once, kVocab, "round trip").to_json() != once) __builtin_trap();
  } catch (const sparq::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 0 && data[0] == '{') {
    fuzz_reference_block({reinterpret_cast<const char*>(data), size});
    return 0;
  }
  try {
    auto f = sparq::ModelFile::from_bytes({data, size});
    for (const auto& t : f.tensors()) {
      auto d = f.data(t);
      if (d.data() < data || d.data() + d.size() > data + size) __builtin_trap();
    }
    f.verify_checksums();
    sparq::read_reference_block(f);
  } catch (const sparq::Error&) {
  }
  return 0;
}
