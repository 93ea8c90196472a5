// The BPE model of a tokenizer.json: vocabulary, merges by rank, unknown/byte-fallback handling
// and a cache of recent words. Byte-level vocabularies are stored by their raw bytes, so the
// model works on the input bytes directly (no per-byte code point mapping at encode time).
#pragma once
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/flat_maps.h"

namespace sparq {

class BpeModel {
 public:
  // model: the "model" object of tokenizer.json (type BPE). byte_level: the pipeline has a
  // ByteLevel pre-tokenizer, so vocabulary strings are GPT-2 byte-mapped.
  BpeModel(const nlohmann::json& model, bool byte_level);

  // Appends the ids of one pre-tokenized word (raw bytes when byte-level). Thread-safe.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  // Vocabulary as written in tokenizer.json (byte-mapped strings for byte-level models).
  const std::vector<std::string>& id_to_token() const { return id_to_token_; }
  int32_t token_to_id(std::string_view token) const;  // token as written in tokenizer.json; -1 if absent
  bool byte_level() const { return byte_level_; }

 private:
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    uint32_t len;  // bytes covered; 0 once merged away
  };
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  struct Work {
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
  };
  void initial_symbols(std::string_view word, Work& w) const;
  void merge(Work& w) const;
  bool cache_get(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const;
  void cache_put(std::string_view word, uint64_t hash, const int32_t* ids, size_t n) const;

  bool byte_level_;
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  int32_t unk_id_ = -1;
  std::string continuing_prefix_, end_suffix_;
  StringIdMap vocab_;  // model-domain key (raw bytes for byte-level) -> id
  std::vector<std::string> id_to_token_;
  PairMap merges_;
  int32_t byte_id_[256];           // byte-level: id of each single byte
  int32_t byte_fallback_id_[256];  // "<0xXX>" ids
  int32_t ascii_id_[128];          // char-level: ids of single ASCII characters

  // Cache of word -> ids, guarded by a mutex taken with try_lock (a busy cache is skipped).
  mutable std::mutex cache_mutex_;
  mutable StringIdMap cache_index_;
  mutable std::vector<int32_t> cache_ids_;  // per entry: [count, ids...]
};

}  // namespace sparq
