#include "runtime/graph/rope_frequencies.h"

#include <cmath>
#include <numbers>

#include "runtime/core/error.h"

namespace sparq {

std::vector<float> rope_inv_freq(const ModelConfig& cfg) {
  const int64_t dim = cfg.head_dim;
  std::vector<float> f(static_cast<size_t>(dim / 2));
  const float base = static_cast<float>(cfg.rope_theta);
  for (int64_t i = 0; i < dim / 2; ++i)  // torch: 1 / base ** (arange(0, dim, 2).float() / dim)
    f[static_cast<size_t>(i)] = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(dim));
  const RopeScaling& rs = cfg.rope_scaling;
  if (rs.type.empty() || rs.type == "default") return f;
  if (rs.type != "llama3") fail("rope scaling \"", rs.type, "\" is not supported (only llama3)");
  // transformers' _compute_llama3_parameters, elementwise in f32.
  const float factor = static_cast<float>(rs.factor), low = static_cast<float>(rs.low_freq_factor),
              high = static_cast<float>(rs.high_freq_factor), old_ctx = static_cast<float>(rs.original_max_position);
  const float low_freq_wavelen = old_ctx / low, high_freq_wavelen = old_ctx / high;
  for (float& x : f) {
    const float wavelen = 2.0f * std::numbers::pi_v<float> / x;
    const float scaled = wavelen > low_freq_wavelen ? x / factor : x;
    const float smooth = (old_ctx / wavelen - low) / (high - low);
    const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
    const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    x = medium ? smoothed : scaled;
  }
  return f;
}

}  // namespace sparq
