#include <catch2/catch.hpp>

#include "convert/safetensors.h"
#include "runtime/core/error.h"
#include "test_util.h"

using namespace sparq;
using namespace sparq::test;

namespace {
SafetensorsHeader parse(const std::string& file) {
  return parse_safetensors_header({reinterpret_cast<const uint8_t*>(file.data()), file.size()}, file.size());
}
std::string two_tensors() {
  return make_safetensors({{"a", "F32", {2, 2}, std::string(16, '\1')}, {"b", "I8", {3}, std::string(3, '\2')}});
}
}  // namespace

TEST_CASE("a valid safetensors header lists tensors with absolute offsets", "[safetensors]") {
  std::string f = two_tensors();
  auto h = parse(f);
  REQUIRE(h.tensors.size() == 2);
  CHECK(h.tensors[0].name == "a");
  CHECK(h.tensors[0].dtype == DType::F32);
  CHECK(h.tensors[1].end == f.size());
  CHECK(h.tensors[1].begin == f.size() - 3);
}

TEST_CASE("every dtype the formats use is understood", "[safetensors]") {
  for (const char* d : {"F8_E4M3", "I8", "U8", "I32", "I64", "BF16", "F16", "F32", "F64", "BOOL", "I16", "U16"}) {
    auto t = dtype_from_name(d);
    REQUIRE(t);
    std::string f = make_safetensors({{"x", d, {2}, std::string(2 * dtype_bits(*t) / 8, '\0')}});
    CHECK(parse(f).tensors[0].dtype == *t);
  }
}

TEST_CASE("headers that lie are refused with a message", "[safetensors]") {
  std::string good = two_tensors();
  SECTION("truncated file") {
    std::string f = good.substr(0, good.size() - 2);
    CHECK_THROWS_WITH(parse(f), Catch::Contains("past the end of the data"));
  }
  SECTION("header length past the end of the file") {
    std::string f = good;
    uint64_t n = f.size() * 2;
    std::memcpy(f.data(), &n, 8);
    CHECK_THROWS_WITH(parse(f), Catch::Contains("runs past the end of the file"));
  }
  SECTION("absurd header length") {
    std::string f = good;
    uint64_t n = ~0ull;
    std::memcpy(f.data(), &n, 8);
    CHECK_THROWS_WITH(parse(f), Catch::Contains("absurd"));
  }
  SECTION("overlapping offsets") {
    std::string f = make_safetensors({}, R"({"a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]},)"
                                         R"("b":{"dtype":"I8","shape":[4],"data_offsets":[2,6]}})") + std::string(6, '\0');
    CHECK_THROWS_WITH(parse(f), Catch::Contains("overlap"));
  }
  SECTION("size that does not match dtype x shape") {
    std::string f = make_safetensors({}, R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})") + std::string(8, '\0');
    CHECK_THROWS_WITH(parse(f), Catch::Contains("needs 12"));
  }
  SECTION("unknown dtype") {
    std::string f = make_safetensors({}, R"({"a":{"dtype":"Q4_K","shape":[1],"data_offsets":[0,1]}})") + std::string(1, '\0');
    CHECK_THROWS_WITH(parse(f), Catch::Contains("unknown dtype"));
  }
  SECTION("hole between tensors") {
    std::string f = make_safetensors({}, R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},)"
                                         R"("b":{"dtype":"I8","shape":[2],"data_offsets":[4,6]}})") + std::string(6, '\0');
    CHECK_THROWS_WITH(parse(f), Catch::Contains("hole"));
  }
  SECTION("negative or reversed offsets") {
    std::string f = make_safetensors({}, R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[2,0]}})") + std::string(2, '\0');
    CHECK_THROWS_WITH(parse(f), Catch::Contains("data_offsets"));
  }
  SECTION("shape overflow") {
    std::string f = make_safetensors({}, R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})");
    CHECK_THROWS_AS(parse(f), Error);
  }
  SECTION("not JSON") {
    std::string f = make_safetensors({}, "{not json");
    CHECK_THROWS_WITH(parse(f), Catch::Contains("not valid JSON"));
  }
  SECTION("a number too large for a double (found by fuzzing)") {
    std::string f = make_safetensors({}, R"({"a":{"dtype":"F32","shape":[1e999999],"data_offsets":[0,4]}})") + std::string(4, '\0');
    CHECK_THROWS_WITH(parse(f), Catch::Contains("not valid JSON"));
  }
  SECTION("too short") {
    CHECK_THROWS_WITH(parse(std::string(5, '\0')), Catch::Contains("too short"));
  }
}
