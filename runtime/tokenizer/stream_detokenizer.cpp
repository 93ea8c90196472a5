#include "runtime/tokenizer/stream_detokenizer.h"

#include <algorithm>
#include <span>

namespace sparq {

std::string StreamDetokenizer::push(TokenId id) {
  ids_.push_back(id);
  // Tokens whose text a later token can still change (an open byte run, an incomplete UTF-8
  // character) are held back whole: neither emitted nor used as context until they settle.
  const size_t held = std::min(tok_->unsettled_tail(ids_, skip_special_), ids_.size() - prefix_count_);
  const size_t settled = ids_.size() - held;
  if (settled == prefix_count_) return {};
  const std::string text = tok_->decode(std::span<const TokenId>(ids_.data(), settled), skip_special_);
  if (text.size() <= prefix_text_.size()) return {};  // nothing new yet (e.g. skipped specials)
  std::string out;
  if (text.compare(0, prefix_text_.size(), prefix_text_) == 0) {
    out = text.substr(prefix_text_.size());
  } else {
    // The context decodes differently with the new tokens after it: decode the new ones alone.
    out = tok_->decode(std::span<const TokenId>(ids_.data() + prefix_count_, settled - prefix_count_), skip_special_);
  }
  // The tokens just emitted become the context for the next step.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_count_));
  prefix_count_ = settled - prefix_count_;
  prefix_text_ = tok_->decode(std::span<const TokenId>(ids_.data(), prefix_count_), skip_special_);
  return out;
}

std::string StreamDetokenizer::finish() {
  std::string text = tok_->decode(ids_, skip_special_);
  std::string out;
  if (text.compare(0, prefix_text_.size(), prefix_text_) == 0)
    out = text.substr(prefix_text_.size());
  else
    out = pending_text();
  reset();
  return out;
}

std::string StreamDetokenizer::pending_text() const {
  std::vector<TokenId> pending(ids_.begin() + static_cast<std::ptrdiff_t>(prefix_count_), ids_.end());
  return tok_->decode(pending, skip_special_);
}

void StreamDetokenizer::reset() {
  ids_.clear();
  prefix_count_ = 0;
  prefix_text_.clear();
}

}  // namespace sparq
