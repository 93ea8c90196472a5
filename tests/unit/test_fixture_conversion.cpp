// Every committed fixture converts, verifies, and dequantizes to exactly what compressed-tensors
// decompresses the checkpoint to (reference/decompressed.safetensors, written by make_fixtures.py).
#include <catch2/catch.hpp>

#include "runtime/model_file/int8_tiles.h"
#include <cstring>
#include <filesystem>

#include "convert/checkpoint.h"
#include "convert/converter.h"
#include "convert/weight_codecs.h"
#include "runtime/core/float_formats.h"
#include "runtime/model_file/linear_scheme.h"
#include "runtime/model_file/sparq_reader.h"
#include "test_util.h"

using namespace sparq;
using namespace sparq::test;
namespace fs = std::filesystem;

namespace {

// Rounds f32 to a float dtype and back, as torch's cast to that dtype does.
float round_to(DType t, float v) {
  switch (t) {
    case DType::BF16: return bf16_to_f32(f32_to_bf16(v));
    case DType::F16: return f16_to_f32(f32_to_f16(v));
    default: return v;
  }
}

float read_float(DType t, const uint8_t* p) {
  uint16_t h;
  float f;
  switch (t) {
    case DType::BF16: std::memcpy(&h, p, 2); return bf16_to_f32(h);
    case DType::F16: std::memcpy(&h, p, 2); return f16_to_f32(h);
    case DType::F32: std::memcpy(&f, p, 4); return f;
    default: FAIL("unexpected reference dtype " << dtype_name(t)); return 0;
  }
}

// Quantized value q[r][c] of a stored weight, whatever its layout.
struct WeightReader {
  const ModelFile& f;
  const TensorEntry& w;
  int64_t rows, cols;
  std::vector<uint8_t> dense_row;
  int64_t cached = -1;
  WeightReader(const ModelFile& file, const TensorEntry& t) : f(file), w(t), rows(t.shape[0]), cols(t.shape[1]), dense_row(static_cast<size_t>(cols)) {}
  float value(int64_t r, int64_t c) {
    auto d = f.data(w);
    if (w.dtype == DType::I4) return i4_at(d.data() + r * ((cols + 1) / 2), c);
    if (w.layout == Layout::Sparse24) {
      if (cached != r) {
        const uint64_t vb = static_cast<uint64_t>(cols / 2), pb = sparse24_positions_row_bytes(cols);
        sparse24_decode_row(d.data() + r * vb, d.data() + rows * vb + r * pb, cols, dense_row.data());
        cached = r;
      }
      const uint8_t b = dense_row[c];
      return w.dtype == DType::F8_E4M3 ? fp8_e4m3_to_f32(b) : static_cast<int8_t>(b);
    }
    if (w.layout == Layout::Int8K4Tiles)
      return static_cast<int8_t>(d[static_cast<uint64_t>(r / Int8TilesShape::kTile) * Int8TilesShape(rows, cols).band_bytes() +
                                   Int8TilesShape::in_band(r, c)]);
    const uint8_t* p = d.data() + (r * cols + c) * (dtype_bits(w.dtype) / 8);
    if (w.dtype == DType::I8) return static_cast<int8_t>(*p);
    if (w.dtype == DType::F8_E4M3) return fp8_e4m3_to_f32(*p);
    return read_float(w.dtype, p);
  }
};

}  // namespace

TEST_CASE("every fixture converts and matches compressed-tensors' decompression bit for bit", "[fixtures]") {
  const auto dirs = fixture_dirs("config.json");
  REQUIRE(!dirs.empty());
  for (const auto& dir : dirs) {
    DYNAMIC_SECTION(dir.filename().string()) {
      ScratchDir scratch("fixture-" + dir.filename().string());
      const std::string out = scratch / "model.sparq";
      ConvertReport rep = convert_checkpoint({dir.string(), out, true});
      CHECK(rep.verified);
      ModelFile f = ModelFile::open(out);
      HfCheckpoint src(dir.string());
      const fs::path ref_path = dir / "reference" / "decompressed.safetensors";
      if (!fs::exists(ref_path)) continue;  // dense fixtures have nothing to decompress
      SafetensorsFile ref(ref_path.string());
      size_t compared = 0;
      for (const auto& rt : ref.header().tensors) {
        if (!rt.name.ends_with(".weight")) continue;
        const std::string module = rt.name.substr(0, rt.name.size() - 7);
        if (!f.metadata()["linears"].contains(module)) continue;  // e.g. a tied lm_head
        INFO("tensor " << rt.name);
        const LinearScheme s = linear_scheme_from_json(f.metadata()["linears"][module], module);
        const TensorEntry& w = f.tensor(rt.name);
        REQUIRE(rt.shape == w.shape);
        const int64_t rows = w.shape[0], cols = w.shape[1];
        const uint8_t* expect = ref.data(rt).data();
        const unsigned esz = dtype_bits(rt.dtype) / 8;
        WeightReader q(f, w);
        // compressed-tensors computes (q - zp) * scale in the scale's original dtype.
        DType scale_dtype = DType::F32;
        const float* scale = nullptr;
        const int8_t* zp = nullptr;
        const int32_t* g_idx = nullptr;
        int64_t groups = 1;
        if (s.quantized()) {
          scale_dtype = src.get(module + ".weight_scale").info->dtype;
          const TensorEntry& st = f.tensor(module + ".weight_scale");
          scale = reinterpret_cast<const float*>(f.data(st).data());
          groups = st.shape.size() == 2 ? st.shape[1] : 1;
          if (s.weight_zero_point) zp = reinterpret_cast<const int8_t*>(f.data(f.tensor(module + ".weight_zero_point")).data());
          if (s.g_idx) g_idx = reinterpret_cast<const int32_t*>(f.data(f.tensor(module + ".weight_g_idx")).data());
        }
        int64_t mismatches = 0;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) {
            float v = q.value(r, c);
            if (scale) {
              int64_t si = 0;
              if (s.weight_strategy == "channel") si = r;
              if (s.weight_strategy == "group") si = r * groups + (g_idx ? g_idx[c] : c / s.group_size);
              if (zp) v = round_to(scale_dtype, v - static_cast<float>(zp[si]));
              v = round_to(scale_dtype, v * scale[si]);
            }
            v = round_to(rt.dtype, v);
            const float e = read_float(rt.dtype, expect + (r * cols + c) * esz);
            if (std::memcmp(&v, &e, 4) != 0 && !(v == 0 && e == 0)) {
              if (mismatches < 3) UNSCOPED_INFO("row " << r << " col " << c << ": sparq " << v << ", reference " << e);
              ++mismatches;
            }
          }
        CHECK(mismatches == 0);
        ++compared;
      }
      CHECK(compared > 0);
    }
  }
}
