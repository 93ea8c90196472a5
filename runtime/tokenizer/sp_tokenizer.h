// The tokenizer.model implementation: SentencePiece (libsentencepiece) for the model, plus the
// Hugging Face conventions around it: control and added tokens are matched verbatim in the text
// first, <bos>/<eos> are added per tokenizer_config.json (add_bos_token / add_eos_token).
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>

#include "runtime/tokenizer/tokenizer.h"

namespace sparq {

// model_proto: the bytes of tokenizer.model. config: tokenizer_config.json (or null).
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(std::string_view model_proto,
                                                        const nlohmann::json& config = nullptr);

}  // namespace sparq
