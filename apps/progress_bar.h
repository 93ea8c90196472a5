// A one-line progress bar on stderr, drawn only when stderr is a terminal.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace sparq {

class ProgressBar {
 public:
  ProgressBar();
  void update(const std::string& phase, uint64_t done, uint64_t total, const std::string& item);
  void finish();  // ends the line, if one was drawn

 private:
  bool enabled_;
  bool drawn_ = false;
  std::string phase_;
  std::chrono::steady_clock::time_point last_{};
};

std::string human_bytes(uint64_t b);

}  // namespace sparq
