// OpenMP's team size is a setting of the calling thread. Our own parallel regions name their team
// size (num_threads), but oneDNN's OpenMP build sizes its team from that setting: this sets it for
// the length of one library call and puts the caller's back afterwards.
#pragma once
#include <omp.h>

namespace sparq::cpu {

class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int threads) : previous_(omp_get_max_threads()) { omp_set_num_threads(threads); }
  ~ScopedOmpThreads() { omp_set_num_threads(previous_); }
  ScopedOmpThreads(const ScopedOmpThreads&) = delete;
  ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

 private:
  int previous_;
};

}  // namespace sparq::cpu
