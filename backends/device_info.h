// What compute devices this build can see, for `sparq devices` and for `--backend auto` later.
#pragma once
#include <string>
#include <vector>

namespace sparq {

struct DeviceInfo {
  std::string backend;  // "cpu", "cuda", "vulkan"
  std::string name;
  std::string details;  // memory, compute capability, ISA features
};

std::vector<DeviceInfo> list_cpu_devices();
// Each accelerator lister returns no devices and sets *why when none can be used.
std::vector<DeviceInfo> list_cuda_devices(std::string* why);
std::vector<DeviceInfo> list_vulkan_devices(std::string* why);

}  // namespace sparq
