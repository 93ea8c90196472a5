#include "runtime/tokenizer/decoder.h"

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"
#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/regex.h"

namespace sparq {

namespace {

class SequenceDecoder : public Decoder {
 public:
  std::vector<std::unique_ptr<Decoder>> parts;
  void decode_chain(std::vector<std::string>& t) const override {
    for (auto& p : parts) p->decode_chain(t);
  }
  ByteMerge byte_merge() const override {
    for (auto& p : parts)
      if (p->byte_merge() != ByteMerge::None) return p->byte_merge();
    return ByteMerge::None;
  }
};

class ByteLevelDecoder : public Decoder {
 public:
  ByteMerge byte_merge() const override { return ByteMerge::AllBytes; }
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes, raw;
    for (const std::string& t : tokens) {
      if (byte_level::unmap(t, raw))
        bytes += raw;
      else
        bytes += t;
    }
    tokens.assign(1, utf8::lossy(bytes));
  }
};

class ReplaceDecoder : public Decoder {
 public:
  explicit ReplaceDecoder(const nlohmann::json& j) {
    const auto& pat = j.at("pattern");
    content_ = j.at("content").get<std::string>();
    if (pat.contains("String"))
      literal_ = pat["String"].get<std::string>();
    else if (pat.contains("Regex"))
      regex_ = std::make_unique<Regex>(pat["Regex"].get<std::string>());
    else
      fail("tokenizer.json: Replace decoder pattern is neither String nor Regex");
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::string out;
      size_t last = 0;
      auto on = [&](size_t b, size_t e) {
        out.append(t, last, b - last);
        out += content_;
        last = e;
      };
      if (regex_) {
        regex_->find_all(t, on);
      } else if (!literal_.empty()) {
        for (size_t pos = t.find(literal_); pos != std::string::npos; pos = t.find(literal_, pos + literal_.size()))
          on(pos, pos + literal_.size());
      }
      if (last == 0) continue;
      out.append(t, last, std::string::npos);
      t.swap(out);
    }
  }

 private:
  std::string literal_, content_;
  std::unique_ptr<Regex> regex_;
};

}  // namespace

int byte_fallback_value(std::string_view t) {
  if (t.size() != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

namespace {

class ByteFallbackDecoder : public Decoder {
 public:
  ByteMerge byte_merge() const override { return ByteMerge::FallbackRuns; }
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (utf8::is_valid(pending))
        out.push_back(pending);
      else
        for (size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      pending.clear();
    };
    for (std::string& t : tokens) {
      int b = byte_fallback_value(t);
      if (b >= 0) {
        pending.push_back(static_cast<char>(b));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder : public Decoder {
 public:
  explicit StripDecoder(const nlohmann::json& j)
      : content_(j.at("content").get<std::string>()), start_(j.value("start", 0)), stop_(j.value("stop", 0)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      size_t b = 0, e = t.size();
      for (int i = 0; i < start_ && t.compare(b, content_.size(), content_) == 0 && b < e; ++i) b += content_.size();
      for (int i = 0; i < stop_ && e >= b + content_.size() && t.compare(e - content_.size(), content_.size(), content_) == 0;
           ++i)
        e -= content_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  int start_, stop_;
};

class MetaspaceDecoder : public Decoder {
 public:
  explicit MetaspaceDecoder(const nlohmann::json& j) {
    replacement_ = j.value("replacement", std::string("\xE2\x96\x81"));
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string())
      strip_first_ = j["prepend_scheme"].get<std::string>() != "never";
    else
      strip_first_ = j.value("add_prefix_space", true);
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t p = 0; p < t.size();) {
        if (t.compare(p, replacement_.size(), replacement_) == 0) {
          out += ' ';
          p += replacement_.size();
        } else {
          out += t[p++];
        }
      }
      if (i == 0 && strip_first_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
      tokens[i] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool strip_first_ = true;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) fail("tokenizer.json: a decoder has no \"type\"");
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceDecoder>();
    for (const auto& part : j.at("decoders"))
      if (auto d = make_decoder(part)) seq->parts.push_back(std::move(d));
    return seq;
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(j);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") return std::make_unique<StripDecoder>(j);
  if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(j);
  fail("tokenizer.json: the decoder type '", type,
       "' is not supported (supported: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace)");
}

}  // namespace sparq
