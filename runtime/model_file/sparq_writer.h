// Writes a .sparq file tensor by tensor into a temporary file beside the destination, and renames
// it into place only when complete: an interrupted conversion never leaves a valid-looking file.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "runtime/core/hashing.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

class SparqWriter {
 public:
  explicit SparqWriter(std::string final_path);
  ~SparqWriter();  // removes the temporary file unless finish() succeeded
  SparqWriter(const SparqWriter&) = delete;
  SparqWriter& operator=(const SparqWriter&) = delete;

  const std::string& temp_path() const { return temp_path_; }

  // Streams one tensor: begin, any number of write() calls totalling exactly the layout's bytes, end.
  void begin_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape, Layout layout);
  void write(std::span<const uint8_t> bytes);
  void end_tensor();

  void add_blob(const std::string& name, std::span<const uint8_t> bytes);

  // Appends metadata and index, writes the header, syncs, and renames onto the destination.
  void finish(const nlohmann::json& metadata);
  // finish() in two halves: seal() makes the temporary file complete and valid (it can be opened
  // and run from temp_path()), commit() renames it into place. Between them, unseal() drops the
  // metadata and index again so more blobs can be added before the next seal().
  void seal(const nlohmann::json& metadata);
  void unseal();
  void commit();

  uint64_t bytes_written() const { return pos_; }

 private:
  void pad_to_alignment();
  void raw_write(const void* p, size_t n);
  void check_new_name(const std::string& name) const;

  std::string final_path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t pos_ = 0;
  bool finished_ = false;
  bool sealed_ = false;
  uint64_t data_end_ = 0;  // where the metadata of a sealed file starts
  std::vector<TensorEntry> tensors_;
  std::vector<BlobEntry> blobs_;
  // The tensor being streamed.
  bool in_tensor_ = false;
  uint64_t expected_ = 0;
  uint64_t written_ = 0;
  std::unique_ptr<Xxh3Stream> hash_;
};

}  // namespace sparq
