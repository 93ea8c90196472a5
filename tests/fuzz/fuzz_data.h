// Files the fuzz targets read at start-up: the repository (found from this file's path) and the
// shared data beside it ($SPARQ_SHARED_DIR, default ../shared). A missing file aborts the target.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace sparq::fuzz {

inline std::string repo_dir() {
  std::string f = __FILE__;  // .../tests/fuzz/fuzz_data.h
  for (int k = 0; k < 3; ++k) f = f.substr(0, f.find_last_of('/'));
  return f;
}

inline std::string shared_dir() {
  const char* env = std::getenv("SPARQ_SHARED_DIR");
  return env ? env : repo_dir() + "/../shared";
}

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "fuzz: cannot read %s\n", path.c_str());
    std::abort();
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace sparq::fuzz
