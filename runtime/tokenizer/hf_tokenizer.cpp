#include "runtime/tokenizer/hf_tokenizer.h"

#include <nlohmann/json.hpp>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"
#include "runtime/tokenizer/added_tokens.h"
#include "runtime/tokenizer/bpe_model.h"
#include "runtime/tokenizer/byte_level.h"
#include "runtime/tokenizer/decoder.h"
#include "runtime/tokenizer/normalizer.h"
#include "runtime/tokenizer/pre_tokenizer.h"

namespace sparq {

namespace {

class HfTokenizer : public Tokenizer {
 public:
  explicit HfTokenizer(const nlohmann::json& j);

  std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const override;
  std::string decode(std::span<const TokenId> ids, bool skip_special) const override;
  size_t unsettled_tail(std::span<const TokenId> ids, bool skip_special) const override;
  size_t vocab_size() const override { return tokens_.size(); }
  std::string id_to_token(TokenId id) const override {
    return id >= 0 && static_cast<size_t>(id) < tokens_.size() ? tokens_[id] : std::string();
  }
  std::optional<TokenId> token_to_id(std::string_view token) const override;
  bool is_special(TokenId id) const override {
    return id >= 0 && static_cast<size_t>(id) < special_.size() && special_[id];
  }
  std::string_view kind() const override { return "tokenizer.json"; }

 private:
  void encode_plain(std::string_view text, bool first_segment, bool parse_special, std::vector<TokenId>& out) const;
  void parse_post_processor(const nlohmann::json& pp);

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Decoder> decoder_;
  AddedTokenMatcher raw_added_, normalized_added_;
  std::vector<std::string> tokens_;  // id -> string (added tokens override the model's)
  std::vector<bool> special_;
  std::vector<bool> added_;
  std::vector<std::pair<std::string, TokenId>> added_by_content_;
  std::vector<TokenId> prefix_, suffix_;  // post-processor, single sequence
};

HfTokenizer::HfTokenizer(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("model")) fail("tokenizer.json: no \"model\" object (is this a tokenizer.json?)");
  const auto& model = j["model"];
  std::string type = model.value("type", std::string());
  if (type.empty() && model.contains("merges")) type = "BPE";
  if (type != "BPE")
    fail("tokenizer.json: the model type '", type, "' is not supported (only BPE: Llama, Gemma, Mistral, Qwen, GPT-2)");

  bool byte_level = false;
  if (j.contains("normalizer")) normalizer_ = make_normalizer(j["normalizer"]);
  if (j.contains("pre_tokenizer")) pre_tokenizer_ = make_pre_tokenizer(j["pre_tokenizer"], &byte_level);
  if (j.contains("decoder")) decoder_ = make_decoder(j["decoder"]);
  model_ = std::make_unique<BpeModel>(model, byte_level);

  tokens_ = model_->id_to_token();
  std::vector<AddedToken> raw, normalized;
  if (j.contains("added_tokens")) {
    for (const auto& a : j["added_tokens"]) {
      AddedToken t;
      t.id = a.at("id").get<int32_t>();
      t.content = a.at("content").get<std::string>();
      t.special = a.value("special", false);
      t.normalized = a.value("normalized", !t.special);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.single_word = a.value("single_word", false);
      if (t.id < 0 || t.id > 10'000'000) fail("tokenizer.json: added token '", t.content, "' has id ", t.id);
      if (static_cast<size_t>(t.id) >= tokens_.size()) tokens_.resize(t.id + 1);
      tokens_[t.id] = t.content;
      if (special_.size() < tokens_.size()) special_.resize(tokens_.size());
      if (added_.size() < tokens_.size()) added_.resize(tokens_.size());
      special_[t.id] = t.special;
      added_[t.id] = true;
      added_by_content_.emplace_back(t.content, t.id);
      // With no normalizer the two passes are the same; keep a single one.
      (t.normalized && normalizer_ ? normalized : raw).push_back(std::move(t));
    }
  }
  special_.resize(tokens_.size());
  added_.resize(tokens_.size());
  raw_added_ = AddedTokenMatcher(std::move(raw));
  normalized_added_ = AddedTokenMatcher(std::move(normalized));
  if (j.contains("post_processor")) parse_post_processor(j["post_processor"]);
}

void HfTokenizer::parse_post_processor(const nlohmann::json& pp) {
  if (pp.is_null()) return;
  const std::string type = pp.value("type", std::string());
  auto id_of = [&](const nlohmann::json& tok_ids, const std::string& name) {
    std::vector<TokenId> ids;
    if (tok_ids.is_array())
      for (const auto& x : tok_ids) ids.push_back(x.get<TokenId>());
    else if (auto id = token_to_id(name))
      ids.push_back(*id);
    else
      fail("tokenizer.json: post-processor token '", name, "' is not in the vocabulary");
    return ids;
  };
  if (type == "Sequence") {
    for (const auto& p : pp.at("processors")) parse_post_processor(p);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets.
  } else if (type == "TemplateProcessing") {
    bool seen_sequence = false;
    for (const auto& piece : pp.at("single")) {
      if (piece.contains("Sequence")) {
        seen_sequence = true;
      } else if (piece.contains("SpecialToken")) {
        std::string name = piece["SpecialToken"].at("id").get<std::string>();
        nlohmann::json ids;
        if (pp.contains("special_tokens") && pp["special_tokens"].contains(name))
          ids = pp["special_tokens"][name].value("ids", nlohmann::json());
        auto v = id_of(ids, name);
        (seen_sequence ? suffix_ : prefix_).insert((seen_sequence ? suffix_ : prefix_).end(), v.begin(), v.end());
      }
    }
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    prefix_.push_back(pp.at("cls").at(1).get<TokenId>());
    suffix_.push_back(pp.at("sep").at(1).get<TokenId>());
  } else {
    fail("tokenizer.json: the post_processor type '", type,
         "' is not supported (supported: TemplateProcessing, ByteLevel, Sequence, BertProcessing, RobertaProcessing)");
  }
}

std::optional<TokenId> HfTokenizer::token_to_id(std::string_view token) const {
  for (const auto& [content, id] : added_by_content_)
    if (content == token) return id;
  int32_t id = model_->token_to_id(token);
  if (id >= 0) return id;
  return std::nullopt;
}

void HfTokenizer::encode_plain(std::string_view text, bool first_segment, bool parse_special,
                               std::vector<TokenId>& out) const {
  std::string norm(text);
  if (normalizer_) normalizer_->normalize(norm);
  std::vector<TextSegment> segs;
  if (parse_special && !normalized_added_.empty())
    normalized_added_.split(norm, segs);
  else
    segs.push_back({norm, -1});
  PieceList pl;
  for (size_t s = 0; s < segs.size(); ++s) {
    if (segs[s].id >= 0) {
      out.push_back(segs[s].id);
      continue;
    }
    pl.buf.assign(segs[s].text);
    pl.pieces.assign(1, {0u, static_cast<uint32_t>(pl.buf.size())});
    if (pre_tokenizer_) pre_tokenizer_->apply(pl, first_segment && s == 0);
    for (size_t i = 0; i < pl.pieces.size(); ++i) model_->encode_word(pl.piece(i), out);
  }
}

std::vector<TokenId> HfTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::string fixed;
  if (!utf8::is_valid(text)) {
    fixed = utf8::lossy(text);
    text = fixed;
  }
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special) out.insert(out.end(), prefix_.begin(), prefix_.end());
  if (parse_special && !raw_added_.empty()) {
    std::vector<TextSegment> segs;
    raw_added_.split(text, segs);
    for (const auto& seg : segs) {
      if (seg.id >= 0)
        out.push_back(seg.id);
      else
        encode_plain(seg.text, seg.text.data() == text.data(), parse_special, out);
    }
  } else if (!text.empty()) {
    encode_plain(text, true, parse_special, out);
  }
  if (add_special) out.insert(out.end(), suffix_.begin(), suffix_.end());
  return out;
}

std::string HfTokenizer::decode(std::span<const TokenId> ids, bool skip_special) const {
  std::vector<std::string> toks;
  toks.reserve(ids.size());
  for (TokenId id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) continue;
    if (skip_special && special_[id]) continue;
    toks.push_back(tokens_[id]);
  }
  if (!decoder_) {
    std::string all;
    for (size_t i = 0; i < toks.size(); ++i) {
      if (i) all += ' ';
      all += toks[i];
    }
    return all;
  }
  decoder_->decode_chain(toks);
  std::string all;
  for (auto& t : toks) all += t;
  return all;
}

size_t HfTokenizer::unsettled_tail(std::span<const TokenId> ids, bool skip_special) const {
  const ByteMerge merge = decoder_ ? decoder_->byte_merge() : ByteMerge::None;
  if (merge == ByteMerge::None) return 0;
  auto dropped = [&](TokenId id) {  // decode() leaves it out, so it neither ends nor splits a run
    return id < 0 || static_cast<size_t>(id) >= tokens_.size() || (skip_special && special_[id]);
  };
  if (merge == ByteMerge::FallbackRuns) {
    // The whole trailing run of byte pieces (and dropped ids within it) is open.
    size_t n = 0;
    bool in_run = false;
    for (auto it = ids.rbegin(); it != ids.rend(); ++it, ++n) {
      if (dropped(*it)) continue;
      if (byte_fallback_value(tokens_[*it]) < 0) break;
      in_run = true;
    }
    return in_run ? n : 0;
  }
  // ByteLevel: only the tokens holding an incomplete UTF-8 character at the end are open. Four
  // bytes from the end are enough to see it.
  std::vector<size_t> token_bytes;  // bytes of each token, last first
  std::string tail, raw;
  for (auto it = ids.rbegin(); it != ids.rend() && tail.size() < 4; ++it) {
    if (dropped(*it)) {
      token_bytes.push_back(0);
      continue;
    }
    const std::string& t = tokens_[*it];
    const std::string& b = byte_level::unmap(t, raw) ? raw : t;
    tail.insert(0, b);
    token_bytes.push_back(b.size());
  }
  size_t open = utf8::incomplete_tail(tail), n = 0;
  while (open > 0 && n < token_bytes.size()) open -= std::min(open, token_bytes[n++]);
  return n;
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(std::string_view bytes) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer.json: not valid JSON (", e.what(), ")");
  }
  try {
    return std::make_unique<HfTokenizer>(j);
  } catch (const nlohmann::json::exception& e) {
    fail("tokenizer.json: unexpected structure (", e.what(), ")");
  }
}

}  // namespace sparq
