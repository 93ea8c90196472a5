// A tokenizer's vocabulary as a grammar sees it: each token's bytes in decoded text (special
// tokens have none: a grammar never allows them), and a trie over those bytes so a token mask is
// one walk that drops a whole subtree as soon as its prefix is refused. Built once per tokenizer
// and shared by every request.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/tokenizer/tokenizer.h"

namespace sparq {

class GrammarVocabulary {
 public:
  explicit GrammarVocabulary(const Tokenizer& tokenizer);
  // From the bytes of each id directly (tests); an empty string: never allowed.
  explicit GrammarVocabulary(std::vector<std::string> token_bytes);

  size_t size() const { return bytes_.size(); }
  const std::string& bytes(TokenId id) const { return bytes_[static_cast<size_t>(id)]; }

  struct Node {
    uint32_t first_child = 0, children = 0;  // children are nodes[first_child, first_child + children)
    uint32_t first_token = 0, tokens = 0;    // ids ending here: token_order()[first_token, + tokens)
    uint8_t byte = 0;                        // the byte leading here from the parent
  };
  const std::vector<Node>& nodes() const { return nodes_; }  // nodes_[0] is the root (no byte)
  const std::vector<TokenId>& token_order() const { return order_; }

 private:
  void build_trie();
  void add_children(uint32_t node, size_t begin, size_t end, size_t depth);

  std::vector<std::string> bytes_;
  std::vector<Node> nodes_;
  std::vector<TokenId> order_;  // non-empty tokens sorted by their bytes
};

}  // namespace sparq
