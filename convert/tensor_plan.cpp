#include "convert/tensor_plan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "convert/weight_codecs.h"
#include "runtime/core/checked_math.h"
#include "runtime/core/error.h"
#include "runtime/core/float_formats.h"
#include "runtime/core/mapped_file.h"
#include "runtime/model_file/int8_tiles.h"
#include "runtime/model_file/linear_scheme.h"

namespace sparq {

namespace {

constexpr uint64_t kChunkBytes = 8ull << 20;

// Calls fill(r0, r1, out) for row blocks of about kChunkBytes and hands each block to the sink;
// after each block, `consumed(r1)` lets the caller drop source pages.
void stream_rows(int64_t rows, uint64_t row_bytes, const std::function<void(int64_t, int64_t, uint8_t*)>& fill,
                 const ByteSink& sink) {
  const int64_t per = std::max<int64_t>(1, static_cast<int64_t>(kChunkBytes / std::max<uint64_t>(row_bytes, 1)));
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<int64_t>(per, std::max<int64_t>(rows, 1))) * row_bytes);
  for (int64_t r0 = 0; r0 < rows; r0 += per) {
    const int64_t r1 = std::min(rows, r0 + per);
    fill(r0, r1, buf.data());
    sink({buf.data(), static_cast<size_t>(r1 - r0) * row_bytes});
  }
}

// Releases the pages of rows [0, r1) of a 2-D source as they are consumed.
void release_rows(const SourceTensor& s, int64_t r1, int64_t rows) {
  const uint64_t total = s.info->end - s.info->begin;
  const uint64_t upto = rows ? total / static_cast<uint64_t>(rows) * static_cast<uint64_t>(r1) : total;
  s.file->map().release(s.info->begin, upto);
}

float to_f32(DType t, const uint8_t* p) {
  switch (t) {
    case DType::F32: { float f; std::memcpy(&f, p, 4); return f; }
    case DType::F64: { double d; std::memcpy(&d, p, 8); return static_cast<float>(d); }
    case DType::BF16: { uint16_t h; std::memcpy(&h, p, 2); return bf16_to_f32(h); }
    case DType::F16: { uint16_t h; std::memcpy(&h, p, 2); return f16_to_f32(h); }
    default: fail("internal: to_f32 on ", dtype_name(t));
  }
}

int8_t to_i8(DType t, const uint8_t* p, const std::string& name) {
  switch (t) {
    case DType::I8: return static_cast<int8_t>(*p);
    case DType::U8: if (*p > 127) break; return static_cast<int8_t>(*p);
    case DType::I32: { int32_t v; std::memcpy(&v, p, 4); if (v < -128 || v > 127) break; return static_cast<int8_t>(v); }
    case DType::I64: { int64_t v; std::memcpy(&v, p, 8); if (v < -128 || v > 127) break; return static_cast<int8_t>(v); }
    default: break;
  }
  fail("tensor ", name, ": zero point out of the int8 range or of dtype ", dtype_name(t));
}

void mismatch(const std::string& name, int64_t row) { fail("verify: tensor ", name, " differs from the source at row ", row); }

PlannedTensor copy_tensor(const std::string& out_name, const SourceTensor& s) {
  PlannedTensor p{out_name, s.info->dtype, s.info->shape, Layout::RowMajor, s.info->end - s.info->begin, {&s}, {}, {}};
  p.produce = [&s](const ByteSink& sink) {
    auto d = s.data();
    for (uint64_t off = 0; off < d.size(); off += kChunkBytes) {
      const uint64_t n = std::min<uint64_t>(kChunkBytes, d.size() - off);
      sink(d.subspan(off, n));
      s.file->map().release(s.info->begin, off + n);
    }
  };
  p.verify = [&s, out_name](std::span<const uint8_t> w) {
    auto d = s.data();
    if (w.size() != d.size()) fail("verify: tensor ", out_name, " has ", w.size(), " bytes, the source ", d.size());
    // In chunks, dropping pages behind us: a 1 GB embedding must not cost 2 GB of RSS.
    for (uint64_t off = 0; off < d.size(); off += kChunkBytes) {
      const uint64_t n = std::min<uint64_t>(kChunkBytes, d.size() - off);
      if (std::memcmp(w.data() + off, d.data() + off, n) != 0)
        fail("verify: tensor ", out_name, " differs from the source near byte ", off);
      release_mapped_range(w.data(), off + n);
      s.file->map().release(s.info->begin, off + n);
    }
  };
  return p;
}

// An INT8 [out, in] weight in the int8_k4_tiles layout, written band by band (64 rows) from the
// row-major rows `fill(r0, r1, rows)` makes; verify unpacks the written tiles and compares them
// with rows made again by `fill`, and checks the compensation.
using Int8RowFill = std::function<void(int64_t r0, int64_t r1, int8_t* rows)>;

PlannedTensor int8_tiles_tensor(const std::string& name, int64_t out, int64_t in, const SourceTensor& src, Int8RowFill fill) {
  const Int8TilesShape shape(out, in);
  PlannedTensor p{name, DType::I8, {out, in}, Layout::Int8K4Tiles, shape.total_bytes(), {&src}, {}, {}};
  constexpr int64_t T = Int8TilesShape::kTile;
  p.produce = [shape, fill](const ByteSink& sink) {
    std::vector<int8_t> rows(static_cast<size_t>(T * shape.in));
    std::vector<uint8_t> band(shape.band_bytes());
    std::vector<int32_t> comp(static_cast<size_t>(shape.padded_out));
    for (int64_t b = 0; b < shape.bands(); ++b) {
      const int64_t r0 = b * T, r1 = std::min(shape.out, r0 + T);
      if (r1 > r0) fill(r0, r1, rows.data());
      int8_tiles_pack_band(shape, b, rows.data(), band.data(), comp.data() + r0);
      sink(band);
    }
    sink({reinterpret_cast<const uint8_t*>(comp.data()), comp.size() * 4});
    const std::vector<uint8_t> reserved(shape.total_bytes() - shape.reserved_offset(), 0);
    sink(reserved);
  };
  p.verify = [shape, fill, name](std::span<const uint8_t> w) {
    if (w.size() != shape.total_bytes()) fail("verify: tensor ", name, " has ", w.size(), " bytes, expected ", shape.total_bytes());
    std::vector<int8_t> rows(static_cast<size_t>(T * shape.in));
    int32_t sums[T];
    for (int64_t b = 0; b < shape.bands(); ++b) {
      const int64_t r0 = b * T, r1 = std::min(shape.out, r0 + T);
      if (r1 > r0) fill(r0, r1, rows.data());
      const uint8_t* band = w.data() + static_cast<uint64_t>(b) * shape.band_bytes();
      for (int64_t r = 0; r < r1 - r0; ++r)
        for (int64_t c = 0; c < shape.in; ++c)
          if (static_cast<int8_t>(band[Int8TilesShape::in_band(r, c)]) != rows[static_cast<size_t>(r * shape.in + c)]) mismatch(name, r0 + r);
      int8_tiles_band_sums(shape, band, sums);
      if (std::string why = int8_tiles_check_band(shape, w.data(), b, sums); !why.empty()) fail("verify: tensor ", name, ": ", why);
      release_mapped_range(w.data(), static_cast<uint64_t>(b + 1) * shape.band_bytes());
    }
  };
  return p;
}

// A row-major INT8 source weight, stored as int8_k4_tiles.
PlannedTensor int8_tiles_copy(const std::string& name, const SourceTensor& s, int64_t out, int64_t in) {
  return int8_tiles_tensor(name, out, in, s, [&s, out, in](int64_t r0, int64_t r1, int8_t* rows) {
    std::memcpy(rows, s.data().data() + static_cast<uint64_t>(r0 * in), static_cast<size_t>((r1 - r0) * in));
    release_rows(s, r1, out);
  });
}

// Floating scales (BF16/F16/F32/F64) to F32, reshaped to `shape` (same element count).
PlannedTensor f32_tensor(const std::string& out_name, const SourceTensor& s, std::vector<int64_t> shape) {
  if (!dtype_is_float(s.info->dtype) || dtype_bits(s.info->dtype) < 16)
    fail("tensor ", s.info->name, " has dtype ", dtype_name(s.info->dtype), "; a scale must be BF16, F16, F32 or F64");
  const uint64_t n = (s.info->end - s.info->begin) / (dtype_bits(s.info->dtype) / 8);
  if (n != *row_major_bytes(DType::F32, shape) / 4)
    fail("tensor ", s.info->name, " has shape ", shape_string(s.info->shape), ", expected ", shape_string(shape));
  PlannedTensor p{out_name, DType::F32, shape, Layout::RowMajor, n * 4, {&s}, {}, {}};
  const unsigned isz = dtype_bits(s.info->dtype) / 8;
  p.produce = [&s, n, isz](const ByteSink& sink) {
    stream_rows(static_cast<int64_t>(n), 4, [&](int64_t r0, int64_t r1, uint8_t* out) {
      for (int64_t i = r0; i < r1; ++i) {
        float f = to_f32(s.info->dtype, s.data().data() + i * isz);
        std::memcpy(out + (i - r0) * 4, &f, 4);
      }
    }, sink);
  };
  p.verify = [&s, n, isz, out_name](std::span<const uint8_t> w) {
    for (uint64_t i = 0; i < n; ++i) {
      float a = to_f32(s.info->dtype, s.data().data() + i * isz), b;
      std::memcpy(&b, w.data() + i * 4, 4);
      if (std::memcmp(&a, &b, 4) != 0) fail("verify: tensor ", out_name, " differs from the source at element ", i);
    }
  };
  return p;
}

// Integer zero points to I8 in the scale's shape (row-major source, same element count).
PlannedTensor i8_tensor(const std::string& out_name, const SourceTensor& s, std::vector<int64_t> shape) {
  const uint64_t isz = dtype_bits(s.info->dtype) / 8;
  const uint64_t n = (s.info->end - s.info->begin) / std::max<uint64_t>(isz, 1);
  if (dtype_is_float(s.info->dtype) || n != *row_major_bytes(DType::I8, shape))
    fail("tensor ", s.info->name, " (", dtype_name(s.info->dtype), " ", shape_string(s.info->shape),
         ") cannot serve as an int8 zero point of shape ", shape_string(shape));
  PlannedTensor p{out_name, DType::I8, shape, Layout::RowMajor, n, {&s}, {}, {}};
  p.produce = [&s, n, isz](const ByteSink& sink) {
    std::vector<uint8_t> out(n);
    for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(to_i8(s.info->dtype, s.data().data() + i * isz, s.info->name));
    sink(out);
  };
  p.verify = [&s, n, isz, out_name](std::span<const uint8_t> w) {
    for (uint64_t i = 0; i < n; ++i)
      if (static_cast<int8_t>(w[i]) != to_i8(s.info->dtype, s.data().data() + i * isz, s.info->name))
        fail("verify: tensor ", out_name, " differs from the source at element ", i);
  };
  return p;
}

struct LinearSources {
  const SourceTensor* weight = nullptr;
  const SourceTensor* scale = nullptr;
  const SourceTensor* zero_point = nullptr;
  const SourceTensor* g_idx = nullptr;
  const SourceTensor* packed = nullptr;
  const SourceTensor* packed_shape = nullptr;
  const SourceTensor* compressed = nullptr;
  const SourceTensor* bitmask = nullptr;
  const SourceTensor* sparse_shape = nullptr;
  const SourceTensor* row_offsets = nullptr;
  const SourceTensor* input_scale = nullptr;
  const SourceTensor* input_zero_point = nullptr;
  const SourceTensor* bias = nullptr;
};

const std::map<std::string, const SourceTensor* LinearSources::*> kLinearSuffixes = {
    {"weight", &LinearSources::weight},
    {"weight_scale", &LinearSources::scale},
    {"weight_zero_point", &LinearSources::zero_point},
    {"weight_g_idx", &LinearSources::g_idx},
    {"weight_packed", &LinearSources::packed},
    {"weight_shape", &LinearSources::packed_shape},
    {"compressed", &LinearSources::compressed},
    {"bitmask", &LinearSources::bitmask},
    {"shape", &LinearSources::sparse_shape},
    {"row_offsets", &LinearSources::row_offsets},
    {"input_scale", &LinearSources::input_scale},
    {"input_zero_point", &LinearSources::input_zero_point},
    {"bias", &LinearSources::bias},
};

void expect_shape(const SourceTensor& s, const std::vector<int64_t>& shape) {
  if (s.info->shape != shape)
    fail("tensor ", s.info->name, " has shape ", shape_string(s.info->shape), ", expected ", shape_string(shape));
}

void expect_dtype(const SourceTensor& s, DType t, const std::string& why) {
  if (s.info->dtype != t)
    fail("tensor ", s.info->name, " has dtype ", dtype_name(s.info->dtype), "; ", why, " stores ", dtype_name(t));
}

// A weight whose source is 8-bit dense [out, in] written in the sparse24 layout.
PlannedTensor sparse24_from_dense(const std::string& name, const SourceTensor& w, DType dtype, int64_t out, int64_t in) {
  const bool fp8 = dtype == DType::F8_E4M3;
  PlannedTensor p{name, dtype, {out, in}, Layout::Sparse24, *layout_bytes(Layout::Sparse24, dtype, std::vector<int64_t>{out, in}).bytes, {&w}, {}, {}};
  const uint64_t vbytes = static_cast<uint64_t>(in / 2), pbytes = sparse24_positions_row_bytes(in);
  p.produce = [&w, out, in, fp8, vbytes, pbytes](const ByteSink& sink) {
    std::vector<uint8_t> scratch(pbytes);
    stream_rows(out, vbytes, [&](int64_t r0, int64_t r1, uint8_t* o) {
      for (int64_t r = r0; r < r1; ++r) {
        int64_t bad = 0;
        if (!sparse24_encode_row(w.data().data() + r * in, in, fp8, o + (r - r0) * vbytes, scratch.data(), &bad))
          fail("tensor ", w.info->name, " is not 2:4 sparse: row ", r, ", columns ", bad * 4, "-", bad * 4 + 3,
               " hold more than two non-zero values");
      }
    }, sink);
    std::vector<uint8_t> scratch_v(vbytes);
    stream_rows(out, pbytes, [&](int64_t r0, int64_t r1, uint8_t* o) {
      for (int64_t r = r0; r < r1; ++r) {
        int64_t bad = 0;
        sparse24_encode_row(w.data().data() + r * in, in, fp8, scratch_v.data(), o + (r - r0) * pbytes, &bad);
      }
      release_rows(w, r1, out);
    }, sink);
  };
  p.verify = [&w, out, in, fp8, vbytes, pbytes, name](std::span<const uint8_t> b) {
    std::vector<uint8_t> dense(in);
    for (int64_t r = 0; r < out; ++r) {
      sparse24_decode_row(b.data() + r * vbytes, b.data() + out * vbytes + r * pbytes, in, dense.data());
      const uint8_t* src = w.data().data() + r * in;
      for (int64_t c = 0; c < in; ++c)
        if (dense[c] != src[c] && !(is_zero_value(dense[c], fp8) && is_zero_value(src[c], fp8))) mismatch(name, r);
    }
  };
  return p;
}

// A weight stored as sparse-24-bitmask (compressed + bitmask) written in the sparse24 layout.
PlannedTensor sparse24_from_bitmask(const std::string& name, const SourceTensor& comp, const SourceTensor& mask,
                                    DType dtype, int64_t out, int64_t in) {
  PlannedTensor p{name, dtype, {out, in}, Layout::Sparse24, *layout_bytes(Layout::Sparse24, dtype, std::vector<int64_t>{out, in}).bytes, {&comp, &mask}, {}, {}};
  const uint64_t vbytes = static_cast<uint64_t>(in / 2), pbytes = sparse24_positions_row_bytes(in);
  const uint64_t mbytes = static_cast<uint64_t>((in + 7) / 8);
  p.produce = [&comp, &mask, out, in, vbytes, pbytes, mbytes](const ByteSink& sink) {
    auto fill = [&](bool values_plane) {
      std::vector<uint8_t> scratch(std::max(vbytes, pbytes));
      stream_rows(out, values_plane ? vbytes : pbytes, [&](int64_t r0, int64_t r1, uint8_t* o) {
        for (int64_t r = r0; r < r1; ++r) {
          int64_t bad = 0;
          uint8_t* v = values_plane ? o + (r - r0) * vbytes : scratch.data();
          uint8_t* ps = values_plane ? scratch.data() : o + (r - r0) * pbytes;
          if (!sparse24_from_bitmask_row(comp.data().data() + r * vbytes, mask.data().data() + r * mbytes, in, v, ps, &bad))
            fail("tensor ", mask.info->name, ": row ", r, ", columns ", bad * 4, "-", bad * 4 + 3,
                 " do not mark exactly two values (not a 2:4 bitmask)");
        }
        if (!values_plane) {
          release_rows(comp, r1, out);
          release_rows(mask, r1, out);
        }
      }, sink);
    };
    fill(true);
    fill(false);
  };
  p.verify = [&comp, &mask, out, in, vbytes, pbytes, mbytes, name](std::span<const uint8_t> b) {
    std::vector<uint8_t> mine(in), theirs(in);
    for (int64_t r = 0; r < out; ++r) {
      sparse24_decode_row(b.data() + r * vbytes, b.data() + out * vbytes + r * pbytes, in, mine.data());
      bitmask_decode_row(comp.data().data() + r * vbytes, mask.data().data() + r * mbytes, in, theirs.data());
      if (mine != theirs) mismatch(name, r);
    }
  };
  return p;
}

// pack-quantized weight_packed (I32 bit stream per row) -> I4 (bits <= 4) or I8 row-major.
PlannedTensor unpack_weight(const std::string& name, const SourceTensor& packed, int bits, int64_t out, int64_t in) {
  const DType dtype = bits <= 4 ? DType::I4 : DType::I8;
  const uint64_t row_out = *row_major_bytes(dtype, std::vector<int64_t>{1, in});
  const uint64_t row_in = static_cast<uint64_t>(packed.info->shape[1]) * 4;
  PlannedTensor p{name, dtype, {out, in}, Layout::RowMajor, row_out * static_cast<uint64_t>(out), {&packed}, {}, {}};
  p.produce = [&packed, bits, out, in, dtype, row_out, row_in](const ByteSink& sink) {
    std::vector<int8_t> vals(in);
    stream_rows(out, row_out, [&](int64_t r0, int64_t r1, uint8_t* o) {
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* src = packed.data().data() + r * row_in;
        for (int64_t c = 0; c < in; ++c) vals[c] = packed_field(src, c, bits);
        if (dtype == DType::I4) pack_i4_row(vals.data(), in, o + (r - r0) * row_out);
        else std::memcpy(o + (r - r0) * row_out, vals.data(), in);
      }
      release_rows(packed, r1, out);
    }, sink);
  };
  p.verify = [&packed, bits, out, in, dtype, row_out, row_in, name](std::span<const uint8_t> b) {
    for (int64_t r = 0; r < out; ++r) {
      const uint8_t* row = b.data() + r * row_out;
      for (int64_t c = 0; c < in; ++c) {
        const int8_t mine = dtype == DType::I4 ? i4_at(row, c) : static_cast<int8_t>(row[c]);
        if (mine != packed_field(packed.data().data() + r * row_in, c, bits)) mismatch(name, r);
      }
    }
  };
  return p;
}

// pack-quantized zero points are packed along dim 0: I32 [ceil(out*bits/32), groups] -> I8 [out, groups].
PlannedTensor unpack_zero_point(const std::string& name, const SourceTensor& zp, int bits, int64_t out, int64_t groups) {
  const int64_t words = (out * bits + 31) / 32;
  if (zp.info->dtype != DType::I32 || zp.info->shape != std::vector<int64_t>{words, groups})
    fail("tensor ", zp.info->name, " should be a packed I32 [", words, ", ", groups, "] zero point, got ",
         dtype_name(zp.info->dtype), " ", shape_string(zp.info->shape));
  PlannedTensor p{name, DType::I8, {out, groups}, Layout::RowMajor, static_cast<uint64_t>(out * groups), {&zp}, {}, {}};
  auto unpack = [&zp, bits, out, groups, words]() {
    std::vector<uint8_t> column(static_cast<size_t>(words) * 4 + 1), result(static_cast<size_t>(out * groups));
    const uint8_t* d = zp.data().data();
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t w = 0; w < words; ++w) std::memcpy(&column[w * 4], d + (w * groups + g) * 4, 4);
      for (int64_t r = 0; r < out; ++r) result[r * groups + g] = static_cast<uint8_t>(packed_field(column.data(), r, bits));
    }
    return result;
  };
  p.produce = [unpack](const ByteSink& sink) { sink(unpack()); };
  p.verify = [unpack, name](std::span<const uint8_t> b) {
    auto expect = unpack();
    if (!std::equal(b.begin(), b.end(), expect.begin(), expect.end())) fail("verify: tensor ", name, " differs from the source");
  };
  return p;
}

// True when every group of 4 along each row holds at most two non-zero values.
bool is_2of4(const SourceTensor& w, bool fp8, int64_t out, int64_t in) {
  const uint8_t* d = w.data().data();
  for (int64_t i = 0; i < out * in; i += 4) {
    const int nz = !is_zero_value(d[i], fp8) + !is_zero_value(d[i + 1], fp8) + !is_zero_value(d[i + 2], fp8) +
                   !is_zero_value(d[i + 3], fp8);
    if (nz > 2) return false;
  }
  return true;
}

// Symmetric per-row INT8 by the formula llm-compressor uses for W8A8 weights (in f32 here, where it
// keeps the scale in the weight's dtype): scale = max|w| / 127.5
// ((q_max - q_min) / 2), q = round-half-even(w / scale) clamped to [-128, 127]; an all-zero row
// gets scale 1.
float int8_row_scale(const SourceTensor& s, int64_t row, int64_t in) {
  const unsigned isz = dtype_bits(s.info->dtype) / 8;
  const uint8_t* p = s.data().data() + static_cast<uint64_t>(row * in) * isz;
  float amax = 0.0f;
  for (int64_t c = 0; c < in; ++c) amax = std::max(amax, std::fabs(to_f32(s.info->dtype, p + c * isz)));
  return amax > 0.0f ? amax / 127.5f : 1.0f;
}

void quantize_int8_row(const SourceTensor& s, int64_t row, int64_t in, float scale, uint8_t* out) {
  const unsigned isz = dtype_bits(s.info->dtype) / 8;
  const uint8_t* p = s.data().data() + static_cast<uint64_t>(row * in) * isz;
  for (int64_t c = 0; c < in; ++c) {
    const float q = std::nearbyint(to_f32(s.info->dtype, p + c * isz) / scale);
    out[c] = static_cast<uint8_t>(static_cast<int8_t>(std::clamp(q, -128.0f, 127.0f)));
  }
}

// The two tensors of an INT8 head quantized from an unquantized [out, in] source.
std::pair<PlannedTensor, PlannedTensor> int8_head_tensors(const SourceTensor& src, int64_t out, int64_t in) {
  const DType t = src.info->dtype;
  if (t != DType::BF16 && t != DType::F16 && t != DType::F32)
    fail("--head int8: ", src.info->name, " has dtype ", dtype_name(t), "; expected BF16, F16 or F32");
  expect_shape(src, {out, in});
  // The weight is written first and records each row's scale for the scale tensor, so the source
  // is scanned for max|w| once (verify recomputes both independently).
  auto scales = std::make_shared<std::vector<float>>();
  PlannedTensor w = int8_tiles_tensor("lm_head.weight", out, in, src, [&src, out, in, scales](int64_t r0, int64_t r1, int8_t* rows) {
    if (scales->size() != static_cast<size_t>(out)) scales->assign(static_cast<size_t>(out), 0.0f);
    for (int64_t r = r0; r < r1; ++r) {
      (*scales)[static_cast<size_t>(r)] = int8_row_scale(src, r, in);
      quantize_int8_row(src, r, in, (*scales)[static_cast<size_t>(r)], reinterpret_cast<uint8_t*>(rows + (r - r0) * in));
    }
    release_rows(src, r1, out);
  });
  PlannedTensor sc{"lm_head.weight_scale", DType::F32, {out, 1}, Layout::RowMajor, static_cast<uint64_t>(out * 4), {&src}, {}, {}};
  sc.produce = [out, scales](const ByteSink& sink) {
    if (scales->size() != static_cast<size_t>(out)) fail("internal: lm_head.weight_scale written before lm_head.weight");
    sink({reinterpret_cast<const uint8_t*>(scales->data()), scales->size() * 4});
  };
  sc.verify = [&src, out, in](std::span<const uint8_t> b) {
    for (int64_t r = 0; r < out; ++r) {
      const float f = int8_row_scale(src, r, in);
      if (std::memcmp(&f, b.data() + r * 4, 4) != 0) mismatch("lm_head.weight_scale", r);
    }
  };
  return {std::move(w), std::move(sc)};
}

struct PlanBuilder {
  explicit PlanBuilder(const HfCheckpoint& c) : ckpt(c) {}
  const HfCheckpoint& ckpt;
  ConversionPlan plan;
  std::set<std::string> consumed;
  std::map<std::string, int> label_counts;
  int undeclared_sparse = 0;

  void add(PlannedTensor t) {
    for (const auto* s : t.sources) consumed.insert(s->info->name);
    plan.tensors.push_back(std::move(t));
  }

  void plan_linear(const std::string& module, int64_t out, int64_t in);
  void plan_int8_head(const SourceTensor& src, int64_t out, int64_t in);
};

void PlanBuilder::plan_int8_head(const SourceTensor& src, int64_t out, int64_t in) {
  if (ckpt.find("lm_head.weight_scale") || ckpt.find("lm_head.weight_packed"))
    fail("--head int8: lm_head is already quantized in the checkpoint");
  if (ckpt.find("lm_head.bias")) fail("--head int8: lm_head has a bias, which the INT8 head does not carry");
  auto [w, sc] = int8_head_tensors(src, out, in);
  add(std::move(w));
  add(std::move(sc));
  LinearScheme s;
  s.weight_dtype = DType::I8;
  s.weight_strategy = "channel";
  s.input = ActivationQuant{false, 8, "token", true, true};
  plan.linears["lm_head"] = linear_scheme_to_json(s);
  label_counts[linear_scheme_label(s)]++;
  plan.notes.push_back("lm_head quantized to INT8 per output row from " + src.info->name +
                       " (--head int8: lossy, logits differ from the checkpoint's)");
}

void PlanBuilder::plan_linear(const std::string& module, int64_t out, int64_t in) {
  LinearSources src;
  for (const auto& [suffix, member] : kLinearSuffixes) src.*member = ckpt.find(module + "." + suffix);
  const ModuleRef ref{module, "Linear"};
  const CompressionConfig& cc = plan.compression;
  const QuantGroup* group = cc.quantized ? find_quant_group(cc, ref) : nullptr;
  const bool quant_tensors = src.scale || src.packed;
  const std::string wname = module + ".weight";

  if (!group && quant_tensors)
    fail(module, " has quantization tensors (", src.scale ? "weight_scale" : "weight_packed",
         ") but quantization_config does not quantize it (check its targets and ignore list)");
  if (group && !quant_tensors)
    fail("quantization_config quantizes ", module, " (group ", group->name, ") but the checkpoint has no ", module,
         ".weight_scale");
  if (src.row_offsets) fail(module, " is stored in the sparse-bitmask (unstructured) format, which is not supported");

  const bool sparse_targeted = cc.sparsity && cc.sparsity->structure == "2:4" && sparsity_targets(cc, ref);
  if (cc.sparsity && sparsity_targets(cc, ref) && cc.sparsity->format != "dense" &&
      cc.sparsity->format != "sparse-24-bitmask")
    fail("sparsity format \"", cc.sparsity->format, "\" (tensor ", wname, ") is not supported (supported: dense, sparse-24-bitmask)");
  if ((src.compressed || src.bitmask) && !(src.compressed && src.bitmask && src.sparse_shape))
    fail(module, ": a sparse-24-bitmask weight needs compressed, bitmask and shape tensors");
  const bool from_bitmask = src.compressed != nullptr;
  if (from_bitmask && !sparse_targeted)
    fail(module, " is stored sparse-24-bitmask but sparsity_config does not target it with a 2:4 structure");

  LinearScheme s;
  s.bias = src.bias != nullptr;
  if (group) {
    if (cc.status == "frozen")
      fail("quantization_status \"frozen\" (fake-quantized dense weights, tensor ", wname,
           ") is not supported; export the model with save_compressed=True");
    if (!group->weights) fail("group ", group->name, " quantizes only activations of ", module, "; weight-less schemes are not supported");
    if (group->output_activations) fail("output activation quantization (group ", group->name, ", ", module, ") is not supported");
    const QuantArgs& w = *group->weights;
    const std::string format = group_format(cc, *group);
    if (!group->format.empty() && cc.format != "mixed-precision" && group->format != cc.format)
      fail("compression format \"", cc.format, "\" of quantization_config conflicts with \"", group->format,
           "\" of group ", group->name, " (tensor ", wname, ")");
    if (format != "int-quantized" && format != "float-quantized" && format != "naive-quantized" && format != "pack-quantized")
      fail("compression format \"", format, "\" (tensor ", wname, ") is not supported (supported: int-quantized, float-quantized, naive-quantized, pack-quantized)");
    if (w.strategy != "tensor" && w.strategy != "channel" && w.strategy != "group")
      fail("weight strategy \"", w.strategy, "\" (tensor ", wname, ") is not supported (supported: tensor, channel, group)");
    if (w.is_dynamic()) fail("dynamic weight quantization (tensor ", wname, ") is not supported");
    if (w.type == "float" && w.num_bits != 8) fail(w.num_bits, "-bit float weights (tensor ", wname, ") are not supported; only FP8 E4M3");
    if (w.num_bits < 2 || w.num_bits > 8) fail(w.num_bits, "-bit weights (tensor ", wname, ") are not supported");
    if (w.strategy == "group" && w.group_size <= 0) fail("group quantization of ", wname, " needs a positive group_size");
    s.weight_strategy = w.strategy;
    s.group_size = w.strategy == "group" ? w.group_size : 0;
    if (const auto& a = group->input_activations) {
      if (a->num_bits != 8) fail(a->num_bits, "-bit input activations (", module, ") are not supported; only 8-bit");
      if (a->strategy != "token" && a->strategy != "tensor")
        fail("input activation strategy \"", a->strategy, "\" (", module, ") is not supported (supported: token, tensor)");
      if (a->strategy == "token" && !a->is_dynamic()) fail("static per-token input scales (", module, ") are not supported");
      if (a->dynamic == "local") fail("dynamic=\"local\" input activations (", module, ") are not supported");
      s.input = ActivationQuant{a->type == "float", a->num_bits, a->strategy, a->is_dynamic(), a->symmetric};
      if (a->is_dynamic() && !a->symmetric) fail("asymmetric dynamic input activations (", module, ") are not supported");
      if (!a->is_dynamic() && !src.input_scale) fail(module, " has static input activations but no input_scale tensor");
    }
    if (w.type == "float" && !w.symmetric) fail("asymmetric FP8 weights (", wname, ") are not supported");

    const std::vector<int64_t> scale_shape = weight_scale_shape(s, out, in);
    const SourceTensor& scale = *src.scale;
    {
      auto n = checked_numel(scale.info->shape);
      const uint64_t want = *checked_numel(scale_shape);
      if (!n || *n != want)
        fail("tensor ", scale.info->name, " has shape ", shape_string(scale.info->shape), "; strategy ", w.strategy,
             " needs ", shape_string(scale_shape));
    }

    if (format == "pack-quantized") {
      if (w.type != "int") fail("pack-quantized ", wname, " must be an int scheme");
      if (sparse_targeted) fail("pack-quantized weights with 2:4 sparsity (", wname, ") are not supported");
      if (!src.packed || !src.packed_shape) fail(module, " (pack-quantized) needs weight_packed and weight_shape");
      expect_dtype(*src.packed, DType::I32, "pack-quantized");
      const int64_t words = (in * w.num_bits + 31) / 32;
      expect_shape(*src.packed, {out, words});
      s.weight_dtype = w.num_bits <= 4 ? DType::I4 : DType::I8;
      add(unpack_weight(wname, *src.packed, w.num_bits, out, in));
      consumed.insert(src.packed_shape->info->name);
      if (!w.symmetric && src.zero_point) {
        s.weight_zero_point = true;
        add(unpack_zero_point(module + ".weight_zero_point", *src.zero_point, w.num_bits,
                              scale_shape[0], scale_shape.size() > 1 ? scale_shape[1] : 1));
      }
    } else {
      const DType stored = w.type == "float" ? DType::F8_E4M3 : DType::I8;
      s.weight_dtype = stored;
      if (from_bitmask) {
        expect_dtype(*src.compressed, stored, "this scheme");
        expect_shape(*src.compressed, {out, in / 2});
        expect_dtype(*src.bitmask, DType::U8, "sparse-24-bitmask");
        expect_shape(*src.bitmask, {out, (in + 7) / 8});
        if (in % 4) fail(wname, ": 2:4 sparsity needs in_features divisible by 4, got ", in);
        s.sparse24 = true;
        add(sparse24_from_bitmask(wname, *src.compressed, *src.bitmask, stored, out, in));
        consumed.insert(src.sparse_shape->info->name);
      } else {
        if (!src.weight) fail(module, " has a weight_scale but no weight");
        expect_dtype(*src.weight, stored, std::string(w.type == "float" ? "FP8" : "INT8") + " " + format);
        expect_shape(*src.weight, {out, in});
        if (sparse_targeted) {
          if (in % 4) fail(wname, ": 2:4 sparsity needs in_features divisible by 4, got ", in);
          s.sparse24 = true;
          add(sparse24_from_dense(wname, *src.weight, stored, out, in));
        } else if (!cc.sparsity && in % 4 == 0 && is_2of4(*src.weight, stored == DType::F8_E4M3, out, in)) {
          // Current llm-compressor writes 2:4-pruned weights with an empty sparsity_config; the
          // zeros are real, so store the compressed form and read 5/8 of the bytes per step.
          s.sparse24 = true;
          ++undeclared_sparse;
          add(sparse24_from_dense(wname, *src.weight, stored, out, in));
        } else if (stored == DType::I8 && w.symmetric && !src.g_idx && int8_tiles_eligible(s, in)) {
          add(int8_tiles_copy(wname, *src.weight, out, in));  // what VNNI GEMMs read, used in place
        } else {
          add(copy_tensor(wname, *src.weight));
        }
      }
      if (src.zero_point) {
        if (w.type == "float") fail("FP8 zero points (", wname, ") are not supported");
        s.weight_zero_point = !w.symmetric;
        if (s.weight_zero_point) add(i8_tensor(module + ".weight_zero_point", *src.zero_point, scale_shape));
        else consumed.insert(src.zero_point->info->name);  // symmetric: all zero by definition
      }
    }
    add(f32_tensor(module + ".weight_scale", scale, scale_shape));
    if (src.g_idx) {
      expect_dtype(*src.g_idx, DType::I32, "g_idx");
      expect_shape(*src.g_idx, {in});
      s.g_idx = true;
      add(copy_tensor(module + ".weight_g_idx", *src.g_idx));
    }
    if (s.input && !s.input->dynamic) {
      add(f32_tensor(module + ".input_scale", *src.input_scale, {1}));
      if (!s.input->symmetric) {
        if (!src.input_zero_point) fail(module, " has asymmetric static inputs but no input_zero_point");
        add(i8_tensor(module + ".input_zero_point", *src.input_zero_point, {1}));
      }
    }
  } else {
    if (from_bitmask) fail(module, ": unquantized 2:4 sparse-24-bitmask weights are not supported");
    if (!src.weight) fail("checkpoint has no tensor ", wname);
    const DType t = src.weight->info->dtype;
    if (t != DType::BF16 && t != DType::F16 && t != DType::F32)
      fail("tensor ", wname, " has dtype ", dtype_name(t), " but is not quantized; expected BF16, F16 or F32");
    expect_shape(*src.weight, {out, in});
    s.weight_dtype = t;
    add(copy_tensor(wname, *src.weight));
  }
  if (src.bias) add(copy_tensor(module + ".bias", *src.bias));
  plan.linears[module] = linear_scheme_to_json(s);
  label_counts[linear_scheme_label(s)]++;
}

}  // namespace

ConversionPlan plan_conversion(const HfCheckpoint& ckpt, bool int8_head) {
  PlanBuilder b(ckpt);
  b.plan.model = parse_model_config(ckpt.config());
  b.plan.compression = parse_compression_config(ckpt.config());
  const ModelConfig& m = b.plan.model;

  for (const auto& e : expected_tensors(m)) {
    if (e.linear) {
      const std::string module = e.name.substr(0, e.name.size() - 7);
      if (module == "lm_head" && int8_head) {
        const SourceTensor* s = ckpt.find(e.name);
        if (!s) fail("checkpoint has no tensor ", e.name, ", which ", m.hf_architecture, " needs");
        b.plan_int8_head(*s, e.shape[0], e.shape[1]);
      } else {
        b.plan_linear(module, e.shape[0], e.shape[1]);
      }
      continue;
    }
    const SourceTensor* s = ckpt.find(e.name);
    if (!s) fail("checkpoint has no tensor ", e.name, ", which ", m.hf_architecture, " needs");
    if (ckpt.find(e.name.substr(0, e.name.size() - 7) + ".weight_scale"))
      fail("tensor ", e.name, " is quantized; only Linear layers may be");
    expect_shape(*s, e.shape);
    const DType t = s->info->dtype;
    if (t != DType::BF16 && t != DType::F16 && t != DType::F32)
      fail("tensor ", e.name, " has dtype ", dtype_name(t), "; expected BF16, F16 or F32");
    b.add(copy_tensor(e.name, *s));
  }

  // A tied head is the embedding matrix; quantized, it becomes a tensor of its own.
  if (int8_head && m.tie_embeddings) b.plan_int8_head(ckpt.get("model.embed_tokens.weight"), m.vocab, m.hidden);

  // Whatever else the checkpoint holds: KV-cache scales are kept; redundant copies are dropped.
  for (const auto& [name, s] : ckpt.tensors()) {
    if (b.consumed.count(name)) continue;
    if (name.ends_with("rotary_emb.inv_freq")) {
      b.plan.notes.push_back("skipped " + name + " (recomputed at run time)");
      continue;
    }
    if (name.rfind("lm_head.", 0) == 0 && m.tie_embeddings) {
      const SourceTensor& embed = ckpt.get("model.embed_tokens.weight");
      const bool same = s.info->dtype == embed.info->dtype && s.data().size() == embed.data().size() &&
                        std::memcmp(s.data().data(), embed.data().data(), s.data().size()) == 0;
      b.plan.notes.push_back("skipped " + name + (same ? " (a copy of the tied embeddings)"
                                                       : " (differs from model.embed_tokens.weight, but config.json ties them; "
                                                         "the embeddings are used, as transformers and vLLM do)"));
      s.release();
      continue;
    }
    if (name.ends_with(".k_scale") || name.ends_with(".v_scale") || name.ends_with("k_proj.output_scale") ||
        name.ends_with("v_proj.output_scale")) {
      b.add(f32_tensor(name, s, {1}));
      continue;
    }
    fail("tensor ", name, " is not part of a ", m.hf_architecture, " model as sparq knows it");
  }

  if (b.undeclared_sparse)
    b.plan.notes.push_back(std::to_string(b.undeclared_sparse) +
                           " linears hold a 2:4 sparse pattern that sparsity_config does not declare; stored as sparse24");
  for (const auto& [label, n] : b.label_counts) {
    if (!b.plan.scheme_summary.empty()) b.plan.scheme_summary += ", ";
    b.plan.scheme_summary += label + " (" + std::to_string(n) + " linear" + (n > 1 ? "s" : "") + ")";
  }
  return std::move(b.plan);
}

}  // namespace sparq
