#include "runtime/tokenizer/stream_detokenizer.h"

#include <span>

namespace sparq {

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
// A held-back U+FFFD that is still there after this many tokens is a real one: emit it.
constexpr size_t kMaxPending = 8;
}  // namespace

std::string StreamDetokenizer::push(TokenId id) {
  ids_.push_back(id);
  std::string text = tok_->decode(ids_, skip_special_);
  const bool incomplete = text.size() >= 3 && std::string_view(text).substr(text.size() - 3) == kReplacement;
  if (text.size() <= prefix_text_.size() || (incomplete && ids_.size() - prefix_count_ < kMaxPending)) return {};
  size_t emit_upto = ids_.size();  // ids_[0, emit_upto) are decoded and become context
  if (incomplete && ids_.size() - prefix_count_ > 1) {
    // A long run that still ends in an incomplete character (e.g. many " \xE5\x89" pieces): emit
    // all but the last token when that text is settled (a prefix of the longer decode), and keep
    // the last token, which may still be completed by the next one.
    std::string head = tok_->decode(std::span<const TokenId>(ids_.data(), ids_.size() - 1), skip_special_);
    if (head.size() > prefix_text_.size() && text.compare(0, head.size(), head) == 0) {
      emit_upto = ids_.size() - 1;
      text = std::move(head);
    }
  }
  std::string out;
  if (text.compare(0, prefix_text_.size(), prefix_text_) == 0) {
    out = text.substr(prefix_text_.size());
  } else {
    // The context decodes differently with the new tokens after it (a byte-fallback run that
    // turned invalid): decode the new tokens on their own.
    out = tok_->decode(std::span<const TokenId>(ids_.data() + prefix_count_, emit_upto - prefix_count_), skip_special_);
  }
  // Keep the tokens just emitted as context for the next step.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_count_));
  prefix_count_ = emit_upto - prefix_count_;
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
