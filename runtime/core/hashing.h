// Checksums for tensor data (XXH3-64, fast enough to check gigabytes) and SHA-256 for provenance.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace sparq {

class Xxh3Stream {
 public:
  Xxh3Stream();
  ~Xxh3Stream();
  Xxh3Stream(const Xxh3Stream&) = delete;
  Xxh3Stream& operator=(const Xxh3Stream&) = delete;
  void update(std::span<const uint8_t> bytes);
  uint64_t digest() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

uint64_t xxh3_64(std::span<const uint8_t> bytes);
std::string hex64(uint64_t v);
std::string sha256_hex(std::span<const uint8_t> bytes);

inline std::span<const uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace sparq
