#include "runtime/model_file/sparq_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "runtime/core/checked_math.h"
#include "runtime/core/error.h"
#include "runtime/model_file/sparq_format.h"

namespace sparq {

namespace {
nlohmann::json index_json(const std::vector<TensorEntry>& tensors, const std::vector<BlobEntry>& blobs) {
  nlohmann::json index{{"tensors", nlohmann::json::array()}, {"blobs", nlohmann::json::array()}};
  for (const auto& t : tensors)
    index["tensors"].push_back({{"name", t.name},
                                {"dtype", dtype_name(t.dtype)},
                                {"shape", t.shape},
                                {"layout", layout_name(t.layout)},
                                {"offset", t.offset},
                                {"bytes", t.bytes},
                                {"xxh3", hex64(t.checksum)}});
  for (const auto& b : blobs)
    index["blobs"].push_back({{"name", b.name}, {"offset", b.offset}, {"bytes", b.bytes}, {"xxh3", hex64(b.checksum)}});
  return index;
}
}  // namespace

SparqWriter::SparqWriter(std::string final_path) : final_path_(std::move(final_path)) {
  temp_path_ = final_path_ + ".partial-" + std::to_string(::getpid());
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create ", temp_path_, ": ", std::strerror(errno));
  // The header stays zero (invalid magic) until the very end.
  pad_to_alignment();
}

SparqWriter::~SparqWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(temp_path_.c_str());
}

void SparqWriter::raw_write(const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd_, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("cannot write ", temp_path_, ": ", std::strerror(errno));
    }
    c += w;
    n -= static_cast<size_t>(w);
    pos_ += static_cast<uint64_t>(w);
  }
}

void SparqWriter::pad_to_alignment() {
  static const char zeros[kSparqAlignment] = {};
  uint64_t target = align_up(pos_ == 0 ? 1 : pos_, kSparqAlignment);
  if (target > pos_) raw_write(zeros, target - pos_);
}

void SparqWriter::check_new_name(const std::string& name) const {
  if (name.empty()) fail("a tensor or blob needs a name");
  for (const auto& t : tensors_)
    if (t.name == name) fail("tensor '", name, "' written twice");
  for (const auto& b : blobs_)
    if (b.name == name) fail("blob '", name, "' written twice");
}

void SparqWriter::begin_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape, Layout layout) {
  if (in_tensor_) fail("tensor '", tensors_.back().name, "' was not ended");
  if (sealed_ || finished_) fail("tensor '", name, "' added to a sealed file");
  check_new_name(name);
  auto size = layout_bytes(layout, dtype, shape);
  if (!size.bytes) fail("tensor '", name, "': ", size.error);
  pad_to_alignment();
  tensors_.push_back({name, dtype, std::move(shape), layout, pos_, *size.bytes, 0});
  in_tensor_ = true;
  expected_ = *size.bytes;
  written_ = 0;
  hash_ = std::make_unique<Xxh3Stream>();
}

void SparqWriter::write(std::span<const uint8_t> bytes) {
  if (!in_tensor_) fail("write() outside a tensor");
  if (written_ + bytes.size() > expected_)
    fail("tensor '", tensors_.back().name, "': more bytes than its layout holds (", expected_, ")");
  raw_write(bytes.data(), bytes.size());
  hash_->update(bytes);
  written_ += bytes.size();
}

void SparqWriter::end_tensor() {
  if (!in_tensor_) fail("end_tensor() outside a tensor");
  if (written_ != expected_)
    fail("tensor '", tensors_.back().name, "': wrote ", written_, " bytes, layout needs ", expected_);
  tensors_.back().checksum = hash_->digest();
  in_tensor_ = false;
}

void SparqWriter::add_blob(const std::string& name, std::span<const uint8_t> bytes) {
  if (in_tensor_) fail("blob '", name, "' added inside tensor '", tensors_.back().name, "'");
  if (sealed_ || finished_) fail("blob '", name, "' added to a sealed file");
  check_new_name(name);
  pad_to_alignment();
  blobs_.push_back({name, pos_, bytes.size(), xxh3_64(bytes)});
  raw_write(bytes.data(), bytes.size());
}

void SparqWriter::seal(const nlohmann::json& metadata) {
  if (in_tensor_) fail("tensor '", tensors_.back().name, "' was not ended");
  if (finished_ || sealed_) fail("the file is already sealed");
  const std::string meta = metadata.dump();
  const std::string index = index_json(tensors_, blobs_).dump();
  if (meta.size() > kSparqMaxJsonBytes || index.size() > kSparqMaxJsonBytes) fail("metadata or index too large");

  pad_to_alignment();
  data_end_ = pos_;
  SparqHeader h{};
  std::memcpy(h.magic, kSparqMagic, sizeof h.magic);
  h.version = kSparqVersion;
  h.header_bytes = sizeof(SparqHeader);
  h.metadata_offset = pos_;
  h.metadata_bytes = meta.size();
  raw_write(meta.data(), meta.size());
  h.index_offset = pos_;
  h.index_bytes = index.size();
  raw_write(index.data(), index.size());
  h.file_bytes = pos_;
  Xxh3Stream json_hash;
  json_hash.update(as_bytes(meta));
  json_hash.update(as_bytes(index));
  h.json_checksum = json_hash.digest();

  // Data first, then the header that makes the file valid.
  if (::fsync(fd_) != 0) fail("cannot sync ", temp_path_, ": ", std::strerror(errno));
  if (::pwrite(fd_, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h))
    fail("cannot write the header of ", temp_path_, ": ", std::strerror(errno));
  if (::fsync(fd_) != 0) fail("cannot sync ", temp_path_, ": ", std::strerror(errno));
  sealed_ = true;
}

void SparqWriter::unseal() {
  if (!sealed_ || finished_) fail("unseal() needs a sealed, uncommitted file");
  // Metadata and index go; the header is rewritten by the next seal().
  if (::ftruncate(fd_, static_cast<off_t>(data_end_)) != 0) fail("cannot truncate ", temp_path_, ": ", std::strerror(errno));
  if (::lseek(fd_, static_cast<off_t>(data_end_), SEEK_SET) < 0) fail("cannot seek in ", temp_path_, ": ", std::strerror(errno));
  pos_ = data_end_;
  sealed_ = false;
}

void SparqWriter::commit() {
  if (!sealed_ || finished_) fail("commit() needs a sealed, uncommitted file");
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail("cannot close ", temp_path_, ": ", std::strerror(errno));
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0)
    fail("cannot rename ", temp_path_, " to ", final_path_, ": ", std::strerror(errno));
  finished_ = true;
}

void SparqWriter::finish(const nlohmann::json& metadata) {
  seal(metadata);
  commit();
}

}  // namespace sparq
