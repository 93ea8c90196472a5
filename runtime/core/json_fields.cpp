#include "runtime/core/json_fields.h"

namespace sparq {

using nlohmann::json;

const json& json_field(const json& obj, std::string_view key, std::string_view owner) {
  if (!obj.is_object()) fail(owner, " is not a JSON object");
  auto it = obj.find(key);
  if (it == obj.end()) fail(owner, " has no \"", key, "\"");
  return *it;
}

std::string json_string(const json& obj, std::string_view key, std::string_view owner) {
  const json& v = json_field(obj, key, owner);
  if (!v.is_string()) fail(owner, ": \"", key, "\" must be a string");
  return v.get<std::string>();
}

int64_t json_int(const json& obj, std::string_view key, std::string_view owner) {
  const json& v = json_field(obj, key, owner);
  if (v.is_number_integer()) return v.get<int64_t>();
  // Python writes some integers as floats (e.g. 8.0); accept exact ones.
  if (v.is_number_float()) {
    double d = v.get<double>();
    // Range first: converting an out-of-range double to int64 is undefined.
    if (d > -9.2e18 && d < 9.2e18 && d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
  }
  fail(owner, ": \"", key, "\" must be an integer");
}

uint64_t json_uint(const json& obj, std::string_view key, std::string_view owner) {
  const json& v = json_field(obj, key, owner);
  if (!v.is_number_unsigned()) fail(owner, ": \"", key, "\" must be a non-negative integer");
  return v.get<uint64_t>();
}

double json_number(const json& obj, std::string_view key, std::string_view owner) {
  const json& v = json_field(obj, key, owner);
  if (!v.is_number()) fail(owner, ": \"", key, "\" must be a number");
  return v.get<double>();
}

bool json_bool(const json& obj, std::string_view key, std::string_view owner) {
  const json& v = json_field(obj, key, owner);
  if (!v.is_boolean()) fail(owner, ": \"", key, "\" must be true or false");
  return v.get<bool>();
}

std::vector<int64_t> json_int_list(const json& obj, std::string_view key, std::string_view owner) {
  const json& v = json_field(obj, key, owner);
  if (!v.is_array()) fail(owner, ": \"", key, "\" must be a list of integers");
  std::vector<int64_t> out;
  out.reserve(v.size());
  for (const auto& e : v) {
    if (!e.is_number_integer()) fail(owner, ": \"", key, "\" must be a list of integers");
    out.push_back(e.get<int64_t>());
  }
  return out;
}

namespace {
bool absent(const json& obj, std::string_view key) {
  if (!obj.is_object()) return true;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null();
}
}  // namespace

int64_t json_int_or(const json& obj, std::string_view key, int64_t dflt, std::string_view owner) {
  return absent(obj, key) ? dflt : json_int(obj, key, owner);
}
double json_number_or(const json& obj, std::string_view key, double dflt, std::string_view owner) {
  return absent(obj, key) ? dflt : json_number(obj, key, owner);
}
bool json_bool_or(const json& obj, std::string_view key, bool dflt, std::string_view owner) {
  return absent(obj, key) ? dflt : json_bool(obj, key, owner);
}
std::string json_string_or(const json& obj, std::string_view key, std::string dflt, std::string_view owner) {
  return absent(obj, key) ? dflt : json_string(obj, key, owner);
}

json parse_json(std::string_view text, std::string_view what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers that overflow
    fail(what, " is not valid JSON: ", e.what());
  }
}

}  // namespace sparq
