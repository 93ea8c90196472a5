// Streaming detokenization: feed ids one at a time, get text as soon as it is final. Tokens whose
// text a later token can still change are held back (Tokenizer::unsettled_tail: a byte-fallback run,
// whose pieces all turn into U+FFFD if a later byte makes it invalid; an incomplete UTF-8 character
// of byte-level pieces), so no half character and no text that would later change is ever emitted.
// Emitted tokens stay as context, so the decoder's leading-space rules (Metaspace / Strip) apply as
// in a whole-sequence decode: concatenating every push() and finish() equals decode(all ids).
#pragma once
#include <string>
#include <vector>

#include "runtime/tokenizer/tokenizer.h"

namespace sparq {

class StreamDetokenizer {
 public:
  explicit StreamDetokenizer(const Tokenizer& tok, bool skip_special = true) : tok_(&tok), skip_special_(skip_special) {}

  // Returns the new final text (often empty while a character is incomplete).
  std::string push(TokenId id);
  // Returns whatever is still held (an incomplete character comes out as U+FFFD) and resets.
  std::string finish();
  void reset();

 private:
  std::string pending_text() const;
  const Tokenizer* tok_;
  bool skip_special_;
  std::vector<TokenId> ids_;  // context tokens followed by not-yet-emitted tokens
  size_t prefix_count_ = 0;   // how many of ids_ are context (already emitted)
  std::string prefix_text_;   // decode of the context tokens
};

}  // namespace sparq
