#include "runtime/tokenizer/pre_tokenizer.h"

#include <algorithm>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"
#include "runtime/tokenizer/regex.h"
#include "runtime/tokenizer/unicode_props.h"

namespace sparq {

namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const std::string& s) {
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  fail("tokenizer.json: unknown Split behavior '", s, "'");
}

// Splits each piece at the ranges find() reports, following HF's SplitDelimiterBehavior.
template <typename Find>
void split_pieces(PieceList& pl, Behavior behavior, bool invert, const Find& find) {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  out.reserve(pl.pieces.size() * 2);
  std::vector<std::pair<std::pair<uint32_t, uint32_t>, bool>> parts;  // (range, is_match)
  for (const auto& piece : pl.pieces) {
    // Plain copies, not structured bindings: clang < 16 cannot capture those in the lambda below.
    const uint32_t off = piece.first, len = piece.second;
    std::string_view text = std::string_view(pl.buf).substr(off, len);
    parts.clear();
    size_t last = 0;
    find(text, [&](size_t b, size_t e) {
      if (b > last) parts.push_back({{uint32_t(off + last), uint32_t(b - last)}, invert});
      parts.push_back({{uint32_t(off + b), uint32_t(e - b)}, !invert});
      last = e;
    });
    if (last < len) parts.push_back({{uint32_t(off + last), uint32_t(len - last)}, invert});
    switch (behavior) {
      case Behavior::Isolated:
        for (auto& p : parts) out.push_back(p.first);
        break;
      case Behavior::Removed:
        for (auto& p : parts)
          if (!p.second) out.push_back(p.first);
        break;
      case Behavior::MergedWithPrevious: {
        bool prev_is_open = false;
        for (auto& p : parts) {
          if (p.second && prev_is_open) {
            out.back().second += p.first.second;
          } else {
            out.push_back(p.first);
          }
          prev_is_open = !p.second;
        }
        break;
      }
      case Behavior::MergedWithNext: {
        // As Hugging Face: walk right to left, a match joins the part after it unless that
        // part is itself a match.
        size_t first = out.size();
        bool next_is_match = false;
        for (size_t k = parts.size(); k-- > 0;) {
          auto& p = parts[k];
          if (p.second && !next_is_match && out.size() > first) {
            out.back().second += out.back().first - p.first.first;
            out.back().first = p.first.first;
          } else {
            out.push_back(p.first);
          }
          next_is_match = p.second;
        }
        std::reverse(out.begin() + first, out.end());
        break;
      }
      case Behavior::Contiguous: {
        bool prev_match = false;
        for (auto& p : parts) {
          if (p.second && prev_match) {
            out.back().second += p.first.second;
          } else {
            out.push_back(p.first);
          }
          prev_match = p.second;
        }
        break;
      }
    }
  }
  pl.pieces.swap(out);
}

void find_literal(std::string_view text, const std::string& lit, const std::function<void(size_t, size_t)>& cb) {
  if (lit.empty()) return;
  size_t pos = 0;
  for (;;) {
    size_t hit = text.find(lit, pos);
    if (hit == std::string_view::npos) return;
    cb(hit, hit + lit.size());
    pos = hit + lit.size();
  }
}

class SequencePre : public PreTokenizer {
 public:
  std::vector<std::unique_ptr<PreTokenizer>> parts;
  void apply(PieceList& pl, bool first) const override {
    for (auto& p : parts) p->apply(pl, first);
  }
};

class SplitPre : public PreTokenizer {
 public:
  explicit SplitPre(const nlohmann::json& j) {
    const auto& pat = j.at("pattern");
    if (pat.contains("String")) {
      literal_ = pat["String"].get<std::string>();
    } else if (pat.contains("Regex")) {
      regex_ = std::make_unique<Regex>(pat["Regex"].get<std::string>());
    } else {
      fail("tokenizer.json: Split pattern is neither String nor Regex");
    }
    behavior_ = parse_behavior(j.value("behavior", std::string("Isolated")));
    invert_ = j.value("invert", false);
  }
  void apply(PieceList& pl, bool) const override {
    if (regex_)
      split_pieces(pl, behavior_, invert_, [&](std::string_view t, auto&& cb) { regex_->find_all(t, cb); });
    else
      split_pieces(pl, behavior_, invert_, [&](std::string_view t, auto&& cb) { find_literal(t, literal_, cb); });
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> regex_;
  Behavior behavior_;
  bool invert_;
};

// Rewrites every piece through f(piece, index, out) into a fresh buffer.
template <typename F>
void rewrite(PieceList& pl, const F& f) {
  PieceList out;
  out.buf.reserve(pl.buf.size() + pl.pieces.size() * 3);
  out.pieces.reserve(pl.pieces.size());
  for (size_t i = 0; i < pl.pieces.size(); ++i) {
    size_t start = out.buf.size();
    f(pl.piece(i), i, out.buf);
    out.pieces.push_back({uint32_t(start), uint32_t(out.buf.size() - start)});
  }
  pl = std::move(out);
}

const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPre : public PreTokenizer {
 public:
  explicit ByteLevelPre(const nlohmann::json& j) {
    add_prefix_space_ = j.value("add_prefix_space", false);
    if (j.value("use_regex", true)) regex_ = std::make_unique<Regex>(kGpt2Pattern);
  }
  void apply(PieceList& pl, bool) const override {
    if (add_prefix_space_) {
      bool needed = false;
      for (size_t i = 0; i < pl.pieces.size() && !needed; ++i) needed = pl.piece(i).empty() || pl.piece(i)[0] != ' ';
      if (needed)
        rewrite(pl, [](std::string_view p, size_t, std::string& out) {
          if (p.empty() || p[0] != ' ') out += ' ';
          out.append(p);
        });
    }
    if (regex_)
      split_pieces(pl, Behavior::Isolated, false, [&](std::string_view t, auto&& cb) { regex_->find_all(t, cb); });
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class MetaspacePre : public PreTokenizer {
 public:
  explicit MetaspacePre(const nlohmann::json& j) {
    replacement_ = j.value("replacement", std::string("\xE2\x96\x81"));
    std::string scheme = "always";
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string())
      scheme = j["prepend_scheme"].get<std::string>();
    else if (j.contains("add_prefix_space") && j["add_prefix_space"].is_boolean())
      scheme = j["add_prefix_space"].get<bool>() ? "always" : "never";
    if (scheme != "always" && scheme != "first" && scheme != "never")
      fail("tokenizer.json: unknown Metaspace prepend_scheme '", scheme, "'");
    scheme_ = scheme;
    split_ = j.value("split", true);
  }
  void apply(PieceList& pl, bool first) const override {
    rewrite(pl, [&](std::string_view p, size_t idx, std::string& out) {
      bool prepend = scheme_ == "always" || (scheme_ == "first" && first && idx == 0);
      if (prepend && p.substr(0, replacement_.size()) != replacement_ && !p.empty()) out += replacement_;
      for (char c : p) {
        if (c == ' ')
          out += replacement_;
        else
          out += c;
      }
    });
    if (split_)
      split_pieces(pl, Behavior::MergedWithNext, false,
                   [&](std::string_view t, auto&& cb) { find_literal(t, replacement_, cb); });
  }

 private:
  std::string replacement_, scheme_;
  bool split_;
};

class DigitsPre : public PreTokenizer {
 public:
  explicit DigitsPre(bool individual) : individual_(individual) {}
  void apply(PieceList& pl, bool) const override {
    split_pieces(pl, individual_ ? Behavior::Isolated : Behavior::Contiguous, false,
                 [](std::string_view t, auto&& cb) {
                   for (size_t i = 0; i < t.size(); ++i)
                     if (t[i] >= '0' && t[i] <= '9') cb(i, i + 1);
                 });
  }

 private:
  bool individual_;
};

class WhitespaceSplitPre : public PreTokenizer {
 public:
  void apply(PieceList& pl, bool) const override {
    split_pieces(pl, Behavior::Removed, false, [](std::string_view t, auto&& cb) {
      size_t i = 0;
      while (i < t.size()) {
        char32_t cp;
        int k = utf8::decode(t, i, cp);
        if (k == 0) k = 1, cp = 0xFFFD;
        if (unicode::is_whitespace(cp)) cb(i, i + k);
        i += k;
      }
    });
  }
};

class RegexIsolatedPre : public PreTokenizer {
 public:
  RegexIsolatedPre(const char* pattern, bool invert)
      : regex_(pattern), behavior_(invert ? Behavior::Removed : Behavior::Isolated), invert_(invert) {}
  void apply(PieceList& pl, bool) const override {
    split_pieces(pl, behavior_, invert_, [&](std::string_view t, auto&& cb) { regex_.find_all(t, cb); });
  }

 private:
  Regex regex_;
  Behavior behavior_;
  bool invert_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, bool* byte_level) {
  if (j.is_null()) return nullptr;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail("tokenizer.json: a pre_tokenizer has no \"type\"");
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    auto seq = std::make_unique<SequencePre>();
    for (const auto& part : j.at("pretokenizers"))
      if (auto p = make_pre_tokenizer(part, byte_level)) seq->parts.push_back(std::move(p));
    return seq;
  }
  if (type == "Split") return std::make_unique<SplitPre>(j);
  if (type == "ByteLevel") {
    *byte_level = true;
    return std::make_unique<ByteLevelPre>(j);
  }
  if (type == "Metaspace") return std::make_unique<MetaspacePre>(j);
  if (type == "Digits") return std::make_unique<DigitsPre>(j.value("individual_digits", false));
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPre>();
  if (type == "Whitespace") return std::make_unique<RegexIsolatedPre>(R"(\w+|[^\w\s]+)", false);
  fail("tokenizer.json: the pre_tokenizer type '", type,
       "' is not supported (supported: Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit)");
}

}  // namespace sparq
