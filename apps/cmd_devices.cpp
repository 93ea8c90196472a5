// sparq devices: the compute devices this build can use.
#include <cstdio>

#include "apps/commands.h"
#include "backends/device_info.h"

namespace sparq {

void add_devices_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("devices", "List the CPU and the GPUs this build of sparq can use");
  cmd->callback([] {
    auto show = [](const std::vector<DeviceInfo>& devs) {
      for (const auto& d : devs) std::printf("%-7s %s: %s\n", d.backend.c_str(), d.name.c_str(), d.details.c_str());
    };
    show(list_cpu_devices());
    std::string why;
#ifdef SPARQ_HAVE_CUDA
    auto cuda = list_cuda_devices(&why);
    if (cuda.empty()) std::printf("%-7s none (%s)\n", "cuda", why.c_str());
    show(cuda);
#else
    std::printf("%-7s not built (nvcc was not found or -DSPARQ_CUDA=OFF)\n", "cuda");
#endif
#ifdef SPARQ_HAVE_VULKAN
    auto vk = list_vulkan_devices(&why);
    if (vk.empty()) std::printf("%-7s none (%s)\n", "vulkan", why.c_str());
    show(vk);
#else
    std::printf("%-7s not built (Vulkan SDK not found or -DSPARQ_VULKAN=OFF)\n", "vulkan");
#endif
  });
}

}  // namespace sparq
