#include "runtime/tokenizer/normalizer.h"

#include <vector>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"
#include "runtime/tokenizer/regex.h"
#include "runtime/tokenizer/unicode_props.h"

#ifdef SPARQ_HAVE_ICU
#include <unicode/normalizer2.h>
#include <unicode/locid.h>
#include <unicode/unistr.h>
#endif

namespace sparq {

namespace {

std::string get_string(const nlohmann::json& j, const char* key, const char* where) {
  if (!j.contains(key) || !j[key].is_string()) fail("tokenizer.json: ", where, " has no string \"", key, "\"");
  return j[key].get<std::string>();
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty() || s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t pos = 0;
  for (;;) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

class SequenceNormalizer : public Normalizer {
 public:
  std::vector<std::unique_ptr<Normalizer>> parts;
  void normalize(std::string& t) const override {
    for (auto& p : parts) p->normalize(t);
  }
};

class ReplaceNormalizer : public Normalizer {
 public:
  explicit ReplaceNormalizer(const nlohmann::json& j) {
    const auto& pat = j.at("pattern");
    content_ = get_string(j, "content", "Replace");
    if (pat.contains("String")) {
      literal_ = pat["String"].get<std::string>();
    } else if (pat.contains("Regex")) {
      regex_ = std::make_unique<Regex>(pat["Regex"].get<std::string>());
    } else {
      fail("tokenizer.json: Replace pattern is neither String nor Regex");
    }
  }
  void normalize(std::string& t) const override {
    if (!regex_) return replace_all(t, literal_, content_);
    std::string out;
    size_t last = 0;
    regex_->find_all(t, [&](size_t b, size_t e) {
      out.append(t, last, b - last);
      out += content_;
      last = e;
    });
    out.append(t, last, std::string::npos);
    t.swap(out);
  }

 private:
  std::string literal_, content_;
  std::unique_ptr<Regex> regex_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string s, bool append) : s_(std::move(s)), append_(append) {}
  void normalize(std::string& t) const override {
    if (t.empty()) return;
    if (append_)
      t += s_;
    else
      t.insert(0, s_);
  }

 private:
  std::string s_;
  bool append_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& t) const override {
    size_t b = 0, e = t.size();
    char32_t cp;
    if (left_)
      while (b < e) {
        int k = utf8::decode(t, b, cp);
        if (k == 0 || !unicode::is_whitespace(cp)) break;
        b += k;
      }
    if (right_)
      while (e > b) {
        size_t s = e - 1;
        while (s > b && (static_cast<unsigned char>(t[s]) & 0xC0) == 0x80) --s;
        int k = utf8::decode(t, s, cp);
        if (k == 0 || !unicode::is_whitespace(cp)) break;
        e = s;
      }
    t = t.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

#ifdef SPARQ_HAVE_ICU
class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(const std::string& form) {
    UErrorCode st = U_ZERO_ERROR;
    if (form == "NFC") n_ = icu::Normalizer2::getNFCInstance(st);
    else if (form == "NFD") n_ = icu::Normalizer2::getNFDInstance(st);
    else if (form == "NFKC") n_ = icu::Normalizer2::getNFKCInstance(st);
    else n_ = icu::Normalizer2::getNFKDInstance(st);
    if (U_FAILURE(st)) fail("tokenizer.json: ICU cannot provide the ", form, " normalizer");
  }
  void normalize(std::string& t) const override {
    UErrorCode st = U_ZERO_ERROR;
    icu::UnicodeString in = icu::UnicodeString::fromUTF8(t);
    if (n_->isNormalized(in, st) && U_SUCCESS(st)) return;
    st = U_ZERO_ERROR;
    icu::UnicodeString out = n_->normalize(in, st);
    if (U_FAILURE(st)) return;
    t.clear();
    out.toUTF8String(t);
  }

 private:
  const icu::Normalizer2* n_ = nullptr;
};
#endif

class LowercaseNormalizer : public Normalizer {
 public:
  void normalize(std::string& t) const override {
#ifdef SPARQ_HAVE_ICU
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(t);
    u.toLower(icu::Locale::getRoot());
    t.clear();
    u.toUTF8String(t);
#else
    for (char& c : t)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
#endif
  }
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) fail("tokenizer.json: a normalizer has no \"type\"");
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceNormalizer>();
    for (const auto& part : j.at("normalizers"))
      if (auto n = make_normalizer(part)) seq->parts.push_back(std::move(n));
    return seq;
  }
  if (type == "Replace") return std::make_unique<ReplaceNormalizer>(j);
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(get_string(j, "prepend", "Prepend"), false);
  if (type == "Append") return std::make_unique<PrependNormalizer>(get_string(j, "append", "Append"), true);
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(j.value("strip_left", true), j.value("strip_right", true));
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
#ifdef SPARQ_HAVE_ICU
    return std::make_unique<UnicodeNormalizer>(type);
#else
    fail("tokenizer.json: the ", type, " normalizer needs ICU, and this build of sparq has none");
#endif
  }
  fail("tokenizer.json: the normalizer type '", type,
       "' is not supported (supported: Sequence, Replace, Prepend, Append, Strip, Lowercase, NFC, NFD, NFKC, NFKD)");
}

}  // namespace sparq
