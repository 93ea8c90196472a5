#include "convert/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "runtime/core/checked_math.h"
#include "runtime/core/error.h"
#include "runtime/core/json_fields.h"

namespace sparq {

using nlohmann::json;

SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> prefix, uint64_t file_size) {
  if (file_size < 8 || prefix.size() < 8) fail("too short to be a safetensors file (", file_size, " bytes)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | prefix[static_cast<size_t>(i)];
  if (n > kMaxSafetensorsHeader) fail("header length ", n, " is absurd (more than 100 MB)");
  if (n + 8 > file_size) fail("header length ", n, " runs past the end of the file (", file_size, " bytes)");
  if (n + 8 > prefix.size()) fail("header is truncated");
  if (n < 2) fail("header is empty");
  const uint64_t buffer_start = 8 + n;
  const uint64_t buffer_len = file_size - buffer_start;

  json j = parse_json({reinterpret_cast<const char*>(prefix.data() + 8), static_cast<size_t>(n)}, "header");
  if (!j.is_object()) fail("header is not a JSON object");

  SafetensorsHeader h;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) fail("__metadata__ must be an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail("__metadata__ value of ", m.key(), " is not a string");
        h.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const std::string owner = "tensor " + name;
    auto dtype = dtype_from_name(json_string(*it, "dtype", owner));
    if (!dtype || *dtype == DType::I4) fail(owner, ": unknown dtype \"", json_string(*it, "dtype", owner), "\"");
    auto shape = json_int_list(*it, "shape", owner);
    auto offsets = json_int_list(*it, "data_offsets", owner);
    if (offsets.size() != 2 || offsets[0] < 0 || offsets[1] < offsets[0])
      fail(owner, ": data_offsets must be [begin, end] with 0 <= begin <= end");
    const uint64_t b = static_cast<uint64_t>(offsets[0]), e = static_cast<uint64_t>(offsets[1]);
    if (e > buffer_len) fail(owner, ": data ends at ", e, ", past the end of the data (", buffer_len, " bytes)");
    auto bytes = row_major_bytes(*dtype, shape);
    if (!bytes) fail(owner, ": shape ", shape_string(shape), " is invalid");
    if (*bytes != e - b)
      fail(owner, ": ", e - b, " bytes of data, but ", dtype_name(*dtype), " ", shape_string(shape), " needs ", *bytes);
    h.tensors.push_back({name, *dtype, std::move(shape), buffer_start + b, buffer_start + e});
  }
  std::sort(h.tensors.begin(), h.tensors.end(),
            [](const SafetensorInfo& a, const SafetensorInfo& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  // Like the reference reader: tensors tile the data buffer exactly, no overlaps and no holes.
  uint64_t expect = buffer_start;
  for (const auto& t : h.tensors) {
    if (t.begin < expect) fail("tensors overlap at ", t.name);
    if (t.begin > expect) fail("hole in the data before ", t.name);
    expect = t.end;
  }
  if (expect != file_size) fail("the data buffer has ", file_size - expect, " bytes that no tensor covers");
  return h;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : map_(path) {
  try {
    header_ = parse_safetensors_header(map_.bytes(), map_.size());
  } catch (const Error& e) {
    fail(path, ": ", e.what());
  }
  for (size_t i = 0; i < header_.tensors.size(); ++i) by_name_.emplace(header_.tensors[i].name, i);
}

const SafetensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &header_.tensors[it->second];
}

}  // namespace sparq
