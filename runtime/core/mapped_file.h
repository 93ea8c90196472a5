// Read-only memory map of a whole file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace sparq {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

  // Drops the pages of [offset, offset+len) from this process's resident set (they stay in the
  // page cache); streaming readers call it so that RSS stays at one tensor, not the whole file.
  void release(uint64_t offset, uint64_t len) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// Drops the whole pages inside [p, p+len) of any read-only file mapping from the resident set.
void release_mapped_range(const uint8_t* p, uint64_t len);

// Whole file into memory (small files: JSON configs, tokenizer files).
std::string read_text_file(const std::string& path);

}  // namespace sparq
