// A Hugging Face model directory: config.json, one or more safetensors shards (through
// model.safetensors.index.json when sharded), tokenizer and generation files.
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "convert/safetensors.h"

namespace sparq {

struct SourceTensor {
  const SafetensorsFile* file;
  const SafetensorInfo* info;
  std::span<const uint8_t> data() const { return file->data(*info); }
  // Drops the tensor's pages from the resident set once consumed.
  void release() const { file->map().release(info->begin, info->end - info->begin); }
};

class HfCheckpoint {
 public:
  explicit HfCheckpoint(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  const std::string& config_text() const { return config_text_; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const { return shards_; }
  // Every tensor across all shards, by name (sorted).
  const std::map<std::string, SourceTensor>& tensors() const { return tensors_; }
  const SourceTensor* find(const std::string& name) const;
  const SourceTensor& get(const std::string& name) const;  // throws naming the tensor

 private:
  std::string dir_;
  std::string config_text_;
  nlohmann::json config_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, SourceTensor> tensors_;
};

}  // namespace sparq
