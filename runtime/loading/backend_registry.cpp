#include "runtime/loading/backend_registry.h"

#include <algorithm>
#include <cstdlib>

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
                 return make_cpu_backend({o.threads, o.use_onednn, o.fault});
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

std::string parse_backend_spec(const std::string& spec, BackendOptions& options) {
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  if (name.empty()) fail("--backend \"", spec, "\": no backend name before the options");
  if (colon == std::string::npos) return name;
  const std::string list = spec.substr(colon + 1);
  auto whole_number = [&](const std::string& key, const std::string& v, int max) {
    if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos || std::stoi(v) > max)
      fail("--backend \"", spec, "\": ", key, " must be a whole number from 0 to ", max, ", got \"", v, "\"");
    return std::stoi(v);
  };
  for (size_t start = 0; start <= list.size();) {
    const size_t end = std::min(list.find(',', start), list.size());
    const std::string item = list.substr(start, end - start);
    const size_t eq = item.find('=');
    if (eq == std::string::npos)
      fail("--backend \"", spec, "\": option \"", item, "\" is not key=value (threads, device, onednn)");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "threads") {
      options.threads = whole_number(key, value, 1024);
    } else if (key == "device") {
      options.device = whole_number(key, value, 1024);
    } else if (key == "onednn") {
      if (value != "on" && value != "off") fail("--backend \"", spec, "\": onednn must be on or off, got \"", value, "\"");
      options.use_onednn = value == "on";
    } else if (key == "fault") {
      const char* allowed = std::getenv("SPARQ_TEST_FAULTS");
      if (!allowed || std::string(allowed) != "1")
        fail("--backend \"", spec, "\": fault= injects a deliberate error for tests; set SPARQ_TEST_FAULTS=1 to use it");
      if (value != "attention") fail("--backend \"", spec, "\": the only fault is \"attention\", got \"", value, "\"");
      if (name != "cpu") fail("--backend \"", spec, "\": fault= is a cpu backend option");
      options.fault = value;
    } else {
      fail("--backend \"", spec, "\": unknown option \"", key, "\" (threads, device, onednn)");
    }
    start = end + 1;
  }
  return name;
}

std::string backend_choices() {
  std::string s;
  for (const BackendEntry& e : backend_registry()) s += (s.empty() ? "" : "|") + e.name;
  return s + "|auto";
}

}  // namespace sparq
