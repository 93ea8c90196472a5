// Added tokens (special and not): matched verbatim in the text before the model sees it,
// leftmost-longest, as Hugging Face's AddedVocabulary does.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sparq {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool normalized = false;  // matched on the normalized text rather than the raw text
  bool lstrip = false;      // swallow whitespace on the left
  bool rstrip = false;      // swallow whitespace on the right
  bool single_word = false; // only match as a whole word
};

// One piece of the input: either a matched added token (id >= 0) or plain text (id < 0).
struct TextSegment {
  std::string_view text;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  bool empty() const { return tokens_.empty(); }
  // Splits text into segments; plain segments are never empty.
  void split(std::string_view text, std::vector<TextSegment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;
    int32_t token = -1;  // index into tokens_ of the token that ends here
  };
  // Longest token starting at pos; returns its index or -1, and the end position.
  int32_t longest_at(std::string_view text, size_t pos, size_t& end) const;
  std::vector<AddedToken> tokens_;
  std::vector<Node> trie_;
  bool first_byte_[256] = {};
};

}  // namespace sparq
