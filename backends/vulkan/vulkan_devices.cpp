#include <vulkan/vulkan.h>

#include <algorithm>
#include <string>
#include <vector>

#include "backends/device_info.h"

namespace sparq {

std::vector<DeviceInfo> list_vulkan_devices(std::string* why) {
  VkApplicationInfo app{};
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "sparq";
  app.apiVersion = VK_API_VERSION_1_1;
  VkInstanceCreateInfo ci{};
  ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  ci.pApplicationInfo = &app;
  VkInstance instance = VK_NULL_HANDLE;
  if (vkCreateInstance(&ci, nullptr, &instance) != VK_SUCCESS) {
    if (why) *why = "no Vulkan driver (vkCreateInstance failed)";
    return {};
  }
  uint32_t n = 0;
  vkEnumeratePhysicalDevices(instance, &n, nullptr);
  std::vector<VkPhysicalDevice> devs(n);
  vkEnumeratePhysicalDevices(instance, &n, devs.data());
  std::vector<DeviceInfo> out;
  for (auto d : devs) {
    VkPhysicalDeviceProperties p{};
    vkGetPhysicalDeviceProperties(d, &p);
    VkPhysicalDeviceMemoryProperties m{};
    vkGetPhysicalDeviceMemoryProperties(d, &m);
    uint64_t heap = 0;
    for (uint32_t i = 0; i < m.memoryHeapCount; ++i)
      if (m.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) heap = std::max<uint64_t>(heap, m.memoryHeaps[i].size);
    const char* kind = p.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU ? "CPU (software)"
                       : p.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU ? "discrete GPU"
                       : p.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ? "integrated GPU" : "other";
    out.push_back({"vulkan", p.deviceName,
                   std::string(kind) + ", Vulkan " + std::to_string(VK_API_VERSION_MAJOR(p.apiVersion)) + "." +
                       std::to_string(VK_API_VERSION_MINOR(p.apiVersion)) + ", " + std::to_string(heap >> 20) + " MiB"});
  }
  vkDestroyInstance(instance, nullptr);
  if (out.empty() && why) *why = "no Vulkan device found";
  return out;
}

}  // namespace sparq
