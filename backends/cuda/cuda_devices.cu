#include <cuda_runtime.h>

#include "backends/device_info.h"

namespace sparq {

std::vector<DeviceInfo> list_cuda_devices(std::string* why) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    if (why) *why = cudaGetErrorString(err);
    return {};
  }
  std::vector<DeviceInfo> out;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    out.push_back({"cuda", p.name,
                   "sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
                       std::to_string(p.totalGlobalMem >> 20) + " MiB"});
  }
  if (out.empty() && why) *why = "no CUDA device found";
  return out;
}

}  // namespace sparq
