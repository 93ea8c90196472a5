// The self-test reference a model file may carry (`sparq convert --reference`): a few prompts, the
// reference implementation's top-k logits at every prompt position and its greedy continuation, and
// where they came from. `sparq selftest` runs the prompts on a backend and compares. Stored as the
// JSON blob kReferenceBlobName; specified in docs/FORMAT.md.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sparq {

class ModelFile;

inline constexpr char kReferenceBlobName[] = "selftest_reference.json";
inline constexpr int64_t kReferenceVersion = 1;
// Bounds that keep a block small and its checks fast, whoever wrote it.
// Running a block keeps a prompt's logits rows (vocab floats each), so prompts stay short.
inline constexpr int64_t kReferenceMaxTopK = 64;
inline constexpr int64_t kReferenceMaxPrompts = 16;
inline constexpr int64_t kReferenceMaxPromptTokens = 256;
inline constexpr int64_t kReferenceMaxGreedyTokens = 128;

// The reference's view of one position: its k largest logits (largest first) and the largest
// |logit| of the whole row, the scale errors are measured against.
struct ReferencePosition {
  std::vector<int32_t> top_ids;
  std::vector<float> top_logits;
  float row_scale = 0;
};

struct ReferencePrompt {
  std::string text;  // informative; the ids are what runs
  std::vector<int32_t> ids;
  std::vector<ReferencePosition> positions;  // one per id: the logits after reading ids[0..p]
  std::vector<int32_t> greedy_ids;           // argmax decoding from the end of the prompt
  std::vector<float> greedy_margins;         // top1 - top2 of the logits that chose each greedy id
};

struct ReferenceBlock {
  // Who computed it: {"producer": "transformers" | "sparq-cpu", "description": ..., ...}: strings,
  // numbers and booleans, or objects of them (e.g. "versions").
  nlohmann::json source;
  int64_t top_k = 0;
  std::vector<ReferencePrompt> prompts;

  // Parses and validates against the model's vocabulary; throws sparq::Error naming the field
  // (`what` names the block's origin in messages, e.g. a file name).
  static ReferenceBlock parse(std::string_view text, int64_t vocab, std::string_view what);
  std::string to_json() const;
};

// The file's block, validated against its config's vocabulary; nullopt when it has none.
std::optional<ReferenceBlock> read_reference_block(const ModelFile& file);

}  // namespace sparq
