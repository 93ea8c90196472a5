#include "runtime/loading/load_model.h"

#include <algorithm>
#include <chrono>

#include "models/model_builder.h"
#include "runtime/core/error.h"

namespace sparq {

namespace {

std::string join_lines(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += "\n  " + l;
  return s;
}

}  // namespace

KvCacheGeometry LoadedModel::kv_geometry() const { return kv_cache_geometry(*graph, kKvBlockTokens, kv_dtype); }

std::unique_ptr<KvStorage> LoadedModel::kv_storage_for_positions(int64_t positions) const {
  const KvCacheGeometry geo = kv_geometry();
  const int64_t blocks = std::max<int64_t>(1, kv_blocks_for(positions, geo.block_tokens));
  return backend->create_kv_storage(geo, static_cast<uint64_t>(blocks) * geo.block_bytes());
}

std::unique_ptr<KvStorage> LoadedModel::kv_storage_for_bytes(uint64_t budget_bytes) const {
  return backend->create_kv_storage(kv_geometry(), budget_bytes);
}

std::optional<DType> kv_dtype_from_scheme(const nlohmann::json& s) {
  if (s.is_null()) return std::nullopt;
  if (!s.is_object()) fail("kv_cache_scheme must be an object or null");
  const std::string type = s.contains("type") && s["type"].is_string() ? s["type"].get<std::string>() : std::string();
  const int64_t bits = s.contains("num_bits") && s["num_bits"].is_number_integer() ? s["num_bits"].get<int64_t>() : 0;
  // Scales: the checkpoint's are calibrated per tensor; the cache keeps its own per head and
  // position (absmax), which bounds the error at least as tightly.
  if (type == "float" && bits == 8) return DType::F8_E4M3;
  if (type == "int" && bits == 8) return DType::I8;
  fail("kv_cache_scheme ", s.dump(), " has no KV cache dtype here (8-bit float or int are supported)");
}

LoadedModel load_model(const std::string& path, const LoadOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  LoadedModel m{ModelFile::open(path), nullptr, nullptr, nullptr, {}, 0, DType::F32};
  if (options.kv_dtype) {
    m.kv_dtype = *options.kv_dtype;
  } else if (m.file.metadata().contains("kv_cache_scheme")) {
    try {
      m.kv_dtype = kv_dtype_from_scheme(m.file.metadata()["kv_cache_scheme"]).value_or(DType::F32);
    } catch (const Error& e) {
      fail(path, ": ", e.what(), " (choose one with --kv-dtype)");
    }
  }
  m.graph = std::make_unique<const Graph>(build_model_graph(m.file));
  BackendOptions backend_options = options.backend_options;
  const std::string backend_name = parse_backend_spec(options.backend, backend_options);
  if (backend_name == "auto") {
    std::string passed_over;
    for (const BackendEntry& e : backend_registry()) {
      if (std::string why = e.unavailable(); !why.empty()) {
        passed_over += e.name + ": " + why + "; ";
        continue;
      }
      std::string no_device;
      if (e.devices(&no_device).empty()) {
        passed_over += e.name + ": no device (" + no_device + "); ";
        continue;
      }
      auto backend = e.make(backend_options);
      const auto missing = unsupported_ops(*backend, *m.graph);
      if (!missing.empty()) {
        passed_over += e.name + ": cannot run " + missing.front() + "; ";
        continue;
      }
      m.backend = std::move(backend);
      m.backend_choice = "auto: " + passed_over + "picked " + e.name;
      break;
    }
    if (!m.backend) fail("no backend can run ", path, " (", passed_over, ")");
  } else {
    const BackendEntry& e = find_backend(backend_name);
    if (std::string why = e.unavailable(); !why.empty()) fail("--backend ", e.name, ": ", why);
    m.backend = e.make(backend_options);
    const auto missing = unsupported_ops(*m.backend, *m.graph);
    if (!missing.empty()) fail("the ", e.name, " backend cannot run ", path, ":", join_lines(missing));
    m.backend_choice = "--backend " + options.backend;
  }
  m.prepared = m.backend->prepare(*m.graph);
  m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m;
}

}  // namespace sparq
