// tokenizer.json decoders: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace.
// Each rewrites the list of token strings, as in Hugging Face's decode_chain.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sparq {

enum class ByteMerge {
  None,          // no byte pieces: each token's text is final
  FallbackRuns,  // ByteFallback: a run of <0xXX> pieces decodes as a whole; an invalid run becomes
                 // one U+FFFD per piece, so a later byte can change every earlier piece of the run
  AllBytes,      // ByteLevel: all pieces' bytes are joined and decoded as UTF-8 at once
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
  // How the chain turns bytes into text, which decides how far back a later token can change it.
  virtual ByteMerge byte_merge() const { return ByteMerge::None; }
};

// The byte a byte-fallback piece "<0xXX>" stands for, or -1 for any other piece.
int byte_fallback_value(std::string_view piece);

// Returns nullptr for a null decoder (tokens are then joined with spaces, as HF does).
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec);

}  // namespace sparq
