// One exception type for everything a user can act on: bad files, bad flags, unsupported schemes.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace sparq {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::string to_message_part(const std::string& s) { return s; }
inline std::string to_message_part(const char* s) { return s; }
inline std::string to_message_part(std::string_view s) { return std::string(s); }
inline std::string to_message_part(char c) { return std::string(1, c); }
template <typename T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, char>)
std::string to_message_part(T v) {
  return std::to_string(v);
}

// Builds the message from pieces, so call sites read like sentences.
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::string msg;
  (msg.append(to_message_part(parts)), ...);
  throw Error(msg);
}

}  // namespace sparq
