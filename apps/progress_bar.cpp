#include "apps/progress_bar.h"

#include <unistd.h>

#include <cstdio>

namespace sparq {

ProgressBar::ProgressBar() : enabled_(::isatty(STDERR_FILENO) == 1) {}

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(b) / (1ull << 30));
  else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1ull << 20));
  else if (b >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

void ProgressBar::update(const std::string& phase, uint64_t done, uint64_t total, const std::string& item) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const bool complete = done >= total;
  if (phase == phase_ && !complete && now - last_ < std::chrono::milliseconds(100)) return;
  if (phase != phase_ && drawn_) std::fputc('\n', stderr);
  phase_ = phase;
  last_ = now;
  const int width = 30;
  const double frac = total ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const int filled = static_cast<int>(frac * width);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  std::string shown = item.size() > 40 ? "..." + item.substr(item.size() - 37) : item;
  std::fprintf(stderr, "\r\033[K%-9s [%s] %3d%%  %s / %s  %s", phase.c_str(), bar.c_str(), static_cast<int>(frac * 100),
               human_bytes(done).c_str(), human_bytes(total).c_str(), shown.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (drawn_) std::fputc('\n', stderr);
  drawn_ = false;
  phase_.clear();
}

}  // namespace sparq
