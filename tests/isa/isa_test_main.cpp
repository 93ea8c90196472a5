// Catch2 main for the kernel tests rebuilt for an older instruction set (tests/CMakeLists.txt): the
// native build only runs the fastest kernel this CPU has, so the fallbacks a binary built elsewhere
// would run are tested here. Exits 77 (ctest: skipped) where this CPU cannot run the variant.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  __builtin_cpu_init();
#if defined(__AVX512BW__)
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) {
    std::puts("this CPU lacks AVX-512 BW: skipped");
    return 77;
  }
#endif
  return Catch::Session().run(argc, argv);
}
