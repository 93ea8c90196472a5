// Helpers shared by the unit tests: scratch directories and hand-built safetensors files.
#pragma once
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sparq::test {

// A fresh directory under the build tree (or /tmp), removed at scope exit.
struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& tag) {
    const char* base = std::getenv("SPARQ_TEST_TMP");
    std::filesystem::path root = base ? base : std::filesystem::temp_directory_path();
    path = root / ("sparq-" + tag + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct StTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string data;
};

// Serialises tensors as a safetensors file; `header_override` replaces the JSON header when set.
inline std::string make_safetensors(const std::vector<StTensor>& tensors, const std::string& header_override = "") {
  nlohmann::json h = nlohmann::json::object();
  std::string data;
  for (const auto& t : tensors) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.data.size()}}};
    data += t.data;
  }
  std::string header = header_override.empty() ? h.dump() : header_override;
  while ((8 + header.size()) % 8) header += ' ';
  std::string out(8, '\0');
  uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

// The committed fixture directories (tests/fixtures/*) that hold `marker`, sorted.
inline std::vector<std::filesystem::path> fixture_dirs(const std::string& marker) {
  std::vector<std::filesystem::path> out;
  const std::filesystem::path root = std::filesystem::path(SPARQ_SOURCE_DIR) / "tests" / "fixtures";
  if (std::filesystem::is_directory(root))
    for (const auto& e : std::filesystem::directory_iterator(root))
      if (std::filesystem::exists(e.path() / marker)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)};
}

}  // namespace sparq::test
