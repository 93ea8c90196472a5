// Opens a .sparq file: maps it, validates everything before use, and hands out tensor views.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/mapped_file.h"
#include "runtime/model_file/tensor_layout.h"
#include "runtime/model_file/tensor_view.h"

namespace sparq {

struct TensorEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // logical shape, e.g. [out, in] for a weight whatever its layout
  Layout layout;
  uint64_t offset;  // absolute, page aligned
  uint64_t bytes;
  uint64_t checksum;  // XXH3-64 of the bytes
};

struct BlobEntry {
  std::string name;  // e.g. "tokenizer.json", "tokenizer.model", "tokenizer_config.json"
  uint64_t offset;
  uint64_t bytes;
  uint64_t checksum;
};

class ModelFile {
 public:
  // Maps and validates; throws sparq::Error naming the problem for anything corrupt or truncated.
  static ModelFile open(const std::string& path);
  // Validates a file image held in memory (the caller keeps it alive); used by tests and fuzzing.
  static ModelFile from_bytes(std::span<const uint8_t> image);

  const nlohmann::json& metadata() const { return metadata_; }
  const std::vector<TensorEntry>& tensors() const { return tensors_; }
  const std::vector<BlobEntry>& blobs() const { return blobs_; }
  const TensorEntry* find_tensor(std::string_view name) const;
  const TensorEntry& tensor(std::string_view name) const;  // throws when absent
  TensorView view(std::string_view name) const;             // throws when absent
  std::span<const uint8_t> data(const TensorEntry& t) const { return image_.subspan(t.offset, t.bytes); }
  std::optional<std::span<const uint8_t>> blob(std::string_view name) const;
  uint64_t file_bytes() const { return image_.size(); }
  // Drops a tensor's pages from the resident set (they stay in the page cache).
  void release(const TensorEntry& t) const {
    if (map_) map_->release(t.offset, t.bytes);
  }
  const std::string& path() const { return path_; }

  // Recomputes every checksum; reports progress as (bytes done, bytes total); throws on a mismatch.
  void verify_checksums(const std::function<void(uint64_t, uint64_t)>& progress = {}) const;

 private:
  std::shared_ptr<MappedFile> map_;
  std::span<const uint8_t> image_;
  std::string path_;
  nlohmann::json metadata_;
  std::vector<TensorEntry> tensors_;
  std::vector<BlobEntry> blobs_;
};

}  // namespace sparq
