#include "runtime/loading/backend_registry.h"

#include "backends/cpu/cpu_backend.h"
#include "runtime/core/error.h"

namespace sparq {

namespace {

// An accelerator whose device listing is built but whose model backend is not (yet) in this build.
BackendEntry listing_only(std::string name, std::function<std::vector<DeviceInfo>(std::string*)> devices,
                          std::string why) {
  return {std::move(name), [why] { return why; }, std::move(devices),
          [why](const BackendOptions&) -> std::unique_ptr<Backend> { fail(why); }};
}

std::vector<BackendEntry> make_registry() {
  std::vector<BackendEntry> r;
#ifdef SPARQ_HAVE_CUDA
  r.push_back(listing_only("cuda", list_cuda_devices, "this build lists CUDA devices but has no CUDA model backend yet"));
#else
  r.push_back(listing_only("cuda", [](std::string* why) { *why = "not built (nvcc was not found or -DSPARQ_CUDA=OFF)"; return std::vector<DeviceInfo>{}; },
                           "the CUDA backend is not built (nvcc was not found or -DSPARQ_CUDA=OFF)"));
#endif
#ifdef SPARQ_HAVE_VULKAN
  r.push_back(listing_only("vulkan", list_vulkan_devices, "this build lists Vulkan devices but has no Vulkan model backend yet"));
#else
  r.push_back(listing_only("vulkan", [](std::string* why) { *why = "not built (Vulkan SDK not found or -DSPARQ_VULKAN=OFF)"; return std::vector<DeviceInfo>{}; },
                           "the Vulkan backend is not built (Vulkan SDK not found or -DSPARQ_VULKAN=OFF)"));
#endif
  r.push_back({"cpu", [] { return std::string(); }, [](std::string*) { return list_cpu_devices(); },
               [](const BackendOptions& o) -> std::unique_ptr<Backend> {
                 if (o.device != 0) fail("the cpu backend has one device (0); got --device ", o.device);
                 return make_cpu_backend({o.threads, o.use_onednn});
               }});
  return r;
}

}  // namespace

const std::vector<BackendEntry>& backend_registry() {
  static const std::vector<BackendEntry> registry = make_registry();
  return registry;
}

const BackendEntry& find_backend(const std::string& name) {
  for (const BackendEntry& e : backend_registry())
    if (e.name == name) return e;
  fail("unknown backend \"", name, "\" (choose ", backend_choices(), ")");
}

std::string backend_choices() {
  std::string s;
  for (const BackendEntry& e : backend_registry()) s += (s.empty() ? "" : "|") + e.name;
  return s + "|auto";
}

}  // namespace sparq
