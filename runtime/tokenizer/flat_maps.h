// Open-addressing hash maps for the hot paths of BPE: vocabulary lookup by bytes and merge
// lookup by id pair. Built once at load time, read-only afterwards (safe to share across threads).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sparq {

uint64_t hash_bytes(std::string_view s);

// bytes -> int32 value. Keys are copied into one arena.
class StringIdMap {
 public:
  void reserve(size_t n);
  // Returns false when the key was already present (the first value is kept).
  bool insert(std::string_view key, int32_t value);
  int32_t find(std::string_view key) const { return find(key, hash_bytes(key)); }
  int32_t find(std::string_view key, uint64_t hash) const;  // -1 when absent
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t offset = 0;
    uint32_t len = 0;
    int32_t value = -1;  // -1: empty
  };
  void grow();
  std::vector<Slot> slots_;
  std::string arena_;
  size_t size_ = 0;
  size_t mask_ = 0;
};

// (left id, right id) -> (rank, merged id).
class PairMap {
 public:
  void reserve(size_t n);
  bool insert(int32_t left, int32_t right, int32_t rank, int32_t merged);
  // Returns false when the pair has no merge.
  bool find(int32_t left, int32_t right, int32_t& rank, int32_t& merged) const {
    if (slots_.empty()) return false;
    uint64_t key = make_key(left, right);
    size_t i = mix(key) & mask_;
    for (;;) {
      const Slot& s = slots_[i];
      if (s.rank < 0) return false;
      if (s.key == key) {
        rank = s.rank;
        merged = s.merged;
        return true;
      }
      i = (i + 1) & mask_;
    }
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key = 0;
    int32_t rank = -1;  // -1: empty
    int32_t merged = -1;
  };
  static uint64_t make_key(int32_t l, int32_t r) { return (uint64_t(uint32_t(l)) << 32) | uint32_t(r); }
  static uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }
  void grow();
  std::vector<Slot> slots_;
  size_t size_ = 0;
  size_t mask_ = 0;
};

}  // namespace sparq
