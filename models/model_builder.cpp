#include "models/model_builder.h"

#include "runtime/model_file/sparq_reader.h"

namespace sparq {

LinearWeights linear_weights(const ModelFile& file, const std::string& module, int64_t in, int64_t out) {
  const std::string weight = module + ".weight";
  LinearScheme scheme;
  const nlohmann::json& linears = file.metadata().contains("linears") ? file.metadata()["linears"] : nlohmann::json();
  if (linears.is_object() && linears.contains(module)) {
    scheme = linear_scheme_from_json(linears[module], module);
  } else {
    // Unquantized Linear not listed: stored as in the checkpoint.
    scheme.weight_dtype = file.tensor(weight).dtype;
    scheme.weight_strategy = "none";
  }
  return describe_linear(file, module, weight, in, out, scheme);
}

Graph build_model_graph(const ModelFile& file) {
  const ModelConfig cfg = model_config(file);
  Graph g = cfg.family == ArchFamily::Gemma2 ? build_gemma2_graph(file, cfg) : build_llama_graph(file, cfg);
  g.finish();
  return g;
}

}  // namespace sparq
