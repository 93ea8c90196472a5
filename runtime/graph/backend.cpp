#include "runtime/graph/backend.h"

namespace sparq {

std::vector<std::string> unsupported_ops(const Backend& backend, const Graph& graph) {
  std::vector<std::string> out;
  for (const Op& op : graph.ops)
    if (OpSupport s = backend.supports(op); !s.ok) out.push_back(std::string(op_name(op)) + ": " + s.why);
  return out;
}

KvCacheGeometry kv_cache_geometry(const Graph& graph, int64_t block_tokens, DType dtype) {
  KvCacheGeometry g;
  g.layers = graph.kv.layers;
  g.kv_heads = graph.kv.kv_heads;
  g.head_dim = graph.kv.head_dim;
  g.block_tokens = block_tokens;
  g.dtype = dtype;
  return g;
}

}  // namespace sparq
