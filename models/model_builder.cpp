#include "models/model_builder.h"

#include "runtime/core/error.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

ModelConfig model_config(const ModelFile& file) {
  const nlohmann::json& c = file.metadata().at("config");
  ModelConfig cfg = parse_model_config(c);
  // transformers >= 5 may write {"rope_parameters": {"rope_theta": ..., "rope_type": ...}} instead
  // of rope_theta / rope_scaling.
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object() && !c.contains("rope_theta")) {
    const nlohmann::json& rp = c["rope_parameters"];
    if (rp.contains("rope_theta") && rp["rope_theta"].is_number()) cfg.rope_theta = rp["rope_theta"].get<double>();
    const std::string type = rp.value("rope_type", std::string("default"));
    if (type == "llama3" && !c.contains("rope_scaling")) {
      cfg.rope_scaling.type = type;
      cfg.rope_scaling.factor = rp.at("factor").get<double>();
      cfg.rope_scaling.low_freq_factor = rp.at("low_freq_factor").get<double>();
      cfg.rope_scaling.high_freq_factor = rp.at("high_freq_factor").get<double>();
      cfg.rope_scaling.original_max_position = rp.at("original_max_position_embeddings").get<int64_t>();
    } else if (type != "default" && type != "llama3") {
      fail("config.json: rope_parameters type \"", type, "\" is not supported (supported: default, llama3)");
    }
  }
  return cfg;
}

LinearSpec linear_spec(const ModelFile& file, const std::string& module, int64_t in, int64_t out) {
  LinearSpec s;
  s.module = module;
  s.weight = module + ".weight";
  s.in = in;
  s.out = out;
  const nlohmann::json& linears = file.metadata().contains("linears") ? file.metadata()["linears"] : nlohmann::json();
  if (linears.is_object() && linears.contains(module)) {
    s.scheme = linear_scheme_from_json(linears[module], module);
  } else {
    // Unquantized Linear not listed: stored as in the checkpoint.
    s.scheme.weight_dtype = file.tensor(s.weight).dtype;
    s.scheme.weight_strategy = "none";
  }
  return s;
}

Graph build_model_graph(const ModelFile& file) {
  const ModelConfig cfg = model_config(file);
  Graph g = cfg.family == ArchFamily::Gemma2 ? build_gemma2_graph(file, cfg) : build_llama_graph(file, cfg);
  g.finish();
  return g;
}

}  // namespace sparq
