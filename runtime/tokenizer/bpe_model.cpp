#include "runtime/tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <functional>

#include "runtime/core/error.h"
#include "runtime/core/utf8.h"
#include "runtime/tokenizer/byte_level.h"

namespace sparq {

namespace {
constexpr size_t kMaxCachedWord = 128;       // bytes
constexpr size_t kMaxCacheEntries = 1 << 16;  // cleared when full

// The two halves of a merge entry: "a b" (legacy string form) or ["a", "b"].
bool merge_parts(const nlohmann::json& m, std::string& a, std::string& b) {
  if (m.is_string()) {
    const std::string& s = m.get_ref<const std::string&>();
    size_t sp = s.find(' ');
    if (sp == std::string::npos) return false;
    a = s.substr(0, sp);
    b = s.substr(sp + 1);
    return true;
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    a = m[0].get<std::string>();
    b = m[1].get<std::string>();
    return true;
  }
  return false;
}
}  // namespace

BpeModel::BpeModel(const nlohmann::json& model, bool byte_level) : byte_level_(byte_level) {
  if (!model.is_object() || !model.contains("vocab") || !model["vocab"].is_object())
    fail("tokenizer.json: the BPE model has no \"vocab\" object");
  auto flag = [&](const char* key) { return model.contains(key) && model[key].is_boolean() && model[key].get<bool>(); };
  ignore_merges_ = flag("ignore_merges");
  byte_fallback_ = flag("byte_fallback");
  fuse_unk_ = flag("fuse_unk");
  if (model.contains("continuing_subword_prefix") && model["continuing_subword_prefix"].is_string())
    continuing_prefix_ = model["continuing_subword_prefix"].get<std::string>();
  if (model.contains("end_of_word_suffix") && model["end_of_word_suffix"].is_string())
    end_suffix_ = model["end_of_word_suffix"].get<std::string>();
  if (!continuing_prefix_.empty() || !end_suffix_.empty())
    fail("tokenizer.json: BPE models with continuing_subword_prefix or end_of_word_suffix are not supported");

  const auto& vocab = model["vocab"];
  vocab_.reserve(vocab.size());
  std::string key;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) fail("tokenizer.json: vocab entry '", it.key(), "' has no integer id");
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id > 10'000'000) fail("tokenizer.json: vocab id ", id, " of '", it.key(), "' is out of range");
    if (static_cast<size_t>(id) >= id_to_token_.size()) id_to_token_.resize(id + 1);
    id_to_token_[id] = it.key();
    if (byte_level_ && byte_level::unmap(it.key(), key))
      vocab_.insert(key, static_cast<int32_t>(id));
    else
      vocab_.insert(it.key(), static_cast<int32_t>(id));
  }
  auto lookup_model = [&](const std::string& tok) -> int32_t {
    if (byte_level_ && byte_level::unmap(tok, key)) return vocab_.find(key);
    return vocab_.find(tok);
  };

  for (int b = 0; b < 256; ++b) {
    byte_id_[b] = vocab_.find(std::string_view(reinterpret_cast<const char*>(&b), 1));
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    byte_fallback_id_[b] = token_to_id(buf);
  }
  for (int c = 0; c < 128; ++c) {
    char ch = static_cast<char>(c);
    ascii_id_[c] = vocab_.find(std::string_view(&ch, 1));
  }
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    unk_id_ = token_to_id(model["unk_token"].get<std::string>());
    if (unk_id_ < 0) fail("tokenizer.json: unk_token '", model["unk_token"].get<std::string>(), "' is not in the vocab");
  }

  if (model.contains("merges")) {
    const auto& merges = model["merges"];
    if (!merges.is_array()) fail("tokenizer.json: \"merges\" is not an array");
    merges_.reserve(merges.size());
    std::string a, b;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      if (!merge_parts(merges[rank], a, b)) fail("tokenizer.json: merge #", rank, " is neither \"a b\" nor [\"a\", \"b\"]");
      int32_t ia = lookup_model(a), ib = lookup_model(b), im = lookup_model(a + b);
      if (ia < 0 || ib < 0 || im < 0)
        fail("tokenizer.json: merge #", rank, " ('", a, "' '", b, "') uses a token missing from the vocab");
      merges_.insert(ia, ib, static_cast<int32_t>(rank), im);
    }
  }
}

int32_t BpeModel::token_to_id(std::string_view token) const {
  if (byte_level_) {
    std::string raw;
    if (byte_level::unmap(token, raw)) return vocab_.find(raw);
  }
  return vocab_.find(token);
}

void BpeModel::initial_symbols(std::string_view word, Work& w) const {
  auto& syms = w.symbols;
  syms.clear();
  auto add = [&](int32_t id, uint32_t len) {
    int32_t n = static_cast<int32_t>(syms.size());
    syms.push_back(Symbol{id, n - 1, n + 1, len});
  };
  if (byte_level_) {
    for (unsigned char c : word) {
      int32_t id = byte_id_[c];
      if (id >= 0) {
        add(id, 1);
      } else if (unk_id_ >= 0) {
        if (fuse_unk_ && !syms.empty() && syms.back().id == unk_id_)
          syms.back().len += 1;
        else
          add(unk_id_, 1);
      }
    }
  } else {
    int32_t pending_unk_len = 0;
    size_t i = 0;
    while (i < word.size()) {
      unsigned char c = static_cast<unsigned char>(word[i]);
      size_t len = c < 0x80 ? 1 : std::min<size_t>(utf8::seq_len(c), word.size() - i);
      int32_t id = c < 0x80 ? ascii_id_[c] : vocab_.find(word.substr(i, len));
      if (id >= 0) {
        if (pending_unk_len) {
          add(unk_id_, pending_unk_len);
          pending_unk_len = 0;
        }
        add(id, static_cast<uint32_t>(len));
      } else {
        bool done = false;
        if (byte_fallback_) {
          bool all = true;
          for (size_t k = 0; k < len; ++k) all = all && byte_fallback_id_[static_cast<unsigned char>(word[i + k])] >= 0;
          if (all) {
            for (size_t k = 0; k < len; ++k) add(byte_fallback_id_[static_cast<unsigned char>(word[i + k])], 1);
            done = true;
          }
        }
        if (!done && unk_id_ >= 0) {
          if (pending_unk_len && fuse_unk_) {
            pending_unk_len += static_cast<int32_t>(len);
          } else {
            if (pending_unk_len) add(unk_id_, pending_unk_len);
            pending_unk_len = static_cast<int32_t>(len);
          }
        }
      }
      i += len;
    }
    if (pending_unk_len) add(unk_id_, pending_unk_len);
  }
  if (!syms.empty()) syms.back().next = -1;
}

void BpeModel::merge(Work& w) const {
  auto& syms = w.symbols;
  auto& heap = w.heap;
  heap.clear();
  const auto cmp = std::greater<Candidate>();
  int32_t rank, merged;
  for (size_t i = 0; i + 1 < syms.size(); ++i)
    if (merges_.find(syms[i].id, syms[i + 1].id, rank, merged))
      heap.push_back(Candidate{rank, static_cast<int32_t>(i), merged});
  std::make_heap(heap.begin(), heap.end(), cmp);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = syms[top.pos];
    if (left.len == 0 || left.next < 0) continue;
    Symbol& right = syms[left.next];
    if (!merges_.find(left.id, right.id, rank, merged) || merged != top.merged) continue;
    left.id = top.merged;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (left.next >= 0) syms[left.next].prev = top.pos;
    if (left.prev >= 0 && merges_.find(syms[left.prev].id, left.id, rank, merged)) {
      heap.push_back(Candidate{rank, left.prev, merged});
      std::push_heap(heap.begin(), heap.end(), cmp);
    }
    if (left.next >= 0 && merges_.find(left.id, syms[left.next].id, rank, merged)) {
      heap.push_back(Candidate{rank, top.pos, merged});
      std::push_heap(heap.begin(), heap.end(), cmp);
    }
  }
}

bool BpeModel::cache_get(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const {
  int32_t at = cache_index_.find(word, hash);
  if (at < 0) return false;
  int32_t n = cache_ids_[at];
  out.insert(out.end(), cache_ids_.begin() + at + 1, cache_ids_.begin() + at + 1 + n);
  return true;
}

void BpeModel::cache_put(std::string_view word, uint64_t, const int32_t* ids, size_t n) const {
  if (cache_index_.size() >= kMaxCacheEntries) {
    cache_index_ = StringIdMap();
    cache_ids_.clear();
  }
  int32_t at = static_cast<int32_t>(cache_ids_.size());
  if (cache_index_.insert(word, at)) {
    cache_ids_.push_back(static_cast<int32_t>(n));
    cache_ids_.insert(cache_ids_.end(), ids, ids + n);
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  uint64_t hash = 0;
  if (ignore_merges_ || word.size() <= kMaxCachedWord) hash = hash_bytes(word);
  if (ignore_merges_) {
    int32_t id = vocab_.find(word, hash);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWord;
  std::unique_lock<std::mutex> lock(cache_mutex_, std::defer_lock);
  if (cacheable && lock.try_lock()) {
    if (cache_get(word, hash, out)) return;
    lock.unlock();
  }
  thread_local Work w;
  initial_symbols(word, w);
  merge(w);
  size_t start = out.size();
  for (int32_t i = w.symbols.empty() ? -1 : 0; i >= 0; i = w.symbols[i].next) out.push_back(w.symbols[i].id);
  if (cacheable && lock.try_lock()) cache_put(word, hash, out.data() + start, out.size() - start);
}

}  // namespace sparq
