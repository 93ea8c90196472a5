// Every backend this build knows, how to list its devices and how to make it; `--backend` and
// `sparq devices` both read this one table. A backend that is not built, or whose device is absent,
// is listed with the reason, so a user learns why it cannot be picked.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/device_info.h"
#include "runtime/graph/backend.h"

namespace sparq {

struct BackendOptions {
  int threads = 0;         // CPU threads; 0 = all cores
  int device = 0;          // index among the backend's devices
  bool use_onednn = true;  // CPU: INT8 linears through oneDNN where it is exact
  // A deliberate wrong result, so tests can show that selftest and compare catch one: "attention"
  // (the last head's attention output is dropped). Empty in normal use.
  std::string fault = {};
};

struct BackendEntry {
  std::string name;  // "cpu", "cuda", "vulkan"
  // Empty when this build can make the backend and it runs models; otherwise why not.
  std::function<std::string()> unavailable;
  // The devices it sees; *why is set when there are none.
  std::function<std::vector<DeviceInfo>(std::string* why)> devices;
  std::function<std::unique_ptr<Backend>(const BackendOptions&)> make;
};

// In the order `--backend auto` prefers them: accelerators first, the CPU last.
const std::vector<BackendEntry>& backend_registry();
// Throws sparq::Error naming the known backends when there is none called `name`.
const BackendEntry& find_backend(const std::string& name);
// "cpu|cuda|vulkan|auto"
std::string backend_choices();

// A --backend value: "NAME" or "NAME:key=value,...", e.g. "cpu:threads=1,onednn=off". Returns the
// name (a backend_registry() name or "auto", not checked here) and applies the options. Keys:
// threads=N, device=N, onednn=on|off, and fault=attention, a test-only switch refused unless the
// environment sets SPARQ_TEST_FAULTS=1. Throws sparq::Error naming a bad key or value.
std::string parse_backend_spec(const std::string& spec, BackendOptions& options);

}  // namespace sparq
