// An error answered to an HTTP client as the OpenAI error object:
//   {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}
// with the status code that goes with it. `param` names the request field at fault (null when
// the request as a whole is wrong), so a client can tell which of its inputs to fix.
#pragma once
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace sparq::server {

struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, std::string code, std::string param, const std::string& message)
      : std::runtime_error(message), status(status), type(std::move(type)), code(std::move(code)), param(std::move(param)) {}
  int status;
  std::string type;   // invalid_request_error, authentication_error, not_found_error, ...
  std::string code;   // invalid_value, invalid_type, ...; empty = null
  std::string param;  // the offending field ("messages[0].content"); empty = null
};

// 400s about one field of the request.
[[noreturn]] inline void invalid_value(const std::string& param, const std::string& message) {
  throw ApiError(400, "invalid_request_error", "invalid_value", param, message);
}
[[noreturn]] inline void invalid_type(const std::string& param, const std::string& expected) {
  throw ApiError(400, "invalid_request_error", "invalid_type", param, "'" + param + "' must be " + expected);
}
[[noreturn]] inline void missing_param(const std::string& param) {
  throw ApiError(400, "invalid_request_error", "missing_required_parameter", param, "'" + param + "' is required");
}

}  // namespace sparq::server

namespace sparq::server {

// The OpenAI error object for e.
inline nlohmann::ordered_json error_body(const ApiError& e) {
  nlohmann::ordered_json err;
  err["message"] = e.what();
  err["type"] = e.type;
  err["param"] = e.param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.param);
  err["code"] = e.code.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.code);
  return {{"error", err}};
}

}  // namespace sparq::server
