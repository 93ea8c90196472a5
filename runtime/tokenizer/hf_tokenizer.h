// The tokenizer.json implementation: added tokens -> normalizer -> pre-tokenizer -> BPE ->
// post-processor, and the decoder chain for decode().
#pragma once
#include <memory>
#include <string_view>

#include "runtime/tokenizer/tokenizer.h"

namespace sparq {

// Parses tokenizer.json bytes; throws sparq::Error naming what is missing or unsupported.
std::unique_ptr<Tokenizer> load_hf_tokenizer(std::string_view tokenizer_json);

}  // namespace sparq
