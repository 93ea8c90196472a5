#include <cpuid.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "backends/cpu/fp8_kernels.h"
#include "backends/cpu/onednn_bf16_matmul.h"
#include "backends/cpu/onednn_int8_matmul.h"
#include "backends/device_info.h"

namespace sparq {

std::vector<DeviceInfo> list_cpu_devices() {
  std::string model = "unknown CPU";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  std::string features;
  __builtin_cpu_init();
  auto feature = [&](bool on, const char* name) {
    if (on) features += std::string(features.empty() ? "" : " ") + name;
  };
  feature(__builtin_cpu_supports("avx2"), "avx2");
  feature(__builtin_cpu_supports("fma"), "fma");
  feature(__builtin_cpu_supports("avx512f"), "avx512f");
  feature(__builtin_cpu_supports("avx512bw"), "avx512bw");
  feature(__builtin_cpu_supports("avx512vnni"), "avx512vnni");
  feature(__builtin_cpu_supports("avx512bf16"), "avx512bf16");
  // AVX-VNNI (CPUID leaf 7, sub-leaf 1, EAX bit 4) is unknown to older compilers' builtin.
  unsigned a = 0, b = 0, c = 0, d = 0;
  feature(__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4)), "avxvnni");
  const long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  const char* int8_path = cpu::onednn_int8_is_exact() ? "; INT8 linears: oneDNN (VNNI)"
                                                      : "; INT8 linears: sparq kernel (no VNNI, where oneDNN's sums saturate)";
  const std::string fp8_gemm = "; FP8 prefill GEMM: " + cpu::fp8_gemm_choice().reason +
                               "; FP8 decode GEMV: " + cpu::fp8_gemv_kernel();
  return {{"cpu", model,
           std::to_string(cores) + " threads; " + (features.empty() ? "no SIMD extensions" : features) + int8_path +
               fp8_gemm}};
}

}  // namespace sparq
