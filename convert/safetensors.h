// Our own safetensors reader: the header is parsed and checked against the file size before any
// tensor byte is touched, so a header that lies gets an error, never an out-of-bounds read.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/core/dtype.h"
#include "runtime/core/mapped_file.h"

namespace sparq {

struct SafetensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin;  // absolute file offsets of the data, end exclusive
  uint64_t end;
};

inline constexpr uint64_t kMaxSafetensorsHeader = 100ull << 20;  // as the reference reader

// Parses and validates the header of a safetensors file of `file_size` bytes whose first bytes are
// `prefix` (at least the 8-byte length and the header). Throws sparq::Error naming the problem.
struct SafetensorsHeader {
  std::vector<SafetensorInfo> tensors;  // sorted by data offset
  std::map<std::string, std::string> metadata;
};
SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> prefix, uint64_t file_size);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return map_.path(); }
  const SafetensorsHeader& header() const { return header_; }
  const SafetensorInfo* find(const std::string& name) const;
  std::span<const uint8_t> data(const SafetensorInfo& t) const { return map_.bytes().subspan(t.begin, t.end - t.begin); }
  const MappedFile& map() const { return map_; }

 private:
  MappedFile map_;
  SafetensorsHeader header_;
  std::map<std::string, size_t> by_name_;
};

}  // namespace sparq
