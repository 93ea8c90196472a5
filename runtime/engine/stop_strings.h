// Stop strings over streamed text: text is released as soon as it cannot be the start of a stop
// string, and nothing from a matched stop string on is ever released. Matching is on bytes; stop
// strings must be valid UTF-8, so a held-back suffix always starts on a character boundary and
// released text never ends inside a character that was pushed whole.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace sparq {

class StopStringMatcher {
 public:
  // Throws sparq::Error for an empty stop string or one that is not valid UTF-8.
  explicit StopStringMatcher(std::vector<std::string> stops);

  // Feed newly decoded text; returns the text that is safe to emit now (cannot be part of a stop string).
  std::string push(std::string_view text);
  // A stop string was matched; nothing from it on is ever emitted.
  bool stopped() const { return stopped_; }
  // Index in the constructor's list of the stop string that matched (-1 while none has).
  int matched_index() const { return matched_; }
  // At the end without a stop: whatever was held back.
  std::string flush();

 private:
  std::vector<std::string> stops_;
  std::string held_;  // the longest suffix of the text so far that is a prefix of a stop string
  bool stopped_ = false;
  int matched_ = -1;
};

}  // namespace sparq
