// What a model file says about generation: the ids that end a reply and the context length, as
// the defaults an Engine starts from.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/engine/engine.h"

namespace sparq {

class ModelFile;

// End-of-sequence and end-of-turn ids, sorted and unique: eos_token_id of generation_config.json
// (else config.json; an int or a list), plus the tokenizer's end-of-turn tokens when it has them
// (Gemma <end_of_turn>, Llama 3 <|eot_id|> / <|eom_id|>, ChatML <|im_end|>). tokenizer may be null.
std::vector<int32_t> default_stop_token_ids(const ModelFile& file, const Tokenizer* tokenizer);

// EngineOptions with the stop ids above and the model's context length (model_context_length of
// runtime/model_file/architecture.h) filled in.
EngineOptions engine_options_for(const ModelFile& file, const Tokenizer* tokenizer);

}  // namespace sparq
