// tokenizer.json normalizers: Sequence, Replace, Prepend, Append, Strip, Lowercase, NFC/NFKC/NFD/NFKD
// (through ICU when built with it). Anything else is refused at load time by name.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace sparq {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// Returns nullptr for a null normalizer.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec);

}  // namespace sparq
