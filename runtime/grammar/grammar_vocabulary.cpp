#include "runtime/grammar/grammar_vocabulary.h"

#include <algorithm>

#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/decoder.h"

namespace sparq {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// What a token adds to decoded text: decode(ref, id) minus decode(ref), so a leading space that
// decode strips at the start of a text is kept. A token that is part of a UTF-8 character decodes
// to U+FFFD alone; its raw bytes come from its piece (<0xXX> byte fallback, or byte-level mapping).
std::string token_text(const Tokenizer& t, TokenId id, TokenId ref, const std::string& ref_text) {
  const std::string piece = t.id_to_token(id);
  if (const int b = byte_fallback_value(piece); b >= 0) return std::string(1, static_cast<char>(b));
  const TokenId pair[2] = {ref, id};
  std::string text = t.decode(pair);
  text = text.compare(0, ref_text.size(), ref_text) == 0 ? text.substr(ref_text.size()) : t.decode({&id, 1});
  if (text.find(kReplacement) != std::string::npos && piece.find(kReplacement) == std::string::npos) {
    std::string raw;
    if (byte_level::unmap(piece, raw)) return raw;
  }
  return text;
}

}  // namespace

GrammarVocabulary::GrammarVocabulary(const Tokenizer& tokenizer) {
  const size_t n = tokenizer.vocab_size();
  bytes_.resize(n);
  // The reference token: an ordinary one that decodes to itself ("a" alone, or the last of its ids).
  const std::vector<TokenId> a = tokenizer.encode("a", false);
  const TokenId ref = a.empty() ? 0 : a.back();
  const std::string ref_text = tokenizer.decode({&ref, 1});
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<TokenId>(i);
    if (tokenizer.is_special(id) || tokenizer.id_to_token(id).empty()) continue;
    bytes_[i] = token_text(tokenizer, id, ref, ref_text);
  }
  build_trie();
}

GrammarVocabulary::GrammarVocabulary(std::vector<std::string> token_bytes) : bytes_(std::move(token_bytes)) {
  build_trie();
}

void GrammarVocabulary::build_trie() {
  order_.clear();
  for (size_t i = 0; i < bytes_.size(); ++i)
    if (!bytes_[i].empty()) order_.push_back(static_cast<TokenId>(i));
  std::sort(order_.begin(), order_.end(), [&](TokenId x, TokenId y) {
    return bytes_[static_cast<size_t>(x)] != bytes_[static_cast<size_t>(y)] ? bytes_[static_cast<size_t>(x)] < bytes_[static_cast<size_t>(y)] : x < y;
  });
  nodes_.assign(1, Node{});
  add_children(0, 0, order_.size(), 0);
}

// order_[begin, end) share their first `depth` bytes (the path to `node`); those exactly `depth`
// long end here and sort first; the rest are grouped by their next byte into contiguous children.
void GrammarVocabulary::add_children(uint32_t node, size_t begin, size_t end, size_t depth) {
  size_t i = begin;
  while (i < end && bytes_[static_cast<size_t>(order_[i])].size() == depth) ++i;
  nodes_[node].first_token = static_cast<uint32_t>(begin);
  nodes_[node].tokens = static_cast<uint32_t>(i - begin);
  std::vector<std::pair<size_t, size_t>> groups;
  while (i < end) {
    const char b = bytes_[static_cast<size_t>(order_[i])][depth];
    size_t j = i;
    while (j < end && bytes_[static_cast<size_t>(order_[j])][depth] == b) ++j;
    groups.push_back({i, j});
    i = j;
  }
  const auto first = static_cast<uint32_t>(nodes_.size());
  nodes_[node].first_child = first;
  nodes_[node].children = static_cast<uint32_t>(groups.size());
  for (const auto& [b, e] : groups) {
    Node child;
    child.byte = static_cast<uint8_t>(bytes_[static_cast<size_t>(order_[b])][depth]);
    nodes_.push_back(child);
  }
  for (size_t g = 0; g < groups.size(); ++g)
    add_children(first + static_cast<uint32_t>(g), groups[g].first, groups[g].second, depth + 1);
}

}  // namespace sparq
