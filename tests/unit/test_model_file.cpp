#include <catch2/catch.hpp>
#include <filesystem>

#include "runtime/core/error.h"
#include "runtime/core/hashing.h"
#include "runtime/model_file/architecture.h"
#include "runtime/model_file/linear_scheme.h"
#include "runtime/model_file/sparq_format.h"
#include "runtime/model_file/int8_tiles.h"
#include "runtime/model_file/sparq_reader.h"
#include "runtime/model_file/sparq_writer.h"
#include "test_util.h"

using namespace sparq;
using namespace sparq::test;
using nlohmann::json;

namespace {

json tiny_llama_config() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 8}, {"intermediate_size", 16},
          {"num_hidden_layers", 1}, {"num_attention_heads", 2}, {"num_key_value_heads", 1},
          {"head_dim", 4}, {"vocab_size", 16}, {"tie_word_embeddings", false}};
}

// Writes a complete, valid model file whose linears are all BF16 and whose bytes count up.
void write_tiny_model(const std::string& path) {
  SparqWriter w(path);
  json linears = json::object();
  uint8_t counter = 0;
  for (const auto& e : expected_tensors(parse_model_config(tiny_llama_config()))) {
    w.begin_tensor(e.name, DType::BF16, e.shape, Layout::RowMajor);
    std::vector<uint8_t> bytes(*row_major_bytes(DType::BF16, e.shape));
    for (auto& b : bytes) b = counter++;
    w.write(bytes);
    w.end_tensor();
    if (e.linear) linears[e.name.substr(0, e.name.size() - 7)] = linear_scheme_to_json(LinearScheme{});
  }
  w.add_blob("tokenizer.json", as_bytes(std::string(R"({"model":{}})")));
  json meta{{"format", "sparq"}, {"format_version", kSparqVersion}, {"config", tiny_llama_config()}, {"linears", linears}};
  w.finish(meta);
}

// Rewrites the index JSON of a file image, keeping the checksum valid, to reach the validation
// behind it.
std::string with_index(const std::string& image, const std::function<void(json&)>& edit) {
  SparqHeader h;
  std::memcpy(&h, image.data(), sizeof h);
  json index = json::parse(image.substr(h.index_offset, h.index_bytes));
  edit(index);
  std::string idx = index.dump();
  std::string out = image.substr(0, h.index_offset) + idx;
  h.index_bytes = idx.size();
  h.file_bytes = out.size();
  Xxh3Stream s;
  s.update(as_bytes(image.substr(h.metadata_offset, h.metadata_bytes)));
  s.update(as_bytes(idx));
  h.json_checksum = s.digest();
  std::memcpy(out.data(), &h, sizeof h);
  return out;
}

ModelFile from_string(const std::string& s) {
  return ModelFile::from_bytes({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

}  // namespace

TEST_CASE("a written model file reads back with every tensor page-aligned", "[model_file]") {
  ScratchDir dir("mf-roundtrip");
  const std::string path = dir / "tiny.sparq";
  write_tiny_model(path);
  ModelFile f = ModelFile::open(path);
  CHECK(f.metadata()["config"]["hidden_size"] == 8);
  const TensorEntry& q = f.tensor("model.layers.0.self_attn.q_proj.weight");
  CHECK(q.shape == std::vector<int64_t>{8, 8});
  CHECK(q.offset % kSparqAlignment == 0);
  CHECK(f.data(q).size() == 128);
  REQUIRE(f.blob("tokenizer.json"));
  CHECK(f.blob("tokenizer.json")->size() == 12);
  CHECK_FALSE(f.blob("tokenizer.model"));
  CHECK_NOTHROW(f.verify_checksums());
  CHECK_FALSE(std::filesystem::exists(path + ".partial-" + std::to_string(::getpid())));
}

TEST_CASE("a writer that is not finished leaves no file behind", "[model_file]") {
  ScratchDir dir("mf-unfinished");
  const std::string path = dir / "never.sparq";
  std::string temp;
  {
    SparqWriter w(path);
    temp = w.temp_path();
    w.begin_tensor("x", DType::F32, {4}, Layout::RowMajor);
    CHECK(std::filesystem::exists(temp));
  }
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK_FALSE(std::filesystem::exists(temp));
}

TEST_CASE("the writer refuses bytes that do not fit the layout", "[model_file]") {
  ScratchDir dir("mf-writer");
  SparqWriter w(dir / "x.sparq");
  w.begin_tensor("x", DType::F32, {2}, Layout::RowMajor);
  std::vector<uint8_t> too_many(12);
  CHECK_THROWS_WITH(w.write(too_many), Catch::Contains("more bytes"));
  CHECK_THROWS_WITH(w.end_tensor(), Catch::Contains("wrote 0 bytes"));
  CHECK_THROWS_WITH(w.begin_tensor("y", DType::I8, {2, 3}, Layout::Sparse24), Catch::Contains("was not ended"));
}

TEST_CASE("corrupt or truncated model files are refused with one clear error", "[model_file]") {
  ScratchDir dir("mf-corrupt");
  const std::string path = dir / "tiny.sparq";
  write_tiny_model(path);
  const std::string good = read_file(path);
  SparqHeader h;
  std::memcpy(&h, good.data(), sizeof h);

  SECTION("truncated") { CHECK_THROWS_WITH(from_string(good.substr(0, good.size() - 100)), Catch::Contains("truncated")); }
  SECTION("shorter than a header") { CHECK_THROWS_WITH(from_string(good.substr(0, 10)), Catch::Contains("not a sparq model file")); }
  SECTION("bad magic") {
    std::string f = good;
    f[0] = 'X';
    CHECK_THROWS_WITH(from_string(f), Catch::Contains("bad magic"));
  }
  SECTION("empty header of an interrupted write") {
    std::string f = good;
    std::memset(f.data(), 0, sizeof h);
    CHECK_THROWS_WITH(from_string(f), Catch::Contains("interrupted"));
  }
  SECTION("newer format version") {
    std::string f = good;
    uint32_t v = kSparqVersion + 1;
    std::memcpy(f.data() + 8, &v, 4);
    CHECK_THROWS_WITH(from_string(f), Catch::Contains("newer"));
  }
  SECTION("a version 1 file cannot hold int8_k4_tiles") {
    std::string f = with_index(good, [](json& index) {
      json& t = index["tensors"][0];
      t["dtype"] = "I8";
      t["shape"] = {1, 1};
      t["layout"] = "int8_k4_tiles";
      t["bytes"] = Int8TilesShape(1, 1).total_bytes();
    });
    uint32_t v = 1;
    std::memcpy(f.data() + 8, &v, 4);
    CHECK_THROWS_WITH(from_string(f), Catch::Contains("needs file format version 2"));
  }
  SECTION("flipped metadata byte") {
    std::string f = good;
    f[h.metadata_offset + 3] ^= 1;
    CHECK_THROWS_WITH(from_string(f), Catch::Contains("checksum mismatch"));
  }
  SECTION("flipped tensor byte is found by the checksum pass") {
    std::string f = good;
    f[kSparqAlignment + 5] ^= 0x40;
    ModelFile m = from_string(f);
    CHECK_THROWS_WITH(m.verify_checksums(), Catch::Contains("checksum mismatch in tensor model.embed_tokens.weight"));
  }
  SECTION("overlapping tensors") {
    auto f = with_index(good, [](json& idx) { idx["tensors"][1]["offset"] = idx["tensors"][0]["offset"]; });
    CHECK_THROWS_WITH(from_string(f), Catch::Contains("overlap"));
  }
  SECTION("unaligned tensor") {
    auto f = with_index(good, [](json& idx) { idx["tensors"][1]["offset"] = idx["tensors"][1]["offset"].get<uint64_t>() + 8; });
    CHECK_THROWS_WITH(from_string(f), Catch::Contains("not page aligned"));
  }
  SECTION("tensor past the end") {
    auto f = with_index(good, [](json& idx) { idx["tensors"][0]["offset"] = uint64_t{1} << 40; });
    CHECK_THROWS_WITH(from_string(f), Catch::Contains("runs past the end"));
  }
  SECTION("byte size that does not match dtype x shape") {
    auto f = with_index(good, [](json& idx) { idx["tensors"][0]["bytes"] = 7; });
    CHECK_THROWS_WITH(from_string(f), Catch::Contains("needs"));
  }
  SECTION("a tensor the architecture needs is missing") {
    auto f = with_index(good, [](json& idx) { idx["tensors"].erase(idx["tensors"].begin() + 2); });
    CHECK_THROWS_AS(from_string(f), Error);
  }
  SECTION("a tensor with the wrong shape") {
    auto f = with_index(good, [](json& idx) {
      for (auto& t : idx["tensors"])
        if (t["name"] == "model.norm.weight") {
          t["shape"] = {4, 2};
        }
    });
    CHECK_THROWS_WITH(from_string(f), Catch::Contains("model.norm.weight has shape [4, 2]"));
  }
  SECTION("unknown dtype and layout") {
    auto f = with_index(good, [](json& idx) { idx["tensors"][0]["dtype"] = "Q8_0"; });
    CHECK_THROWS_WITH(from_string(f), Catch::Contains("unknown dtype"));
    auto g = with_index(good, [](json& idx) { idx["tensors"][0]["layout"] = "tiled"; });
    CHECK_THROWS_WITH(from_string(g), Catch::Contains("unknown layout"));
  }
  SECTION("index that is not the expected JSON") {
    auto f = with_index(good, [](json& idx) { idx["tensors"] = "nope"; });
    CHECK_THROWS_AS(from_string(f), Error);
  }
}

TEST_CASE("sparse24 layout sizes follow the kept values plus 2-bit positions", "[model_file]") {
  auto s = layout_bytes(Layout::Sparse24, DType::F8_E4M3, std::vector<int64_t>{4096, 14336});
  REQUIRE(s.bytes);
  CHECK(*s.bytes == 4096ull * 7168 + 4096ull * 1792);  // 5/8 of the dense bytes
  CHECK_FALSE(layout_bytes(Layout::Sparse24, DType::BF16, std::vector<int64_t>{4, 8}).bytes);
  CHECK_FALSE(layout_bytes(Layout::Sparse24, DType::I8, std::vector<int64_t>{4, 6}).bytes);
  CHECK(*layout_bytes(Layout::RowMajor, DType::I4, std::vector<int64_t>{3, 5}).bytes == 9);
  // int8_k4_tiles: both dimensions padded to 64, then 12 bytes per padded row.
  CHECK(*layout_bytes(Layout::Int8K4Tiles, DType::I8, std::vector<int64_t>{2304, 9216}).bytes == 2304ull * 9216 + 12 * 2304);
  CHECK(*layout_bytes(Layout::Int8K4Tiles, DType::I8, std::vector<int64_t>{37, 72}).bytes == 64ull * 128 + 12 * 64);
  CHECK_FALSE(layout_bytes(Layout::Int8K4Tiles, DType::F8_E4M3, std::vector<int64_t>{64, 64}).bytes);
  CHECK_FALSE(layout_bytes(Layout::Int8K4Tiles, DType::I8, std::vector<int64_t>{64}).bytes);
  CHECK_FALSE(layout_bytes(Layout::Int8K4Tiles, DType::I8, std::vector<int64_t>{64, kInt8TilesMaxColumns + 1}).bytes);
}
