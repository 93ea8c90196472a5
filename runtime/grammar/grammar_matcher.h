// Where generation stands in a grammar, and which tokens may come next.
//
// A state is the set of parse stacks still alive after the text so far (top-down, as llama.cpp's
// grammar sampler; every stack's top is a character class, an empty stack means the text so far is
// a whole sentence) plus a partly read UTF-8 character. States are interned and their transitions
// on each byte cached, so after the first few tokens a mask is a walk of the vocabulary trie doing
// one table lookup per node, pruning every subtree whose prefix the grammar refuses.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/grammar/grammar.h"
#include "runtime/grammar/grammar_vocabulary.h"

namespace sparq {

class GrammarMatcher {
 public:
  GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocabulary> vocabulary);

  // Bit id of `mask` (id / 32, id % 32) set for each token the grammar allows next; sized to the vocabulary.
  void allowed_tokens(std::vector<uint32_t>& mask);
  // The text so far is a complete sentence of the grammar (an end-of-sequence token may come now).
  bool complete() const;
  // Some character may still follow.
  bool can_continue() const;
  // Moves past the token's bytes; false (nothing changes) when the grammar refuses them.
  bool accept_token(TokenId id);
  bool accept_bytes(std::string_view bytes);
  // Whether the whole of `text` is a sentence of the grammar, from the start (tests, validation).
  static bool matches(const Grammar& grammar, std::string_view text);

  size_t states() const { return states_.size(); }
  size_t cached_masks() const { return masks_.size(); }

 private:
  using Stack = std::vector<int32_t>;  // positions in Grammar::code; the back is the top
  struct State {
    std::vector<Stack> stacks;
    char32_t partial = 0;  // bits of a UTF-8 character being read
    int remaining = 0;     // its continuation bytes still to come
    bool accepting = false, live = false;  // has an empty stack / a stack waiting for a character
    std::unique_ptr<int32_t[]> next;       // per byte: the next state, kDead, or kUnknown
  };
  static constexpr int32_t kDead = -1, kUnknown = -2;

  void expand(Stack stack, std::vector<Stack>& out, int depth = 0) const;
  int32_t intern(std::vector<Stack> stacks, char32_t partial, int remaining);
  int32_t advance(int32_t state, char32_t c);
  int32_t step(int32_t state, uint8_t byte);
  int32_t compute_step(int32_t state, uint8_t byte);
  int32_t partial_state(int32_t state, char32_t bits, int remaining, char32_t least);
  void forget_states_but_current();

  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const GrammarVocabulary> vocabulary_;
  std::vector<std::unique_ptr<State>> states_;
  std::unordered_map<std::string, int32_t> index_;
  // Masks of states seen before: inside a JSON string or a [a-z]* run every character leads back
  // to the same state, so after the first token there the mask is a copy.
  std::unordered_map<int32_t, std::vector<uint32_t>> masks_;
  int32_t current_ = 0;
};

}  // namespace sparq
