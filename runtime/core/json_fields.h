// Typed access to fields of JSON read from outside, with errors that name the field and its owner.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/core/error.h"

namespace sparq {

const nlohmann::json& json_field(const nlohmann::json& obj, std::string_view key, std::string_view owner);
std::string json_string(const nlohmann::json& obj, std::string_view key, std::string_view owner);
int64_t json_int(const nlohmann::json& obj, std::string_view key, std::string_view owner);
uint64_t json_uint(const nlohmann::json& obj, std::string_view key, std::string_view owner);
double json_number(const nlohmann::json& obj, std::string_view key, std::string_view owner);
bool json_bool(const nlohmann::json& obj, std::string_view key, std::string_view owner);
std::vector<int64_t> json_int_list(const nlohmann::json& obj, std::string_view key, std::string_view owner);

// Optional variants: the default when the key is absent or null; a wrong type is still an error.
int64_t json_int_or(const nlohmann::json& obj, std::string_view key, int64_t dflt, std::string_view owner);
double json_number_or(const nlohmann::json& obj, std::string_view key, double dflt, std::string_view owner);
bool json_bool_or(const nlohmann::json& obj, std::string_view key, bool dflt, std::string_view owner);
std::string json_string_or(const nlohmann::json& obj, std::string_view key, std::string dflt, std::string_view owner);

// Parses text as JSON; a syntax error names `what` (a file name, "metadata", ...).
nlohmann::json parse_json(std::string_view text, std::string_view what);

}  // namespace sparq
