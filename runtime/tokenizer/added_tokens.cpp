#include "runtime/tokenizer/added_tokens.h"

#include "runtime/core/utf8.h"
#include "runtime/tokenizer/unicode_props.h"

namespace sparq {

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  trie_.emplace_back();
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const std::string& s = tokens_[t].content;
    if (s.empty()) continue;
    first_byte_[static_cast<unsigned char>(s[0])] = true;
    int32_t node = 0;
    for (unsigned char c : s) {
      int32_t child = -1;
      for (auto& [byte, idx] : trie_[node].next)
        if (byte == c) child = idx;
      if (child < 0) {
        child = static_cast<int32_t>(trie_.size());
        trie_[node].next.emplace_back(c, child);
        trie_.emplace_back();
      }
      node = child;
    }
    if (trie_[node].token < 0) trie_[node].token = static_cast<int32_t>(t);
  }
}

int32_t AddedTokenMatcher::longest_at(std::string_view text, size_t pos, size_t& end) const {
  int32_t node = 0, best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    int32_t child = -1;
    for (auto& [byte, idx] : trie_[node].next)
      if (byte == c) {
        child = idx;
        break;
      }
    if (child < 0) break;
    node = child;
    if (trie_[node].token >= 0) {
      best = trie_[node].token;
      end = i + 1;
    }
  }
  return best;
}

namespace {
bool is_word_char_before(std::string_view text, size_t pos) {
  if (pos == 0) return false;
  size_t i = pos - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  char32_t cp;
  if (utf8::decode(text, i, cp) == 0) return false;
  return unicode::is_alnum(cp) || cp == '_';
}
bool is_word_char_at(std::string_view text, size_t pos) {
  if (pos >= text.size()) return false;
  char32_t cp;
  if (utf8::decode(text, pos, cp) == 0) return false;
  return unicode::is_alnum(cp) || cp == '_';
}
}  // namespace

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSegment>& out) const {
  size_t plain_start = 0, pos = 0;
  const size_t n = text.size();
  while (pos < n) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    size_t end = 0;
    int32_t t = longest_at(text, pos, end);
    if (t < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[t];
    if (tok.single_word && (is_word_char_before(text, pos) || is_word_char_at(text, end))) {
      ++pos;
      continue;
    }
    size_t start = pos;
    if (tok.lstrip)
      while (start > plain_start && unicode::is_ascii_space(text[start - 1])) --start;
    if (tok.rstrip)
      while (end < n && unicode::is_ascii_space(text[end])) ++end;
    if (start > plain_start) out.push_back({text.substr(plain_start, start - plain_start), -1});
    out.push_back({text.substr(start, end - start), tok.id});
    pos = plain_start = end;
  }
  if (plain_start < n) out.push_back({text.substr(plain_start), -1});
}

}  // namespace sparq
