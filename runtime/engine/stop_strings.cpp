#include "runtime/engine/stop_strings.h"

#include <algorithm>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"

namespace sparq {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (size_t i = 0; i < stops_.size(); ++i) {
    if (stops_[i].empty()) fail("stop string ", i + 1, " is empty");
    if (!utf8::is_valid(stops_[i])) fail("stop string ", i + 1, " is not valid UTF-8");
  }
}

std::string StopStringMatcher::push(std::string_view text) {
  if (stopped_ || text.empty()) return {};
  held_.append(text);
  // The earliest match wins; among stop strings matching at the same place, the first listed.
  size_t first = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t at = held_.find(stops_[i]);
    if (at < first) {
      first = at;
      matched_ = static_cast<int>(i);
    }
  }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Hold back the longest suffix that a stop string starts with; a later match can only begin there.
  size_t keep = 0;
  for (const auto& stop : stops_) {
    for (size_t len = std::min(stop.size() - 1, held_.size()); len > keep; --len) {
      if (held_.compare(held_.size() - len, len, stop, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopStringMatcher::flush() {
  std::string out;
  if (!stopped_) out.swap(held_);
  held_.clear();
  return out;
}

}  // namespace sparq
