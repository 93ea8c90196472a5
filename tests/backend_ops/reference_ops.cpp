#include "reference_ops.h"

#include <algorithm>
#include <cmath>

#include "runtime/core/float_formats.h"

namespace sparq::reference {

namespace {

// One activation row (or the whole batch, per tensor) quantized as the scheme says: the values the
// products see, and the size of one rounding step at each value.
void fake_quantize(const LogicalLinear& l, const float* x, int64_t n, float tensor_max, double* xq, double* step) {
  const InputQuantization& q = *l.input;
  if (!q.dynamic) {
    const double s = l.input_scale;
    for (int64_t k = 0; k < n; ++k) {
      if (q.is_float) {
        const uint8_t b = f32_to_fp8_e4m3(static_cast<float>(x[k] / s));
        xq[k] = fp8_e4m3_to_f32(b) * s;
        step[k] = std::fabs(fp8_e4m3_to_f32(static_cast<uint8_t>((b & 0x7f) == 0x7e ? b : b + 1)) - fp8_e4m3_to_f32(b)) * s;
      } else {
        const double v = std::clamp(std::nearbyint(x[k] / s) + l.input_zero_point, -128.0, 127.0);
        xq[k] = (v - l.input_zero_point) * s;
        step[k] = s;
      }
    }
    return;
  }
  float a = tensor_max;
  if (q.strategy == InputStrategy::Token) {
    a = 0;
    for (int64_t k = 0; k < n; ++k) a = std::max(a, std::fabs(x[k]));
  }
  if (q.is_float) {
    const float s = std::max(a / 448.0f, 1.0f / (448.0f * 512.0f));
    const float inv = 1.0f / s;
    for (int64_t k = 0; k < n; ++k) {
      const uint8_t b = f32_to_fp8_e4m3(x[k] * inv);
      xq[k] = static_cast<double>(fp8_e4m3_to_f32(b)) * s;
      const uint8_t up = static_cast<uint8_t>((b & 0x7f) == 0x7e ? b : b + 1);
      step[k] = std::fabs(static_cast<double>(fp8_e4m3_to_f32(up)) - fp8_e4m3_to_f32(b)) * s;
    }
  } else {
    const float s = a / 127.0f;
    const float inv = a == 0.0f ? 0.0f : 127.0f / a;
    for (int64_t k = 0; k < n; ++k) {
      xq[k] = std::clamp(static_cast<double>(std::nearbyint(x[k] * inv)), -128.0, 127.0) * s;
      step[k] = s;
    }
  }
}

}  // namespace

std::vector<double> linear(const LogicalLinear& l, const std::vector<float>& x, int64_t rows, std::vector<double>& step,
                           std::vector<double>& magnitude) {
  std::vector<double> y(static_cast<size_t>(rows * l.out)), xq(static_cast<size_t>(l.in)), xs(static_cast<size_t>(l.in));
  step.assign(y.size(), 0.0);
  magnitude.assign(y.size(), 0.0);
  float tensor_max = 0;
  for (float v : x) tensor_max = std::max(tensor_max, std::fabs(v));
  for (int64_t t = 0; t < rows; ++t) {
    const float* xr = x.data() + t * l.in;
    if (l.input) {
      fake_quantize(l, xr, l.in, tensor_max, xq.data(), xs.data());
    } else {
      for (int64_t k = 0; k < l.in; ++k) xq[static_cast<size_t>(k)] = xr[k];
      std::fill(xs.begin(), xs.end(), 0.0);
    }
    for (int64_t o = 0; o < l.out; ++o) {
      double acc = 0, worst = 0, mag = 0;
      for (int64_t k = 0; k < l.in; ++k) {
        const double w = l.weight[static_cast<size_t>(o * l.in + k)];
        acc += xq[static_cast<size_t>(k)] * w;
        mag += std::fabs(xq[static_cast<size_t>(k)] * w);
        worst = std::max(worst, std::fabs(w) * xs[static_cast<size_t>(k)]);
      }
      if (!l.bias.empty()) acc += l.bias[static_cast<size_t>(o)];
      const size_t i = static_cast<size_t>(t * l.out + o);
      y[i] = acc;
      step[i] = worst;
      magnitude[i] = mag + (l.bias.empty() ? 0.0 : std::fabs(l.bias[static_cast<size_t>(o)]));
    }
  }
  return y;
}

std::vector<double> rms_norm(const std::vector<float>& x, int64_t rows, int64_t width, const std::vector<float>& w,
                             double eps, NormForm form) {
  std::vector<double> y(x.size());
  for (int64_t t = 0; t < rows; ++t) {
    double ss = 0;
    for (int64_t k = 0; k < width; ++k) ss += static_cast<double>(x[static_cast<size_t>(t * width + k)]) * x[static_cast<size_t>(t * width + k)];
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(width) + eps);
    for (int64_t k = 0; k < width; ++k) {
      const double n = x[static_cast<size_t>(t * width + k)] * r;
      y[static_cast<size_t>(t * width + k)] = form == NormForm::OffsetOne ? n * (1.0 + w[static_cast<size_t>(k)]) : n * w[static_cast<size_t>(k)];
    }
  }
  return y;
}

std::vector<double> rope(const std::vector<float>& x, int64_t rows, int64_t heads, int64_t head_dim,
                         const std::vector<float>& inv_freq, const std::vector<int64_t>& positions) {
  std::vector<double> y(x.begin(), x.end());
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double angle = static_cast<double>(positions[static_cast<size_t>(t)]) * inv_freq[static_cast<size_t>(i)];
        const size_t a = static_cast<size_t>((t * heads + h) * head_dim + i), b = a + static_cast<size_t>(half);
        y[a] = x[a] * std::cos(angle) - x[b] * std::sin(angle);
        y[b] = x[b] * std::cos(angle) + x[a] * std::sin(angle);
      }
  return y;
}

std::vector<double> gated_activation(const std::vector<float>& gate, const std::vector<float>& up, GateActivation act) {
  std::vector<double> y(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) {
    const double g = gate[i];
    const double a = act == GateActivation::Silu
                         ? g / (1.0 + std::exp(-g))
                         : 0.5 * g * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g)));
    y[i] = a * up[i];
  }
  return y;
}

std::vector<double> soft_cap(const std::vector<float>& x, double cap) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = cap * std::tanh(x[i] / cap);
  return y;
}

std::vector<double> attention_row(const AttentionOp& op, const float* q, const std::vector<const float*>& keys,
                                  const std::vector<const float*>& values, int64_t pos) {
  const int64_t D = op.head_dim, group = op.heads / op.kv_heads;
  const int64_t lo = op.sliding_window > 0 ? std::max<int64_t>(0, pos - op.sliding_window + 1) : 0;
  std::vector<double> out(static_cast<size_t>(op.heads * D), 0.0);
  for (int64_t h = 0; h < op.heads; ++h) {
    const int64_t kvh = h / group;
    std::vector<double> s(static_cast<size_t>(pos - lo + 1));
    double mx = -1e300;
    for (int64_t j = lo; j <= pos; ++j) {
      double dot = 0;
      for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(q[h * D + d]) * keys[static_cast<size_t>(j)][kvh * D + d];
      double v = dot * op.scale;
      if (op.softcap > 0) v = op.softcap * std::tanh(v / op.softcap);
      s[static_cast<size_t>(j - lo)] = v;
      mx = std::max(mx, v);
    }
    double sum = 0;
    for (double& v : s) sum += (v = std::exp(v - mx));
    for (int64_t j = lo; j <= pos; ++j)
      for (int64_t d = 0; d < D; ++d)
        out[static_cast<size_t>(h * D + d)] += s[static_cast<size_t>(j - lo)] / sum * values[static_cast<size_t>(j)][kvh * D + d];
  }
  return out;
}

}  // namespace sparq::reference
