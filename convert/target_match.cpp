#include "convert/target_match.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "runtime/core/error.h"

namespace sparq {

bool regex_match_prefix(const std::string& pattern, const std::string& text) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> code(
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_ANCHORED, &err,
                    &err_off, nullptr),
      &pcre2_code_free);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    fail("bad regex target \"re:", pattern, "\" at offset ", static_cast<uint64_t>(err_off), ": ",
         reinterpret_cast<const char*>(buf));
  }
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(code.get(), nullptr), &pcre2_match_data_free);
  int rc = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, md.get(), nullptr);
  return rc >= 0;
}

MatchKind match_targets(const ModuleRef& m, const std::vector<std::string>& targets) {
  MatchKind best = MatchKind::None;
  for (const auto& t : targets) {
    MatchKind k = MatchKind::None;
    if (t.rfind("re:", 0) == 0) {
      if (regex_match_prefix(t.substr(3), m.name)) k = MatchKind::Regex;
    } else if (t == m.name) {
      k = MatchKind::ExactName;
    } else if (t == m.class_name) {
      k = MatchKind::ClassName;
    }
    if (k > best) best = k;
  }
  return best;
}

}  // namespace sparq
