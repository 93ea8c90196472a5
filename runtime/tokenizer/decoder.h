// tokenizer.json decoders: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace.
// Each rewrites the list of token strings, as in Hugging Face's decode_chain.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sparq {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Returns nullptr for a null decoder (tokens are then joined with spaces, as HF does).
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec);

}  // namespace sparq
