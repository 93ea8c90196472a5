#include "runtime/model_file/sparq_reader.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "runtime/core/checked_math.h"
#include "runtime/core/error.h"
#include "runtime/core/hashing.h"
#include "runtime/core/json_fields.h"
#include "runtime/model_file/architecture.h"
#include "runtime/model_file/linear_scheme.h"
#include "runtime/model_file/sparq_format.h"

namespace sparq {

using nlohmann::json;

namespace {

uint64_t parse_checksum(const json& e, const std::string& owner) {
  std::string s = json_string(e, "xxh3", owner);
  if (s.size() != 16 || s.find_first_not_of("0123456789abcdef") != std::string::npos)
    fail(owner, ": checksum must be 16 hex digits");
  return std::stoull(s, nullptr, 16);
}

// A region [offset, offset+bytes) that must lie in the data area and start on a page.
void check_region(const std::string& owner, uint64_t offset, uint64_t bytes, uint64_t data_end) {
  if (offset % kSparqAlignment != 0) fail(owner, " starts at ", offset, ", which is not page aligned");
  if (offset < kSparqAlignment) fail(owner, " overlaps the file header");
  auto end = checked_add(offset, bytes);
  if (!end || *end > data_end) fail(owner, " runs past the end of the data area (", offset, " + ", bytes, " > ", data_end, ")");
}

struct Parsed {
  uint32_t version = 0;
  json metadata;
  std::vector<TensorEntry> tensors;
  std::vector<BlobEntry> blobs;
};

Parsed parse_image(std::span<const uint8_t> image) {
  if (image.size() < sizeof(SparqHeader)) fail("not a sparq model file: only ", image.size(), " bytes");
  SparqHeader h;
  std::memcpy(&h, image.data(), sizeof h);
  if (std::memcmp(h.magic, kSparqMagic, sizeof h.magic) != 0) {
    if (std::all_of(h.magic, h.magic + 8, [](char c) { return c == 0; }))
      fail("not a sparq model file: the header is empty (an interrupted conversion?)");
    fail("not a sparq model file (bad magic number)");
  }
  if (h.version > kSparqVersion)
    fail("file format version ", h.version, " is newer than this sparq reads (", kSparqVersion, "); upgrade sparq");
  if (h.version < kSparqOldestVersion) fail("unsupported file format version ", h.version);
  if (h.header_bytes != sizeof(SparqHeader)) fail("corrupt header: header size ", h.header_bytes);
  if (h.file_bytes != image.size())
    fail(h.file_bytes > image.size() ? "file is truncated" : "file has trailing bytes", ": header says ", h.file_bytes,
         " bytes, file has ", image.size());
  auto meta_end = checked_add(h.metadata_offset, h.metadata_bytes);
  auto index_end = checked_add(h.index_offset, h.index_bytes);
  if (!meta_end || !index_end || *meta_end > image.size() || *index_end > image.size() ||
      h.metadata_offset < kSparqAlignment || h.index_offset < *meta_end)
    fail("corrupt header: metadata/index blocks out of bounds");
  if (h.metadata_bytes > kSparqMaxJsonBytes || h.index_bytes > kSparqMaxJsonBytes)
    fail("corrupt header: metadata/index blocks too large");

  auto meta_bytes = image.subspan(h.metadata_offset, h.metadata_bytes);
  auto index_bytes = image.subspan(h.index_offset, h.index_bytes);
  Xxh3Stream hs;
  hs.update(meta_bytes);
  hs.update(index_bytes);
  if (hs.digest() != h.json_checksum) fail("corrupt file: metadata/index checksum mismatch");

  Parsed p;
  p.version = h.version;
  p.metadata = parse_json({reinterpret_cast<const char*>(meta_bytes.data()), meta_bytes.size()}, "metadata");
  json index = parse_json({reinterpret_cast<const char*>(index_bytes.data()), index_bytes.size()}, "tensor index");
  if (!p.metadata.is_object()) fail("metadata is not a JSON object");

  const uint64_t data_end = h.metadata_offset;
  std::unordered_set<std::string> names;
  const json& tensors = json_field(index, "tensors", "tensor index");
  const json& blobs = json_field(index, "blobs", "tensor index");
  if (!tensors.is_array() || !blobs.is_array()) fail("tensor index: tensors and blobs must be lists");
  for (const auto& e : tensors) {
    std::string name = json_string(e, "name", "tensor index entry");
    const std::string owner = "tensor " + name;
    if (name.empty() || !names.insert(name).second) fail("tensor index: empty or duplicate name '", name, "'");
    auto dtype = dtype_from_name(json_string(e, "dtype", owner));
    if (!dtype) fail(owner, ": unknown dtype");
    auto shape = json_int_list(e, "shape", owner);
    if (shape.size() > 8) fail(owner, ": too many dimensions");
    auto layout = layout_from_name(json_string(e, "layout", owner));
    if (!layout) fail(owner, ": unknown layout");
    if (*layout == Layout::Int8K4Tiles && p.version < kSparqTilesVersion)
      fail(owner, ": layout int8_k4_tiles needs file format version ", kSparqTilesVersion, ", the file says ", p.version);
    auto size = layout_bytes(*layout, *dtype, shape);
    if (!size.bytes) fail(owner, ": ", size.error);
    uint64_t offset = json_uint(e, "offset", owner), bytes = json_uint(e, "bytes", owner);
    if (bytes != *size.bytes)
      fail(owner, ": ", bytes, " bytes recorded, but ", dtype_name(*dtype), " ", shape_string(shape), " ",
           layout_name(*layout), " needs ", *size.bytes);
    check_region(owner, offset, bytes, data_end);
    p.tensors.push_back({name, *dtype, std::move(shape), *layout, offset, bytes, parse_checksum(e, owner)});
  }
  for (const auto& e : blobs) {
    std::string name = json_string(e, "name", "blob index entry");
    const std::string owner = "blob " + name;
    if (name.empty() || !names.insert(name).second) fail("tensor index: empty or duplicate name '", name, "'");
    uint64_t offset = json_uint(e, "offset", owner), bytes = json_uint(e, "bytes", owner);
    check_region(owner, offset, bytes, data_end);
    p.blobs.push_back({name, offset, bytes, parse_checksum(e, owner)});
  }

  // No two regions may overlap.
  std::vector<std::pair<uint64_t, uint64_t>> regions;
  std::vector<const std::string*> owners;
  for (const auto& t : p.tensors) regions.emplace_back(t.offset, t.offset + t.bytes);
  for (const auto& b : p.blobs) regions.emplace_back(b.offset, b.offset + b.bytes);
  std::vector<size_t> order(regions.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return regions[a] < regions[b]; });
  auto region_name = [&](size_t i) {
    return i < p.tensors.size() ? p.tensors[i].name : p.blobs[i - p.tensors.size()].name;
  };
  for (size_t k = 1; k < order.size(); ++k)
    if (regions[order[k]].first < regions[order[k - 1]].second)
      fail("corrupt index: ", region_name(order[k - 1]), " and ", region_name(order[k]), " overlap");
  return p;
}

// The tensors must be what the recorded architecture and schemes need.
void validate_model(const Parsed& p) {
  const json& meta = p.metadata;
  if (json_int(meta, "format_version", "metadata") != p.version) fail("metadata: format_version mismatch");
  ModelConfig cfg = parse_model_config(json_field(meta, "config", "metadata"));
  const json& linears = json_field(meta, "linears", "metadata");
  if (!linears.is_object()) fail("metadata: \"linears\" must be an object");

  std::unordered_map<std::string, const TensorEntry*> by_name;
  for (const auto& t : p.tensors) by_name.emplace(t.name, &t);
  auto find = [&](const std::string& n) -> const TensorEntry* {
    auto it = by_name.find(n);
    return it == by_name.end() ? nullptr : it->second;
  };
  for (const auto& e : expected_tensors(cfg)) {
    if (e.linear) {
      const std::string module = e.name.substr(0, e.name.size() - std::string(".weight").size());
      auto it = linears.find(module);
      if (it == linears.end()) fail("metadata: no scheme recorded for linear ", module);
      validate_linear_tensors(module, linear_scheme_from_json(*it, module), e.shape[0], e.shape[1], find);
    } else {
      const TensorEntry* t = find(e.name);
      if (!t) fail("model file lacks tensor ", e.name, " that ", cfg.hf_architecture, " needs");
      if (t->shape != e.shape)
        fail("tensor ", e.name, " has shape ", shape_string(t->shape), ", ", cfg.hf_architecture, " needs ",
             shape_string(e.shape));
      if (!dtype_is_float(t->dtype) || t->layout != Layout::RowMajor || dtype_bits(t->dtype) < 16)
        fail("tensor ", e.name, " must be a row-major BF16/F16/F32 tensor");
    }
  }
  // A tied model may carry a head of its own (sparq convert --head int8); it is then used.
  if (cfg.tie_embeddings && linears.contains("lm_head"))
    validate_linear_tensors("lm_head", linear_scheme_from_json(linears["lm_head"], "lm_head"), cfg.vocab, cfg.hidden, find);
}

}  // namespace

ModelFile ModelFile::from_bytes(std::span<const uint8_t> image) {
  Parsed p = parse_image(image);
  validate_model(p);
  ModelFile f;
  f.image_ = image;
  f.metadata_ = std::move(p.metadata);
  f.tensors_ = std::move(p.tensors);
  f.blobs_ = std::move(p.blobs);
  return f;
}

ModelFile ModelFile::open(const std::string& path) {
  auto map = std::make_shared<MappedFile>(path);
  try {
    ModelFile f = from_bytes(map->bytes());
    f.map_ = std::move(map);
    f.path_ = path;
    return f;
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
}

const TensorEntry* ModelFile::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorEntry& ModelFile::tensor(std::string_view name) const {
  const TensorEntry* t = find_tensor(name);
  if (!t) fail(path_.empty() ? "model file" : path_, " has no tensor ", name);
  return *t;
}

TensorView ModelFile::view(std::string_view name) const {
  const TensorEntry& t = tensor(name);
  const auto bytes = data(t);
  return {t.name, bytes.data(), bytes.size(), t.dtype, t.shape, t.layout, map_ != nullptr};
}

std::optional<std::span<const uint8_t>> ModelFile::blob(std::string_view name) const {
  for (const auto& b : blobs_)
    if (b.name == name) return image_.subspan(b.offset, b.bytes);
  return std::nullopt;
}

void ModelFile::verify_checksums(const std::function<void(uint64_t, uint64_t)>& progress) const {
  uint64_t total = 0, done = 0;
  for (const auto& t : tensors_) total += t.bytes;
  for (const auto& b : blobs_) total += b.bytes;
  // In chunks, dropping pages behind us, so checking a file costs little resident memory.
  constexpr uint64_t kChunk = 8ull << 20;
  auto check = [&](const std::string& kind, const std::string& name, uint64_t offset, uint64_t bytes, uint64_t sum) {
    Xxh3Stream h;
    for (uint64_t off = 0; off < bytes; off += kChunk) {
      const uint64_t n = std::min(kChunk, bytes - off);
      h.update(image_.subspan(offset + off, n));
      if (map_) map_->release(offset, off + n);
      done += n;
      if (progress) progress(done, total);
    }
    if (h.digest() != sum) fail("corrupt file: checksum mismatch in ", kind, " ", name);
  };
  for (const auto& t : tensors_) check("tensor", t.name, t.offset, t.bytes, t.checksum);
  for (const auto& b : blobs_) check("blob", b.name, b.offset, b.bytes, b.checksum);
}

}  // namespace sparq
