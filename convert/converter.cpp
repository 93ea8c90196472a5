#include "convert/converter.h"

#include <filesystem>
#include <optional>

#include "convert/checkpoint.h"
#include "convert/tensor_plan.h"
#include "runtime/core/error.h"
#include "runtime/core/hashing.h"
#include "runtime/core/json_fields.h"
#include "runtime/model_file/reference_block.h"
#include "runtime/model_file/sparq_format.h"
#include "runtime/model_file/sparq_reader.h"
#include "runtime/model_file/sparq_writer.h"

namespace sparq {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Tokenizer and generation files carried verbatim, in the order a loader prefers them.
constexpr const char* kCarriedFiles[] = {"tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                                         "special_tokens_map.json", "generation_config.json", "chat_template.jinja",
                                         "chat_template.json"};

struct Carried {
  std::string name;
  std::string bytes;
};

std::vector<Carried> read_carried_files(const fs::path& dir) {
  std::vector<Carried> out;
  for (const char* name : kCarriedFiles) {
    const fs::path p = dir / name;
    if (!fs::exists(p)) continue;
    std::string bytes = read_text_file(p.string());
    if (p.extension() == ".json") parse_json(bytes, name);  // refuse broken JSON now, not at run time
    out.push_back({name, std::move(bytes)});
  }
  const bool has_tokenizer = std::any_of(out.begin(), out.end(), [](const Carried& c) {
    return c.name == "tokenizer.json" || c.name == "tokenizer.model";
  });
  if (!has_tokenizer) fail(dir.string(), " has no tokenizer.json or tokenizer.model; the model file must carry its tokenizer");
  return out;
}

const Carried* find_carried(const std::vector<Carried>& files, const std::string& name) {
  for (const auto& c : files)
    if (c.name == name) return &c;
  return nullptr;
}

// The chat template a runtime should apply: chat_template.jinja, then chat_template.json, then
// tokenizer_config.json's (a string, or a list of named templates where "default" is used).
json chat_template_of(const std::vector<Carried>& files) {
  if (const Carried* c = find_carried(files, "chat_template.jinja")) return c->bytes;
  if (const Carried* c = find_carried(files, "chat_template.json")) {
    json j = parse_json(c->bytes, "chat_template.json");
    if (j.contains("chat_template") && j["chat_template"].is_string()) return j["chat_template"];
  }
  if (const Carried* c = find_carried(files, "tokenizer_config.json")) {
    json j = parse_json(c->bytes, "tokenizer_config.json");
    if (!j.contains("chat_template")) return nullptr;
    const json& t = j["chat_template"];
    if (t.is_string()) return t;
    if (t.is_array())
      for (const auto& e : t)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template")) return e["template"];
  }
  return nullptr;
}

json build_metadata(const HfCheckpoint& ckpt, const ConversionPlan& plan, const std::vector<Carried>& files) {
  json meta;
  meta["format"] = "sparq";
  meta["format_version"] = kSparqVersion;
  meta["architecture"] = family_name(plan.model.family);
  meta["config"] = ckpt.config();
  meta["linears"] = plan.linears;
  meta["quantization"] = {{"summary", plan.scheme_summary},
                          {"source_config", plan.compression.raw.is_null() ? json(nullptr) : plan.compression.raw}};
  json kv = nullptr;
  if (plan.compression.kv_cache)
    kv = {{"type", plan.compression.kv_cache->type}, {"num_bits", plan.compression.kv_cache->num_bits},
          {"strategy", plan.compression.kv_cache->strategy}};
  meta["kv_cache_scheme"] = kv;
  json tokenizer_files = json::array();
  for (const auto& f : files)
    if (f.name.rfind("tokenizer", 0) == 0 || f.name == "special_tokens_map.json") tokenizer_files.push_back(f.name);
  meta["tokenizer"] = {{"files", tokenizer_files},
                       {"kind", find_carried(files, "tokenizer.model") ? "sentencepiece" : "tokenizer.json"}};
  meta["chat_template"] = chat_template_of(files);
  const Carried* gen = find_carried(files, "generation_config.json");
  meta["generation_config"] = gen ? parse_json(gen->bytes, "generation_config.json") : json::object();
  json shards = json::array();
  for (const auto& s : ckpt.shards()) shards.push_back(fs::path(s->path()).filename().string());
  meta["source"] = {{"directory", fs::absolute(ckpt.dir()).lexically_normal().string()},
                    {"config_sha256", sha256_hex(as_bytes(ckpt.config_text()))},
                    {"shards", shards},
                    {"converter", kConverterVersion}};
  meta["notes"] = plan.notes;
  return meta;
}

}  // namespace

ConvertReport convert_checkpoint(const ConvertOptions& opts, const ConvertProgress& progress,
                                 const std::function<void(const std::string&)>& on_temp_file) {
  if (opts.output_path.empty()) fail("no output file given");
  if (fs::is_directory(opts.output_path)) fail("output ", opts.output_path, " is a directory");
  const fs::path out_dir = fs::absolute(opts.output_path).parent_path();
  if (!fs::is_directory(out_dir)) fail("output directory ", out_dir.string(), " does not exist");

  HfCheckpoint ckpt(opts.input_dir);
  ConversionPlan plan = plan_conversion(ckpt, opts.int8_head);
  std::vector<Carried> files = read_carried_files(opts.input_dir);
  const json metadata = build_metadata(ckpt, plan, files);

  if (!opts.reference_json.empty() && opts.make_reference) fail("give one self-test reference, not two");
  uint64_t total = 0, done = 0;
  for (const auto& t : plan.tensors) total += t.bytes;
  std::optional<ReferenceBlock> reference;  // checked before the long part
  if (!opts.reference_json.empty())
    reference = ReferenceBlock::parse(opts.reference_json, plan.model.vocab, opts.reference_origin);
  {
    SparqWriter writer(opts.output_path);
    if (on_temp_file) on_temp_file(writer.temp_path());
    for (const auto& t : plan.tensors) {
      writer.begin_tensor(t.name, t.dtype, t.shape, t.layout);
      t.produce([&](std::span<const uint8_t> bytes) {
        writer.write(bytes);
        done += bytes.size();
        if (progress) progress("convert", done, total, t.name);
      });
      writer.end_tensor();
      for (const auto* s : t.sources) s->release();
    }
    for (const auto& f : files) writer.add_blob(f.name, as_bytes(f.bytes));
    if (reference) writer.add_blob(kReferenceBlobName, as_bytes(reference->to_json()));
    writer.seal(metadata);
    if (opts.make_reference) {
      // The file is complete at its temporary path: run it, then add the block and seal again.
      const std::string text = opts.make_reference(writer.temp_path());
      reference = ReferenceBlock::parse(text, plan.model.vocab, "made while converting");
      writer.unseal();
      writer.add_blob(kReferenceBlobName, as_bytes(reference->to_json()));
      writer.seal(metadata);
    }
    writer.commit();
  }

  ConvertReport report;
  if (reference) {
    size_t positions = 0;
    for (const auto& p : reference->prompts) positions += p.positions.size();
    report.reference = "self-test reference from " + reference->source.value("producer", std::string("?")) + ": " +
                       std::to_string(reference->prompts.size()) + " prompts, " + std::to_string(positions) +
                       " positions, top " + std::to_string(reference->top_k);
  }
  report.architecture = plan.model.hf_architecture;
  report.scheme_summary = plan.scheme_summary;
  report.tensors = plan.tensors.size();
  report.file_bytes = fs::file_size(opts.output_path);
  report.notes = plan.notes;

  if (opts.verify) {
    ModelFile mf = ModelFile::open(opts.output_path);
    mf.verify_checksums([&](uint64_t d, uint64_t t) {
      if (progress) progress("checksums", d, t, "");
    });
    uint64_t vdone = 0;
    for (const auto& t : plan.tensors) {
      const TensorEntry& e = mf.tensor(t.name);
      if (e.dtype != t.dtype || e.shape != t.shape || e.layout != t.layout)
        fail("verify: tensor ", t.name, " has the wrong dtype, shape or layout in the output");
      t.verify(mf.data(e));
      mf.release(e);
      for (const auto* s : t.sources) s->release();
      vdone += t.bytes;
      if (progress) progress("verify", vdone, total, t.name);
    }
    for (const auto& f : files) {
      auto b = mf.blob(f.name);
      if (!b || b->size() != f.bytes.size() || !std::equal(b->begin(), b->end(), f.bytes.begin(),
                                                            [](uint8_t a, char c) { return a == static_cast<uint8_t>(c); }))
        fail("verify: embedded file ", f.name, " differs from the source");
    }
    report.verified = true;
  }
  return report;
}

}  // namespace sparq
