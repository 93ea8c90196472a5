// sparq info FILE [--check] [--json]
#include <cstdio>
#include <string>

#include "apps/commands.h"
#include "apps/progress_bar.h"
#include "runtime/core/error.h"
#include "runtime/model_file/architecture.h"
#include "runtime/model_file/reference_block.h"
#include "runtime/model_file/sparq_reader.h"

namespace sparq {

namespace {

void print_info(const ModelFile& f) {
  const auto& meta = f.metadata();
  const ModelConfig cfg = parse_model_config(meta["config"]);
  std::printf("%-14s %s (%s, format v%d)\n", "file", f.path().c_str(), human_bytes(f.file_bytes()).c_str(),
              meta.value("format_version", 0));
  std::printf("%-14s %s (%s): %lld layers, hidden %lld, intermediate %lld, heads %lld/%lld x %lld, vocab %lld\n",
              "architecture", family_name(cfg.family).c_str(), cfg.hf_architecture.c_str(),
              static_cast<long long>(cfg.layers), static_cast<long long>(cfg.hidden),
              static_cast<long long>(cfg.intermediate), static_cast<long long>(cfg.heads),
              static_cast<long long>(cfg.kv_heads), static_cast<long long>(cfg.head_dim),
              static_cast<long long>(cfg.vocab));
  if (cfg.family == ArchFamily::Gemma2)
    std::printf("%-14s sliding window %lld (even layers), softcap attn %g / final %g\n", "", static_cast<long long>(cfg.sliding_window),
                cfg.attn_logit_softcapping, cfg.final_logit_softcapping);
  if (!cfg.rope_scaling.type.empty())
    std::printf("%-14s rope theta %g, %s scaling x%g\n", "", cfg.rope_theta, cfg.rope_scaling.type.c_str(), cfg.rope_scaling.factor);
  std::printf("%-14s %s\n", "linears", meta["quantization"].value("summary", "").c_str());
  if (meta.contains("kv_cache_scheme") && !meta["kv_cache_scheme"].is_null())
    std::printf("%-14s %s\n", "kv cache", meta["kv_cache_scheme"].dump().c_str());
  std::string tok;
  for (const auto& n : meta["tokenizer"]["files"]) tok += (tok.empty() ? "" : ", ") + n.get<std::string>();
  std::printf("%-14s %s\n", "tokenizer", tok.c_str());
  const auto& tmpl = meta["chat_template"];
  std::printf("%-14s %s\n", "chat template",
              tmpl.is_string() ? (std::to_string(tmpl.get<std::string>().size()) + " characters").c_str() : "none");
  std::printf("%-14s %s\n", "generation", meta["generation_config"].dump().c_str());
  const auto& src = meta["source"];
  std::printf("%-14s %s\n", "source", src.value("directory", "?").c_str());
  std::printf("%-14s config sha256 %s, %s\n", "", src.value("config_sha256", "?").c_str(), src.value("converter", "?").c_str());
  if (const auto ref = read_reference_block(f)) {
    size_t positions = 0;
    for (const auto& p : ref->prompts) positions += p.positions.size();
    std::printf("%-14s %s (%s): %zu prompts, %zu positions, top %lld; run `sparq selftest`\n", "self-test",
                ref->source.value("producer", "?").c_str(), ref->source.value("description", "").c_str(), ref->prompts.size(),
                positions, static_cast<long long>(ref->top_k));
  } else {
    std::printf("%-14s none (sparq convert --reference adds one)\n", "self-test");
  }
  std::printf("\n%-56s %-8s %-13s %-16s %12s\n", "tensor", "dtype", "layout", "shape", "bytes");
  uint64_t total = 0;
  for (const auto& t : f.tensors()) {
    std::printf("%-56s %-8s %-13s %-16s %12llu\n", t.name.c_str(), std::string(dtype_name(t.dtype)).c_str(),
                std::string(layout_name(t.layout)).c_str(), shape_string(t.shape).c_str(),
                static_cast<unsigned long long>(t.bytes));
    total += t.bytes;
  }
  std::printf("%zu tensors, %s of weights; %zu embedded files\n", f.tensors().size(), human_bytes(total).c_str(),
              f.blobs().size());
}

void print_json(const ModelFile& f) {
  nlohmann::json j;
  j["metadata"] = f.metadata();
  j["file_bytes"] = f.file_bytes();
  j["tensors"] = nlohmann::json::array();
  for (const auto& t : f.tensors())
    j["tensors"].push_back({{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"layout", layout_name(t.layout)},
                            {"shape", t.shape}, {"bytes", t.bytes}});
  j["blobs"] = nlohmann::json::array();
  for (const auto& b : f.blobs()) j["blobs"].push_back({{"name", b.name}, {"bytes", b.bytes}});
  std::printf("%s\n", j.dump(2).c_str());
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show what is inside a .sparq file");
  auto path = std::make_shared<std::string>();
  auto check = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  cmd->add_option("file", *path, ".sparq model file")->required();
  cmd->add_flag("--check", *check, "Also verify every tensor's checksum");
  cmd->add_flag("--json", *json, "Print metadata and tensor index as JSON");
  cmd->callback([path, check, json] {
    ModelFile f = ModelFile::open(*path);
    if (*check) {
      ProgressBar bar;
      f.verify_checksums([&](uint64_t d, uint64_t t) { bar.update("checksums", d, t, ""); });
      bar.finish();
    }
    if (*json) print_json(f);
    else print_info(f);
    if (*check) std::printf("checksums: all %zu tensors and %zu files OK\n", f.tensors().size(), f.blobs().size());
  });
}

}  // namespace sparq
