// tokenizer.json pre-tokenizers: Sequence, Split (String or Regex, every behavior, invert),
// ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation-free subset.
// They cut a normalized segment into words; byte-level mapping is left to the BPE model.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace sparq {

// Words as byte ranges of buf.
struct PieceList {
  std::string buf;
  std::vector<std::pair<uint32_t, uint32_t>> pieces;  // (offset, length)
  std::string_view piece(size_t i) const { return std::string_view(buf).substr(pieces[i].first, pieces[i].second); }
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits (and may rewrite) every piece. first_segment: this text starts the input (used by
  // Metaspace's prepend_scheme "first").
  virtual void apply(PieceList& pl, bool first_segment) const = 0;
};

// Returns nullptr for a null pre-tokenizer. Sets *byte_level when a ByteLevel step is present.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec, bool* byte_level);

}  // namespace sparq
