#include <catch2/catch.hpp>

#include "runtime/core/error.h"
#include "runtime/model_file/architecture.h"

using namespace sparq;
using nlohmann::json;

namespace {
json llama() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 64}, {"intermediate_size", 128},
          {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"vocab_size", 100}};
}
}  // namespace

TEST_CASE("llama3 rope scaling is read from rope_scaling and from transformers 5's rope_parameters", "[architecture]") {
  json a = llama();
  a["rope_theta"] = 500000.0;
  a["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  json b = llama();
  b["rope_parameters"] = a["rope_scaling"];
  b["rope_parameters"]["rope_theta"] = 500000.0;
  for (const json& c : {a, b}) {
    ModelConfig m = parse_model_config(c);
    CHECK(m.rope_theta == 500000.0);
    CHECK(m.rope_scaling.type == "llama3");
    CHECK(m.rope_scaling.factor == 8.0);
    CHECK(m.rope_scaling.original_max_position == 8192);
    CHECK(m.head_dim == 16);
    CHECK_FALSE(m.tie_embeddings);
  }
  json d = llama();
  d["rope_parameters"] = {{"rope_theta", 10000.0}, {"rope_type", "default"}};
  CHECK(parse_model_config(d).rope_scaling.type.empty());
  json e = llama();
  e["rope_parameters"] = {{"rope_theta", 10000.0}, {"rope_type", "yarn"}, {"factor", 4.0}};
  CHECK_THROWS_WITH(parse_model_config(e), Catch::Contains("rope_parameters type \"yarn\""));
}

TEST_CASE("the context length is max_position_embeddings, 0 when the config has none", "[architecture]") {
  json c = llama();
  CHECK(parse_model_config(c).max_position == 0);
  c["max_position_embeddings"] = 4096;
  CHECK(parse_model_config(c).max_position == 4096);
}

TEST_CASE("Gemma 2 defaults follow the architecture", "[architecture]") {
  json c = llama();
  c["architectures"] = {"Gemma2ForCausalLM"};
  c["head_dim"] = 32;
  c["sliding_window"] = 8;
  c["attn_logit_softcapping"] = 50.0;
  ModelConfig m = parse_model_config(c);
  CHECK(m.family == ArchFamily::Gemma2);
  CHECK(m.tie_embeddings);
  CHECK(m.sliding_window == 8);
  CHECK(m.query_pre_attn_scalar == 32);
  auto t = expected_tensors(m);
  CHECK(std::count_if(t.begin(), t.end(), [](const ExpectedTensor& e) { return e.name.ends_with("pre_feedforward_layernorm.weight"); }) == 2);
  CHECK(std::none_of(t.begin(), t.end(), [](const ExpectedTensor& e) { return e.name == "lm_head.weight"; }));
}

TEST_CASE("configs sparq cannot run are refused by name", "[architecture]") {
  json c = llama();
  c["architectures"] = {"MixtralForCausalLM"};
  CHECK_THROWS_WITH(parse_model_config(c), Catch::Contains("MixtralForCausalLM is not supported"));
  json d = llama();
  d.erase("hidden_size");
  CHECK_THROWS_WITH(parse_model_config(d), Catch::Contains("hidden_size"));
  json e = llama();
  e["num_key_value_heads"] = 3;
  CHECK_THROWS_WITH(parse_model_config(e), Catch::Contains("multiple"));
  json f = llama();
  f["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  CHECK_THROWS_WITH(parse_model_config(f), Catch::Contains("yarn"));
  json g = llama();
  g["vocab_size"] = -5;
  CHECK_THROWS_WITH(parse_model_config(g), Catch::Contains("vocab_size"));
}
