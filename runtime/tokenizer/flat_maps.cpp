#include "runtime/tokenizer/flat_maps.h"

#include <cstring>
#include <xxhash.h>

namespace sparq {

uint64_t hash_bytes(std::string_view s) { return XXH3_64bits(s.data(), s.size()); }

void StringIdMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (const Slot& s : old) {
    if (s.value < 0) continue;
    size_t i = s.hash & mask_;
    while (slots_[i].value >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void StringIdMap::grow() { reserve(slots_.empty() ? 8 : slots_.size()); }

bool StringIdMap::insert(std::string_view key, int32_t value) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  uint64_t h = hash_bytes(key);
  size_t i = h & mask_;
  while (slots_[i].value >= 0) {
    const Slot& s = slots_[i];
    if (s.hash == h && s.len == key.size() && std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0)
      return false;
    i = (i + 1) & mask_;
  }
  Slot& s = slots_[i];
  s.hash = h;
  s.offset = static_cast<uint32_t>(arena_.size());
  s.len = static_cast<uint32_t>(key.size());
  s.value = value;
  arena_.append(key);
  ++size_;
  return true;
}

int32_t StringIdMap::find(std::string_view key, uint64_t h) const {
  if (slots_.empty()) return -1;
  size_t i = h & mask_;
  for (;;) {
    const Slot& s = slots_[i];
    if (s.value < 0) return -1;
    if (s.hash == h && s.len == key.size() && std::memcmp(arena_.data() + s.offset, key.data(), key.size()) == 0)
      return s.value;
    i = (i + 1) & mask_;
  }
}

void PairMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (const Slot& s : old) {
    if (s.rank < 0) continue;
    size_t i = mix(s.key) & mask_;
    while (slots_[i].rank >= 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void PairMap::grow() { reserve(slots_.empty() ? 8 : slots_.size()); }

bool PairMap::insert(int32_t left, int32_t right, int32_t rank, int32_t merged) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  uint64_t key = make_key(left, right);
  size_t i = mix(key) & mask_;
  while (slots_[i].rank >= 0) {
    if (slots_[i].key == key) {  // a repeated merge: the later entry wins, as in Hugging Face
      slots_[i].rank = rank;
      slots_[i].merged = merged;
      return false;
    }
    i = (i + 1) & mask_;
  }
  slots_[i] = Slot{key, rank, merged};
  ++size_;
  return true;
}

}  // namespace sparq
