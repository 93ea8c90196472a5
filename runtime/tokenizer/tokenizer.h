// One tokenizer interface, two implementations chosen from what the model ships:
//   - tokenizer.json (Hugging Face `tokenizers`): BPE, byte-level (Llama 3, GPT-2, Qwen) or
//     SentencePiece-style with byte fallback (Gemma, Llama 2, Mistral), see hf_tokenizer.h;
//   - tokenizer.model (SentencePiece protobuf) through libsentencepiece, see sp_tokenizer.h.
// Both match Hugging Face token for token: text spelling an added or special token becomes that
// token (before normalization), and add_special applies the post-processor (e.g. <bos>).
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sparq {

using TokenId = int32_t;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // add_special: apply the post-processor (prepend <bos> / <|begin_of_text|>, ...), as
  // add_special_tokens=True in Hugging Face. parse_special=false treats text that spells a special
  // token as plain text (for untrusted user input); Hugging Face's default is true.
  // Invalid UTF-8 in text is replaced by U+FFFD first.
  virtual std::vector<TokenId> encode(std::string_view text, bool add_special = false,
                                      bool parse_special = true) const = 0;

  // Hugging Face's decode: invalid byte sequences come out as U+FFFD.
  virtual std::string decode(std::span<const TokenId> ids, bool skip_special = false) const = 0;

  // How many of the last ids a following id can still make decode differently; streaming
  // detokenization holds them back. Hugging Face's ByteFallback decodes a run of byte pieces as a
  // whole and turns every piece of an invalid run into U+FFFD, so <0x47> reads "G" until a later
  // <0x94> makes the run "\uFFFD\uFFFD" (special ids skipped by decode do not end a run).
  // An incomplete UTF-8 character at the end is left to the caller to detect (it decodes to U+FFFD).
  virtual size_t unsettled_tail(std::span<const TokenId> ids, bool skip_special) const {
    (void)ids, (void)skip_special;
    return 0;
  }

  // Number of ids (highest id + 1).
  virtual size_t vocab_size() const = 0;
  // The token's string as stored in the vocabulary ("ĠHello", "▁Hello", "<0x0A>", "<bos>"); empty
  // for an unknown id.
  virtual std::string id_to_token(TokenId id) const = 0;
  virtual std::optional<TokenId> token_to_id(std::string_view token) const = 0;
  // True for special (control) tokens: those skipped by decode(skip_special=true).
  virtual bool is_special(TokenId id) const = 0;
  // "tokenizer.json" or "tokenizer.model".
  virtual std::string_view kind() const = 0;
};

}  // namespace sparq
