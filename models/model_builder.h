// Model file -> op graph, one builder per architecture (gemma2/, llama/). Backends never look at
// the architecture; everything they need is in the graph.
#pragma once
#include <string>

#include "runtime/graph/graph.h"
#include "runtime/model_file/architecture.h"

namespace sparq {

class ModelFile;

// Dispatches on the file's architecture; throws sparq::Error for an unsupported one.
Graph build_model_graph(const ModelFile& file);

// Builders share these.
// The Linear `module` [out, in] with weight `module.weight`, described from the file's scheme.
LinearWeights linear_weights(const ModelFile& file, const std::string& module, int64_t in, int64_t out);
Graph build_gemma2_graph(const ModelFile& file, const ModelConfig& cfg);
Graph build_llama_graph(const ModelFile& file, const ModelConfig& cfg);

}  // namespace sparq
