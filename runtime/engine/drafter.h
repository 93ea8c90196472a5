// Speculative decoding's proposer: guesses the next few tokens of decoding sequences, so the model
// can check several tokens in one pass over its weights (the engine verifies them; see engine.h).
// Drafts are deterministic (a point mass), which keeps the engine's rejection sampling exact.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace sparq {

using RequestId = int64_t;

struct DraftRequest {
  RequestId request = 0;
  std::span<const int32_t> tokens;  // the sequence so far: prompt and generated ids
  int64_t max_drafts = 0;           // propose at most this many
  std::vector<int32_t> drafts;      // filled by propose(): the guessed continuation, maybe empty
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  // Fills each request's drafts (all of a step's sequences at once, so a draft model batches them).
  virtual void propose(std::span<DraftRequest> requests) = 0;
  // The request finished or was evicted: drop whatever state it has.
  virtual void forget(RequestId request) = 0;
  virtual const char* name() const = 0;
};

}  // namespace sparq
