#include "runtime/model_file/reference_block.h"

#include <cmath>
#include <string>

#include "runtime/core/error.h"
#include "runtime/core/json_fields.h"
#include "runtime/model_file/architecture.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

namespace {

using json = nlohmann::json;

const json& json_array(const json& obj, std::string_view key, std::string_view owner, size_t max) {
  const json& a = json_field(obj, key, owner);
  if (!a.is_array()) fail(owner, ": \"", key, "\" must be an array");
  if (a.size() > max) fail(owner, ": \"", key, "\" has ", a.size(), " entries, at most ", max, " are allowed");
  return a;
}

std::vector<int32_t> token_ids(const json& obj, std::string_view key, std::string_view owner, size_t max, int64_t vocab) {
  const json& a = json_array(obj, key, owner, max);
  std::vector<int32_t> ids;
  ids.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_number_integer()) fail(owner, ": ", key, "[", i, "] must be an integer token id");
    const int64_t id = a[i].get<int64_t>();
    if (id < 0 || id >= vocab) fail(owner, ": ", key, "[", i, "] = ", id, " is not a token of this model (vocab ", vocab, ")");
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

std::vector<float> finite_floats(const json& obj, std::string_view key, std::string_view owner, size_t max) {
  const json& a = json_array(obj, key, owner, max);
  std::vector<float> v;
  v.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_number()) fail(owner, ": ", key, "[", i, "] must be a number");
    const double x = a[i].get<double>();
    if (!std::isfinite(x) || std::fabs(x) > 3.0e38) fail(owner, ": ", key, "[", i, "] is not a finite float");
    v.push_back(static_cast<float>(x));
  }
  return v;
}

bool is_scalar(const json& v) { return v.is_string() || v.is_number() || v.is_boolean() || v.is_null(); }

// Provenance only, but it is copied and printed: two levels at most, so no input nests deeply.
void check_source(const json& s, const std::string& owner) {
  if (!s.is_object()) fail(owner, " must be an object");
  json_string(s, "producer", owner);
  if (s.contains("description")) json_string(s, "description", owner);
  for (const auto& [key, value] : s.items()) {
    if (is_scalar(value)) continue;
    if (!value.is_object()) fail(owner, ": \"", key, "\" must be a string, number, boolean or an object of them");
    for (const auto& [k, v] : value.items())
      if (!is_scalar(v)) fail(owner, ": \"", key, ".", k, "\" must be a string, number or boolean");
  }
}

ReferencePosition parse_position(const json& j, int64_t top_k, int64_t vocab, const std::string& owner) {
  if (!j.is_object()) fail(owner, " must be an object");
  ReferencePosition p;
  p.top_ids = token_ids(j, "top_ids", owner, kReferenceMaxTopK, vocab);
  p.top_logits = finite_floats(j, "top_logits", owner, kReferenceMaxTopK);
  if (static_cast<int64_t>(p.top_ids.size()) != top_k || static_cast<int64_t>(p.top_logits.size()) != top_k)
    fail(owner, ": top_ids and top_logits must hold top_k = ", top_k, " entries");
  for (int64_t i = 1; i < top_k; ++i) {
    if (p.top_logits[i] > p.top_logits[i - 1]) fail(owner, ": top_logits must be largest first");
    for (int64_t k = 0; k < i; ++k)
      if (p.top_ids[k] == p.top_ids[i]) fail(owner, ": token ", p.top_ids[i], " appears twice in top_ids");
  }
  const double scale = json_number(j, "row_scale", owner);
  if (!std::isfinite(scale) || scale <= 0 || scale > 3.0e38) fail(owner, ": row_scale must be a positive finite number");
  p.row_scale = static_cast<float>(scale);
  for (float l : p.top_logits)
    if (std::fabs(l) > p.row_scale) fail(owner, ": row_scale (the row's largest |logit|) is smaller than a top logit");
  return p;
}

ReferencePrompt parse_prompt(const json& j, int64_t top_k, int64_t vocab, const std::string& owner) {
  if (!j.is_object()) fail(owner, " must be an object");
  ReferencePrompt p;
  p.text = json_string_or(j, "text", "", owner);
  p.ids = token_ids(j, "ids", owner, kReferenceMaxPromptTokens, vocab);
  if (p.ids.empty()) fail(owner, ": ids is empty");
  const json& positions = json_array(j, "positions", owner, kReferenceMaxPromptTokens);
  if (positions.size() != p.ids.size())
    fail(owner, ": ", positions.size(), " positions for ", p.ids.size(), " ids (one per id is needed)");
  for (size_t i = 0; i < positions.size(); ++i)
    p.positions.push_back(parse_position(positions[i], top_k, vocab, owner + " position " + std::to_string(i)));
  p.greedy_ids = token_ids(j, "greedy_ids", owner, kReferenceMaxGreedyTokens, vocab);
  p.greedy_margins = finite_floats(j, "greedy_margins", owner, kReferenceMaxGreedyTokens);
  if (p.greedy_margins.size() != p.greedy_ids.size())
    fail(owner, ": greedy_margins must hold one margin per greedy id (", p.greedy_ids.size(), ")");
  for (size_t i = 0; i < p.greedy_margins.size(); ++i)
    if (p.greedy_margins[i] < 0) fail(owner, ": greedy_margins[", i, "] is negative");
  // The first greedy token is the last position's argmax; a block where it is not was not made
  // from one forward pass (an exact tie may have been broken either way).
  const ReferencePosition& last = p.positions.back();
  if (!p.greedy_ids.empty() && p.greedy_ids[0] != last.top_ids[0] &&
      (top_k < 2 || last.top_logits[0] != last.top_logits[1]))
    fail(owner, ": greedy_ids[0] = ", p.greedy_ids[0], " is not the last position's top token ", last.top_ids[0]);
  return p;
}

}  // namespace

ReferenceBlock ReferenceBlock::parse(std::string_view text, int64_t vocab, std::string_view what) {
  const std::string owner = "self-test reference (" + std::string(what) + ")";
  const json j = parse_json(text, owner);
  if (!j.is_object()) fail(owner, ": must be a JSON object");
  const std::string format = json_string(j, "format", owner);
  if (format != "sparq.selftest_reference") fail(owner, ": format is \"", format, "\", expected \"sparq.selftest_reference\"");
  const int64_t version = json_int(j, "version", owner);
  if (version != kReferenceVersion)
    fail(owner, ": version ", version, " is not supported (this sparq reads version ", kReferenceVersion, ")");
  ReferenceBlock b;
  b.source = json_field(j, "source", owner);
  check_source(b.source, owner + " source");
  b.top_k = json_int(j, "top_k", owner);
  // Two at least: a top-1 near-tie needs the reference's second logit.
  if (b.top_k < 2 || b.top_k > kReferenceMaxTopK || b.top_k > vocab)
    fail(owner, ": top_k = ", b.top_k, " must be in [2, ", std::min<int64_t>(kReferenceMaxTopK, vocab), "]");
  const json& prompts = json_array(j, "prompts", owner, kReferenceMaxPrompts);
  if (prompts.empty()) fail(owner, ": \"prompts\" is empty");
  for (size_t i = 0; i < prompts.size(); ++i)
    b.prompts.push_back(parse_prompt(prompts[i], b.top_k, vocab, owner + " prompt " + std::to_string(i)));
  return b;
}

std::string ReferenceBlock::to_json() const {
  json prompts = json::array();
  for (const ReferencePrompt& p : this->prompts) {
    json positions = json::array();
    for (const ReferencePosition& r : p.positions)
      positions.push_back({{"top_ids", r.top_ids}, {"top_logits", r.top_logits}, {"row_scale", r.row_scale}});
    prompts.push_back({{"text", p.text},
                       {"ids", p.ids},
                       {"positions", std::move(positions)},
                       {"greedy_ids", p.greedy_ids},
                       {"greedy_margins", p.greedy_margins}});
  }
  const json j = {{"format", "sparq.selftest_reference"},
                  {"version", kReferenceVersion},
                  {"source", source},
                  {"top_k", top_k},
                  {"prompts", std::move(prompts)}};
  return j.dump();
}

std::optional<ReferenceBlock> read_reference_block(const ModelFile& file) {
  const auto bytes = file.blob(kReferenceBlobName);
  if (!bytes) return std::nullopt;
  const std::string_view text(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  return ReferenceBlock::parse(text, model_config(file).vocab, file.path().empty() ? "model file" : file.path());
}

}  // namespace sparq
