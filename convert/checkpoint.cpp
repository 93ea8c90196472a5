#include "convert/checkpoint.h"

#include <algorithm>
#include <filesystem>

#include "runtime/core/error.h"
#include "runtime/core/json_fields.h"

namespace sparq {

namespace fs = std::filesystem;
using nlohmann::json;

HfCheckpoint::HfCheckpoint(const std::string& dir) : dir_(dir) {
  if (!fs::is_directory(dir)) fail(dir, " is not a directory");
  const fs::path root(dir);
  if (!fs::exists(root / "config.json")) fail(dir, " has no config.json (not a Hugging Face model directory?)");
  config_text_ = read_text_file((root / "config.json").string());
  config_ = parse_json(config_text_, "config.json");
  if (!config_.is_object()) fail("config.json is not a JSON object");

  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  const fs::path index_path = root / "model.safetensors.index.json";
  if (fs::exists(index_path)) {
    json index = parse_json(read_text_file(index_path.string()), "model.safetensors.index.json");
    const json& wm = json_field(index, "weight_map", "model.safetensors.index.json");
    if (!wm.is_object()) fail("model.safetensors.index.json: weight_map must be an object");
    for (auto it = wm.begin(); it != wm.end(); ++it) {
      if (!it->is_string()) fail("model.safetensors.index.json: shard of ", it.key(), " is not a file name");
      const std::string shard = it->get<std::string>();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "..")
        fail("model.safetensors.index.json: shard name '", shard, "' must be a plain file name");
      weight_map[it.key()] = shard;
      if (std::find(shard_names.begin(), shard_names.end(), shard) == shard_names.end()) shard_names.push_back(shard);
    }
    for (const auto& s : shard_names)
      if (!fs::exists(root / s)) fail("missing shard ", s, " (listed in model.safetensors.index.json)");
  } else if (fs::exists(root / "model.safetensors")) {
    shard_names.push_back("model.safetensors");
  } else {
    fail(dir, " has no model.safetensors and no model.safetensors.index.json");
  }

  for (const auto& s : shard_names) {
    shards_.push_back(std::make_unique<SafetensorsFile>((root / s).string()));
    const SafetensorsFile& f = *shards_.back();
    for (const auto& t : f.header().tensors) {
      if (!weight_map.empty()) {
        auto it = weight_map.find(t.name);
        if (it == weight_map.end() || it->second != s) continue;  // the index decides which copy counts
      }
      if (!tensors_.emplace(t.name, SourceTensor{&f, &t}).second) fail("tensor ", t.name, " appears in two shards");
    }
  }
  for (const auto& [name, shard] : weight_map)
    if (!tensors_.count(name)) fail("tensor ", name, " is listed in the index for ", shard, " but is not in that file");
}

const SourceTensor* HfCheckpoint::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const SourceTensor& HfCheckpoint::get(const std::string& name) const {
  const SourceTensor* t = find(name);
  if (!t) fail("checkpoint has no tensor ", name);
  return *t;
}

}  // namespace sparq
