// Hugging Face directory -> .sparq file, streaming tensor by tensor.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sparq {

struct ConvertOptions {
  std::string input_dir;
  std::string output_path;
  bool verify = false;  // re-open the output and check every tensor against the source
  // Opt-in and lossy: an unquantized output head (Gemma's is the tied BF16 embedding, a third of
  // the bytes a decode step reads) is stored as W8A8 INT8 (per output row, dynamic per token).
  bool int8_head = false;
  // A self-test reference to embed (runtime/model_file/reference_block.h): the JSON text of one,
  // validated against the model's vocabulary, or a function that makes it from the complete
  // temporary file (sparq's CPU backend running it). At most one of the two.
  std::string reference_json = {};
  std::string reference_origin = {};  // names reference_json in messages (its file name)
  std::function<std::string(const std::string& temp_path)> make_reference = {};
};

// Progress events: a phase ("convert", "verify"), bytes done and total, the current tensor.
using ConvertProgress = std::function<void(const std::string& phase, uint64_t done, uint64_t total, const std::string& tensor)>;

struct ConvertReport {
  std::string architecture;
  std::string scheme_summary;
  size_t tensors = 0;
  uint64_t file_bytes = 0;
  std::vector<std::string> notes;
  bool verified = false;
  std::string reference;  // the embedded self-test reference, summarized; empty without one
};

// Writes into a temporary file beside the output and renames it when complete; `on_temp_file` is
// told the temporary path (a signal handler can remove it). Throws sparq::Error; on any failure no
// output file is created or replaced.
ConvertReport convert_checkpoint(const ConvertOptions& opts, const ConvertProgress& progress = {},
                                 const std::function<void(const std::string&)>& on_temp_file = {});

inline constexpr const char* kConverterVersion = "sparq-convert 0.1.0";

}  // namespace sparq
