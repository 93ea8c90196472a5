// sparq devices: every backend this build knows, its devices, and why one cannot be used.
#include <cstdio>

#include "apps/commands.h"
#include "runtime/loading/backend_registry.h"

namespace sparq {

void add_devices_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("devices", "List the backends of this build, their devices, and what --backend auto picks");
  cmd->callback([] {
    for (const BackendEntry& e : backend_registry()) {
      std::string why;
      const std::vector<DeviceInfo> devices = e.devices(&why);
      if (devices.empty()) std::printf("%-7s none (%s)\n", e.name.c_str(), why.c_str());
      for (size_t i = 0; i < devices.size(); ++i)
        std::printf("%-7s %zu %s: %s\n", e.name.c_str(), i, devices[i].name.c_str(), devices[i].details.c_str());
      if (const std::string no = e.unavailable(); !no.empty()) std::printf("%-7s cannot run models: %s\n", e.name.c_str(), no.c_str());
    }
  });
}

}  // namespace sparq
