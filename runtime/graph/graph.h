// The op graph a model builder produces and a backend runs: a short list of ops over activation
// matrices. Every value is [rows, width] in f32, where rows is the number of tokens in the batch
// (or, after a Logits op, the number of positions whose logits were asked for). Weights are
// TensorViews (into the model file's mmap) and LinearWeights descriptions made once by the model
// builder; a backend prepares them once before the first run.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "runtime/graph/linear_weights.h"
#include "runtime/model_file/tensor_view.h"

namespace sparq {

using ValueId = int32_t;

// Token ids of the batch -> rows of the table, times `scale` (Gemma: sqrt(hidden) rounded to the
// activation dtype; 1 otherwise).
struct EmbeddingOp {
  TensorView table;  // [vocab, hidden], BF16/F16/F32
  float scale = 1.0f;
  ValueId out = -1;
};

// x̂ = x * rsqrt(mean(x²) + eps). OffsetOne (Gemma): y = x̂ * (1 + w), in f32. Plain (Llama): y = w * x̂.
enum class NormForm : uint8_t { OffsetOne, Plain };
struct RmsNormOp {
  TensorView weight;  // [width]
  float eps = 1e-6f;
  NormForm form = NormForm::Plain;
  ValueId in = -1, out = -1;
};

// y = x Wᵀ (+ bias) under the Linear's storage and activation-quantization scheme.
struct LinearOp {
  LinearWeights linear;
  ValueId in = -1, out = -1;
};

// Rotary embedding, NeoX half-split: dims i and i + head_dim/2 form a pair rotated by pos * inv_freq[i].
// inv_freq already carries any frequency scaling (llama3), so backends only apply it.
struct RopeOp {
  int64_t heads = 0, head_dim = 0;
  std::vector<float> inv_freq;  // head_dim / 2
  ValueId in = -1, out = -1;
};

// Causal grouped-query attention against the paged KV cache: the batch's k and v rows are stored at
// their positions first, then each query attends to keys 0..pos (within `sliding_window` when > 0).
// score = (q·k) * scale; if softcap > 0: score = softcap * tanh(score / softcap); then the mask; softmax in f32.
struct AttentionOp {
  int64_t layer = 0;  // index into the KV cache
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  float scale = 1.0f, softcap = 0.0f;
  int64_t sliding_window = 0;  // keys j with i - window < j <= i; 0 = unlimited
  ValueId q = -1, k = -1, v = -1, out = -1;
};

// y = act(gate) * up.
enum class GateActivation : uint8_t { GeluTanh, Silu };
struct GatedActivationOp {
  GateActivation activation = GateActivation::Silu;
  ValueId gate = -1, up = -1, out = -1;
};

struct AddOp {
  ValueId a = -1, b = -1, out = -1;
};

// y = cap * tanh(x / cap).
struct SoftCapOp {
  float cap = 0.0f;
  ValueId in = -1, out = -1;
};

// The output projection, computed only for the rows the batch asks logits for (all positions of a
// chunk, or its last one). Its output has one row per requested position.
struct LogitsOp {
  LinearWeights linear;
  ValueId in = -1, out = -1;
};

using Op = std::variant<EmbeddingOp, RmsNormOp, LinearOp, RopeOp, AttentionOp, GatedActivationOp, AddOp, SoftCapOp,
                        LogitsOp>;

// Shapes the KV cache must have for this graph.
struct KvShape {
  int64_t layers = 0, kv_heads = 0, head_dim = 0;
};

struct Graph {
  std::vector<int64_t> widths;  // per value
  std::vector<std::string> names;
  std::vector<Op> ops;
  ValueId logits = -1;  // the graph's result: [requested rows, vocab]
  KvShape kv;
  // Index of the last op reading each value (the op writing it when nothing reads it); filled by finish().
  std::vector<int32_t> last_use;

  ValueId add_value(int64_t width, std::string name);
  // Checks that every value is written once before it is read and widths agree; fills last_use.
  // Throws sparq::Error naming the op.
  void finish();
};

// Values an op reads and the one it writes.
std::vector<ValueId> op_inputs(const Op& op);
ValueId op_output(const Op& op);
const char* op_name(const Op& op);

}  // namespace sparq
