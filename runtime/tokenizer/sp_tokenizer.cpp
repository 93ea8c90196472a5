#include "runtime/tokenizer/sp_tokenizer.h"

#include <sentencepiece_processor.h>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"
#include "runtime/tokenizer/added_tokens.h"

namespace sparq {

namespace {

class SpTokenizer : public Tokenizer {
 public:
  SpTokenizer(std::string_view proto, const nlohmann::json& config);
  std::vector<TokenId> encode(std::string_view text, bool add_special, bool parse_special) const override;
  std::string decode(std::span<const TokenId> ids, bool skip_special) const override;
  size_t unsettled_tail(std::span<const TokenId> ids, bool skip_special) const override;
  size_t vocab_size() const override { return pieces_.size(); }
  std::string id_to_token(TokenId id) const override {
    return id >= 0 && static_cast<size_t>(id) < pieces_.size() ? pieces_[id] : std::string();
  }
  std::optional<TokenId> token_to_id(std::string_view token) const override {
    int id = sp_.PieceToId(token);
    if (id >= 0 && pieces_[id] == token) return id;
    return std::nullopt;
  }
  bool is_special(TokenId id) const override {
    return id >= 0 && static_cast<size_t>(id) < special_.size() && special_[id];
  }
  std::string_view kind() const override { return "tokenizer.model"; }

 private:
  sentencepiece::SentencePieceProcessor sp_;
  std::vector<std::string> pieces_;
  std::vector<bool> special_;   // control, unknown and special added tokens
  std::vector<bool> verbatim_;  // decoded as their text, not through SentencePiece
  AddedTokenMatcher matcher_;
  bool add_bos_ = true, add_eos_ = false;
};

SpTokenizer::SpTokenizer(std::string_view proto, const nlohmann::json& config) {
  auto st = sp_.LoadFromSerializedProto(proto);
  if (!st.ok()) fail("tokenizer.model: not a SentencePiece model (", st.ToString(), ")");
  const int n = sp_.GetPieceSize();
  pieces_.resize(n);
  special_.assign(n, false);
  verbatim_.assign(n, false);
  std::vector<AddedToken> added;
  for (int id = 0; id < n; ++id) {
    pieces_[id] = sp_.IdToPiece(id);
    if (sp_.IsControl(id) || sp_.IsUnknown(id)) {
      special_[id] = true;
      verbatim_[id] = true;
      if (sp_.IsControl(id) && !pieces_[id].empty()) added.push_back(AddedToken{id, pieces_[id], true});
    }
  }
  if (config.is_object()) {
    add_bos_ = config.value("add_bos_token", true);
    add_eos_ = config.value("add_eos_token", false);
    if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
      for (auto it = config["added_tokens_decoder"].begin(); it != config["added_tokens_decoder"].end(); ++it) {
        int id = std::stoi(it.key());
        const auto& a = it.value();
        std::string content = a.value("content", std::string());
        if (id < 0 || id >= n || content.empty()) continue;
        AddedToken t{id, content, a.value("special", false)};
        t.lstrip = a.value("lstrip", false);
        t.rstrip = a.value("rstrip", false);
        t.single_word = a.value("single_word", false);
        special_[id] = special_[id] || t.special;
        verbatim_[id] = true;
        added.push_back(std::move(t));
      }
    }
  }
  matcher_ = AddedTokenMatcher(std::move(added));
}

std::vector<TokenId> SpTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::string fixed;
  if (!utf8::is_valid(text)) {
    fixed = utf8::lossy(text);
    text = fixed;
  }
  std::vector<TokenId> out;
  if (add_special && add_bos_ && sp_.bos_id() >= 0) out.push_back(sp_.bos_id());
  std::vector<TextSegment> segs;
  if (parse_special)
    matcher_.split(text, segs);
  else if (!text.empty())
    segs.push_back({text, -1});
  std::vector<int> ids;
  for (const auto& s : segs) {
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    ids.clear();
    auto st = sp_.Encode(s.text, &ids);
    if (!st.ok()) fail("tokenizer.model: SentencePiece cannot encode the text (", st.ToString(), ")");
    out.insert(out.end(), ids.begin(), ids.end());
  }
  if (add_special && add_eos_ && sp_.eos_id() >= 0) out.push_back(sp_.eos_id());
  return out;
}

std::string SpTokenizer::decode(std::span<const TokenId> ids, bool skip_special) const {
  std::string out, piece;
  std::vector<int> run;
  auto flush = [&] {
    if (run.empty()) return;
    piece.clear();
    sp_.Decode(run, &piece).IgnoreError();
    out += piece;
    run.clear();
  };
  for (TokenId id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) continue;
    if (verbatim_[id]) {
      flush();
      if (!(skip_special && special_[id])) out += pieces_[id];
    } else {
      run.push_back(id);
    }
  }
  flush();
  return out;
}

size_t SpTokenizer::unsettled_tail(std::span<const TokenId> ids, bool /*skip_special*/) const {
  // SentencePiece decodes a run of byte pieces together; the whole trailing run stays open (a
  // verbatim token ends the run, as in decode()).
  size_t n = 0;
  bool in_run = false;
  for (auto it = ids.rbegin(); it != ids.rend(); ++it, ++n) {
    const TokenId id = *it;
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) continue;
    if (verbatim_[id] || !sp_.IsByte(id)) break;
    in_run = true;
  }
  return in_run ? n : 0;
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(std::string_view model_proto, const nlohmann::json& config) {
  return std::make_unique<SpTokenizer>(model_proto, config);
}

}  // namespace sparq
