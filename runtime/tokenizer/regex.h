// A compiled Unicode regular expression (PCRE2, UTF + UCP, JIT when available) used by the
// Split pre-tokenizer and Replace normalizers/decoders. Patterns are written in the Oniguruma
// dialect that Hugging Face tokenizers use; the few differences are rewritten at compile time.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace sparq {

class Regex {
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Calls on_match(begin, end) for every non-overlapping match, left to right. The text must be
  // valid UTF-8. Empty matches are skipped.
  void find_all(std::string_view text, const std::function<void(size_t, size_t)>& on_match) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::string pattern_;
  std::unique_ptr<Impl> impl_;
};

// Rewrites an Oniguruma pattern for PCRE2: `\s`/`\S` become Unicode White_Space classes (PCRE2's
// UCP `\s` misses U+0085). Exposed for tests.
std::string oniguruma_to_pcre2(std::string_view pattern);

}  // namespace sparq
