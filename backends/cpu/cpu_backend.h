// The CPU backend: runs a model graph with f32 activations, weights in place from the model file's
// mmap (except INT8 weights handed to oneDNN, which packs its own copy), OpenMP threads.
#pragma once
#include <memory>
#include <string>

#include "runtime/graph/backend.h"

namespace sparq {

struct CpuBackendOptions {
  int threads = 0;         // 0: all cores OpenMP sees
  bool use_onednn = true;  // INT8 x INT8 linears through oneDNN; false: our own kernel (reads the mmap)
  std::string fault = {};  // "attention": drop the last head's output (a test-only wrong result)
};

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& opts = {});

}  // namespace sparq
