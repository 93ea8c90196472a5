#include "runtime/core/hashing.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include <cstdio>

#include "runtime/core/error.h"

namespace sparq {

struct Xxh3Stream::State {
  XXH3_state_t* s = XXH3_createState();
  ~State() { XXH3_freeState(s); }
};

Xxh3Stream::Xxh3Stream() : state_(std::make_unique<State>()) {
  if (!state_->s) fail("out of memory creating a checksum state");
  XXH3_64bits_reset(state_->s);
}
Xxh3Stream::~Xxh3Stream() = default;

void Xxh3Stream::update(std::span<const uint8_t> bytes) { XXH3_64bits_update(state_->s, bytes.data(), bytes.size()); }
uint64_t Xxh3Stream::digest() const { return XXH3_64bits_digest(state_->s); }

uint64_t xxh3_64(std::span<const uint8_t> bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string sha256_hex(std::span<const uint8_t> bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) fail("SHA-256 failed");
  std::string out;
  char buf[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    out += buf;
  }
  return out;
}

}  // namespace sparq
