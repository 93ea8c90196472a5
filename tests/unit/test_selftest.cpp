// The self-test reference block (parsing and validation), the writer's seal/unseal used to embed a
// reference made from the complete file, sparq selftest against a file whose weights were altered
// after conversion, and the near-tie / real-error classification of sparq compare.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "convert/converter.h"
#include "runtime/core/error.h"
#include "runtime/core/hashing.h"
#include "runtime/model_file/int8_tiles.h"
#include "runtime/model_file/reference_block.h"
#include "runtime/model_file/sparq_format.h"
#include "runtime/model_file/sparq_reader.h"
#include "runtime/model_file/sparq_writer.h"
#include "runtime/selftest/backend_compare.h"
#include "runtime/selftest/selftest.h"
#include "runtime/tokenizer/tokenizer_loader.h"
#include "engine_test_util.h"
#include "test_util.h"

using namespace sparq;
using namespace sparq::test;
using json = nlohmann::json;

namespace {

json valid_block() {
  json positions = json::array({{{"top_ids", {5, 3}}, {"top_logits", {2.5, 1.0}}, {"row_scale", 3.0}},
                                {{"top_ids", {7, 1}}, {"top_logits", {-0.5, -0.75}}, {"row_scale", 4.0}}});
  return {{"format", "sparq.selftest_reference"},
          {"version", 1},
          {"source", {{"producer", "transformers"}}},
          {"top_k", 2},
          {"prompts", json::array({{{"text", "hi"}, {"ids", {2, 9}}, {"positions", positions}, {"greedy_ids", {7, 4}},
                                    {"greedy_margins", {0.25, 0.5}}}})}};
}

std::string parse_error(const json& j, int64_t vocab = 10) {
  try {
    ReferenceBlock::parse(j.dump(), vocab, "REF.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Loads a converted fixture on the CPU backend.
LoadedModel load_cpu(const std::string& path) {
  LoadOptions o;
  o.backend = "cpu";
  o.backend_options.threads = 2;
  return load_model(path, o);
}

}  // namespace

TEST_CASE("a self-test reference block round-trips and every field is validated", "[selftest]") {
  const ReferenceBlock b = ReferenceBlock::parse(valid_block().dump(), 10, "REF.json");
  REQUIRE(b.prompts.size() == 1);
  CHECK(b.prompts[0].positions[1].top_ids == std::vector<int32_t>{7, 1});
  CHECK(b.prompts[0].positions[1].row_scale == 4.0f);
  const ReferenceBlock again = ReferenceBlock::parse(b.to_json(), 10, "again");
  CHECK(again.to_json() == b.to_json());

  auto broken = [](auto edit) {
    json j = valid_block();
    edit(j);
    return parse_error(j);
  };
  CHECK_THAT(parse_error(valid_block(), 8), Catch::Contains("ids[1] = 9 is not a token of this model (vocab 8)"));
  CHECK_THAT(broken([](json& j) { j["version"] = 2; }), Catch::Contains("version 2 is not supported"));
  CHECK_THAT(broken([](json& j) { j["format"] = "other"; }), Catch::Contains("format is \"other\""));
  CHECK_THAT(broken([](json& j) { j.erase("source"); }), Catch::Contains("source"));
  CHECK_THAT(broken([](json& j) { j["top_k"] = 0; }), Catch::Contains("top_k = 0"));
  CHECK_THAT(broken([](json& j) { j["top_k"] = 1; }), Catch::Contains("must be in [2, "));
  CHECK_THAT(broken([](json& j) { j["top_k"] = 1e300; }), Catch::Contains("\"top_k\" must be an integer"));
  CHECK_THAT(broken([](json& j) { j["source"]["description"] = 5; }), Catch::Contains("\"description\" must be a string"));
  CHECK_THAT(broken([](json& j) { j["source"]["versions"] = {{"torch", {{"deep", 1}}}}; }),
             Catch::Contains("\"versions.torch\" must be a string, number or boolean"));
  CHECK_THAT(broken([](json& j) { j["source"]["list"] = {1, 2}; }), Catch::Contains("\"list\" must be a string"));
  CHECK_THAT(broken([](json& j) { j["prompts"][0]["ids"] = json(std::vector<int>(257, 1)); }),
             Catch::Contains("\"ids\" has 257 entries, at most 256"));
  CHECK_THAT(broken([](json& j) { j["prompts"] = json::array(); }), Catch::Contains("\"prompts\" is empty"));
  CHECK_THAT(broken([](json& j) { j["prompts"][0]["positions"].erase(1); }), Catch::Contains("1 positions for 2 ids"));
  CHECK_THAT(broken([](json& j) { j["prompts"][0]["positions"][0]["top_logits"] = {1.0, 2.5}; }),
             Catch::Contains("position 0: top_logits must be largest first"));
  CHECK_THAT(broken([](json& j) { j["prompts"][0]["positions"][0]["top_ids"] = {5, 5}; }), Catch::Contains("appears twice"));
  CHECK_THAT(broken([](json& j) { j["prompts"][0]["positions"][0]["row_scale"] = 2.0; }),
             Catch::Contains("row_scale (the row's largest |logit|) is smaller"));
  CHECK_THAT(broken([](json& j) { j["prompts"][0]["positions"][0]["row_scale"] = -1; }), Catch::Contains("positive finite"));
  CHECK_THAT(broken([](json& j) { j["prompts"][0]["greedy_margins"] = {0.25}; }), Catch::Contains("one margin per greedy id"));
  CHECK_THAT(broken([](json& j) { j["prompts"][0]["greedy_margins"] = {0.25, -1}; }), Catch::Contains("negative"));
  CHECK_THAT(broken([](json& j) { j["prompts"][0]["greedy_ids"] = {1, 4}; }),
             Catch::Contains("greedy_ids[0] = 1 is not the last position's top token 7"));
  CHECK_THAT(broken([](json& j) { j["prompts"][0]["ids"] = {2, "x"}; }), Catch::Contains("ids[1] must be an integer"));
  CHECK_THAT(parse_error(json("not an object")), Catch::Contains("must be a JSON object"));
  try {
    ReferenceBlock::parse("{\"format\": ", 10, "REF.json");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("REF.json"));
  }
}

// The blob names a file's index lists, read through its header (a model-less image on purpose:
// the writer does not care what the metadata says).
std::vector<std::string> indexed_blobs(const std::string& bytes) {
  SparqHeader h;
  REQUIRE(bytes.size() >= sizeof h);
  std::memcpy(&h, bytes.data(), sizeof h);
  REQUIRE(std::memcmp(h.magic, kSparqMagic, sizeof h.magic) == 0);
  REQUIRE(h.file_bytes == bytes.size());
  Xxh3Stream js;
  js.update(as_bytes(bytes.substr(h.metadata_offset, h.metadata_bytes)));
  js.update(as_bytes(bytes.substr(h.index_offset, h.index_bytes)));
  REQUIRE(js.digest() == h.json_checksum);
  std::vector<std::string> names;
  const json index = json::parse(bytes.substr(h.index_offset, h.index_bytes));
  for (const json& b : index["blobs"]) {
    const std::string name = b["name"];
    const uint64_t off = b["offset"], n = b["bytes"];
    REQUIRE(hex64(xxh3_64({reinterpret_cast<const uint8_t*>(bytes.data()) + off, n})) == b["xxh3"]);
    names.push_back(name + "=" + bytes.substr(off, n));
  }
  return names;
}

TEST_CASE("a sealed file is complete; unsealed, it takes more blobs before it is committed", "[selftest]") {
  ScratchDir dir("seal");
  const std::string out = dir / "m.sparq";
  SparqWriter w(out);
  w.add_blob("a.txt", as_bytes(std::string("first")));
  const json meta = {{"format_version", kSparqVersion}};
  w.seal(meta);
  CHECK_FALSE(std::filesystem::exists(out));  // not committed yet
  CHECK(indexed_blobs(read_file(w.temp_path())) == std::vector<std::string>{"a.txt=first"});
  CHECK_THROWS_WITH(w.add_blob("b.txt", as_bytes(std::string("x"))), Catch::Contains("sealed"));
  w.unseal();
  w.add_blob("b.txt", as_bytes(std::string("second")));
  w.seal(meta);
  w.commit();
  CHECK(indexed_blobs(read_file(out)) == std::vector<std::string>{"a.txt=first", "b.txt=second"});
}

TEST_CASE("convert --reference cpu embeds a reference that the same file passes; altered weights fail it", "[selftest]") {
  ScratchDir dir("selftest");
  const std::string path = dir / "m.sparq";
  ConvertOptions opts{fixture_path("gemma2-w8a8-int8"), path, false};
  opts.make_reference = [](const std::string& temp) {
    const LoadedModel m = load_cpu(temp);
    const LoadedTokenizer tok = load_tokenizer(m.file);
    return make_reference_block(m, *tok.tokenizer, default_reference_prompts(), 8, 12, {{"producer", "sparq-cpu"}}).to_json();
  };
  convert_checkpoint(opts);
  {
    const LoadedModel m = load_cpu(path);
    const auto ref = read_reference_block(m.file);
    REQUIRE(ref);
    CHECK(ref->prompts.size() == 3);
    const SelftestReport r = run_selftest(m, *ref, default_selftest_tolerance(m.file));
    CHECK(default_selftest_tolerance(m.file) == kSelftestToleranceQuantizedInputs);
    INFO(r.summary());
    CHECK(r.passed());
    CHECK(r.max_rel_error() == 0.0);  // the same backend, the same machine: bit for bit
  }

  // Alter one weight after conversion and rewrite its checksum, the index and the header, so the
  // file is valid and only the numbers can tell (the weight's tiles keep a matching compensation;
  // with a stale one the load itself refuses the file).
  for (const bool keep_consistent : {false, true}) {
    std::string bytes = read_file(path);
    SparqHeader h;
    std::memcpy(&h, bytes.data(), sizeof h);
    const std::string meta = bytes.substr(h.metadata_offset, h.metadata_bytes);
    json index = json::parse(bytes.substr(h.index_offset, h.index_bytes));
    bool altered = false;
    for (json& t : index["tensors"]) {
      if (t["name"] != "model.layers.1.mlp.down_proj.weight") continue;
      REQUIRE(t["layout"] == "int8_k4_tiles");
      const uint64_t off = t["offset"], n = t["bytes"];
      const Int8TilesShape shape(t["shape"][0].get<int64_t>(), t["shape"][1].get<int64_t>());
      auto* tiles = reinterpret_cast<uint8_t*>(bytes.data()) + off;
      if (keep_consistent) {
        std::vector<int8_t> rows(static_cast<size_t>(shape.out * shape.in));
        int8_tiles_unpack(shape, tiles, rows.data());
        for (size_t i = 0; i < rows.size(); i += 7) rows[i] = static_cast<int8_t>(-rows[i]);  // every 7th int8 negated
        int8_tiles_pack(shape, rows.data(), tiles);
      } else {  // column 0 of every 7th row changed, the compensation left as it was
        for (int64_t o = 0; o < shape.out; o += 7) tiles[static_cast<uint64_t>(o / 64) * shape.band_bytes() + Int8TilesShape::in_band(o, 0)] ^= 0x10;
      }
      t["xxh3"] = hex64(xxh3_64({reinterpret_cast<const uint8_t*>(bytes.data()) + off, n}));
      altered = true;
    }
    REQUIRE(altered);
    const std::string new_index = index.dump();
    bytes.resize(h.index_offset);
    bytes += new_index;
    h.index_bytes = new_index.size();
    h.file_bytes = bytes.size();
    Xxh3Stream js;
    js.update(as_bytes(meta));
    js.update(as_bytes(new_index));
    h.json_checksum = js.digest();
    std::memcpy(bytes.data(), &h, sizeof h);
    const std::string altered_path = dir / "altered.sparq";
    write_file(altered_path, bytes);

    if (!keep_consistent) {
      CHECK_THROWS_WITH(load_cpu(altered_path), Catch::Contains("model.layers.1.mlp.down_proj") && Catch::Contains("damaged"));
      continue;
    }
    const LoadedModel m = load_cpu(altered_path);
    m.file.verify_checksums();  // the checksums cannot tell
    const SelftestReport r = run_selftest(m, *read_reference_block(m.file), default_selftest_tolerance(m.file));
    INFO(r.summary());
    CHECK_FALSE(r.passed());
    CHECK(r.max_rel_error() > kSelftestToleranceQuantizedInputs);
    REQUIRE_FALSE(r.problems.empty());
    CHECK_THAT(r.problems.front(), Catch::Contains("of the row's largest |logit|") || Catch::Contains("greedy continuation differs"));
  }
}

TEST_CASE("compare tells a near-tie from a real error at the first sampled token that differs", "[selftest]") {
  // Two runs of a 4-token vocabulary: identical prompt logits, continuations that part at token 1.
  auto run = [](std::vector<float> step1) {
    PromptRun r;
    r.vocab = 4;
    r.prompt_logits = {1, 2, 3, 4, 4, 3, 2, 1};
    r.continuation = {3, step1[0] > step1[1] ? 0 : 1};
    r.continuation_logits = {1, 2, 3, 4};
    r.continuation_logits.insert(r.continuation_logits.end(), step1.begin(), step1.end());
    return r;
  };
  const std::vector<int32_t> prompt = {0, 1};
  SamplingParams s;
  s.temperature = 1;
  const PromptRun a = run({2.0f, 1.9999f, -1, -1});
  const PromptRun near = run({1.9999f, 2.0f, -1, -1});
  RunComparison c = compare_runs(a, near, prompt, s, 1e-3);
  CHECK(c.max_rel == 0);
  CHECK(c.divergence == 1);
  CHECK(c.near_tie);
  CHECK(c.ok);
  CHECK_THAT(c.explanation, Catch::Contains("near-tie"));
  CHECK(c.probability_a[0] == Approx(c.probability_a[1]).epsilon(1e-3));

  const PromptRun far = run({0.0f, 2.0f, -1, -1});
  c = compare_runs(a, far, prompt, s, 1e-3);
  CHECK(c.divergence == 1);
  CHECK_FALSE(c.near_tie);
  CHECK_FALSE(c.ok);
  CHECK_THAT(c.explanation, Catch::Contains("real error"));

  c = compare_runs(a, a, prompt, s, 1e-3);
  CHECK(c.divergence == -1);
  CHECK(c.ok);

  // NaN logits are a real error wherever they are, never a zero difference.
  PromptRun nan = a;
  nan.prompt_logits[5] = std::nanf("");
  c = compare_runs(a, nan, prompt, s, 1e-3);
  CHECK_FALSE(c.ok);
  CHECK(std::isinf(c.position_rel[1]));
  nan = run({std::nanf(""), 2.0f, -1, -1});
  c = compare_runs(a, nan, prompt, s, 1e-3);
  CHECK(c.divergence == 1);
  CHECK_FALSE(c.near_tie);
  CHECK_FALSE(c.ok);
}

TEST_CASE("a reference maker that fails leaves no output and no temporary file", "[selftest]") {
  ScratchDir dir("selftest-fail");
  const std::string path = dir / "m.sparq";
  ConvertOptions opts{fixture_path("llama-bf16"), path, false};
  std::string sealed_path;
  opts.make_reference = [&](const std::string& temp) -> std::string {
    sealed_path = temp;
    CHECK(ModelFile::open(temp).tensors().size() > 0);  // complete and valid while sealed
    fail("no reference today");
  };
  CHECK_THROWS_WITH(convert_checkpoint(opts), Catch::Contains("no reference today"));
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK_FALSE(std::filesystem::exists(sealed_path));
  // A maker that returns something invalid is refused the same way.
  opts.make_reference = [](const std::string&) { return std::string("{\"format\": 1}"); };
  CHECK_THROWS_WITH(convert_checkpoint(opts), Catch::Contains("made while converting"));
  CHECK(std::filesystem::is_empty(dir.path));
}

TEST_CASE("backend specs: options after the name are parsed and checked", "[selftest]") {
  BackendOptions o;
  CHECK(parse_backend_spec("cpu", o) == "cpu");
  CHECK(parse_backend_spec("cpu:threads=1,onednn=off", o) == "cpu");
  CHECK(o.threads == 1);
  CHECK_FALSE(o.use_onednn);
  CHECK_THROWS_WITH(parse_backend_spec("cpu:threads=x", o), Catch::Contains("threads must be a whole number"));
  CHECK_THROWS_WITH(parse_backend_spec("cpu:speed=9", o), Catch::Contains("unknown option \"speed\""));
  CHECK_THROWS_WITH(parse_backend_spec("cpu:onednn", o), Catch::Contains("is not key=value"));
  CHECK_THROWS_WITH(parse_backend_spec(":threads=1", o), Catch::Contains("no backend name"));
  ::unsetenv("SPARQ_TEST_FAULTS");
  CHECK_THROWS_WITH(parse_backend_spec("cpu:fault=attention", o), Catch::Contains("SPARQ_TEST_FAULTS=1"));
}
