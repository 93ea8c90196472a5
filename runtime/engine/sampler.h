// Picking the next token from a row of logits: greedy, or seeded sampling with the usual filters.
//
// Order of operations (as llama.cpp's default chain and vLLM apply them):
//   1. logit bias          logit[id] += bias
//   2. penalties           over the last penalty_last_n ids of the history, for each id seen there:
//                          repeat penalty (logit > 0 divided, < 0 multiplied, once per id), then
//                          logit -= presence_penalty + count * frequency_penalty
//   3. greedy              temperature 0 (< 1e-5): the highest logit, the lowest id on ties; stops here
//   4. top-k               keep the k highest logits
//   5. temperature         logit / temperature
//   6. softmax             over what is left
//   7. top-p               keep the smallest set of most likely tokens whose probability sum >= top_p
//   8. min-p               keep tokens whose probability >= min_p * the highest probability
//   9. draw                one uniform number in [0, 1) from the request's mt19937_64, mapped onto
//                          the candidates' cumulative probabilities
// Reproducible across platforms: the uniform is built from the raw 64-bit generator output (no
// standard distributions, whose results are implementation-defined), and the draw walks the
// candidates in a fixed order: most likely first after top-k, otherwise by id.
// Fast on large vocabularies: only top-k sorts (its k tokens); top-p finds its cut by a weighted
// selection in linear time. A logit of -inf (e.g. a bias of -inf) bans a token.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace sparq {

struct SamplingParams {
  float temperature = 0.0f;       // 0 (or below 1e-5) = greedy (argmax, lowest id on ties)
  int32_t top_k = 0;              // 0 = off
  float top_p = 1.0f;             // 1 = off
  float min_p = 0.0f;             // 0 = off
  float repeat_penalty = 1.0f;    // 1 = off; logit > 0 divided, < 0 multiplied (HF / llama.cpp)
  float presence_penalty = 0.0f;  // OpenAI: minus this once per token seen
  float frequency_penalty = 0.0f; // OpenAI: minus this times the count
  int32_t penalty_last_n = 64;    // history window for the penalties; -1 = whole history
  uint64_t seed = 0;
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, added to its logit); -inf bans
  // Throws sparq::Error naming the bad field.
  void validate(int64_t vocab) const;
};

// A token the draw may pick, with its probability after every filter (they sum to 1).
struct TokenProbability {
  int32_t id = 0;
  float probability = 0;
};

class Sampler {  // one per request; owns its random generator
 public:
  // Validates params (throws sparq::Error).
  Sampler(const SamplingParams& params, int64_t vocab);

  // history: the ids the penalties look at (prompt + generated so far).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

  // Speculative decoding: checks a drafted id against these logits. Greedy: the argmax, accepted
  // when it is the draft. Sampled (the draft is a point mass: it was proposed deterministically):
  // the draft is accepted with its probability p(draft) after every filter; otherwise an id is
  // drawn from the other candidates, renormalized. Either way the id returned is distributed
  // exactly as sample() would draw it (P(draft) = p(draft), P(x) = (1 - p(draft)) * p(x) /
  // (1 - p(draft)) = p(x)), though it uses the random generator differently.
  struct Verdict {
    int32_t token = -1;
    bool accepted = false;
  };
  Verdict verify(std::span<const float> logits, std::span<const int32_t> history, int32_t draft);

  // The candidates sample() would draw from, in draw order, without drawing (tests, inspection).
  std::vector<TokenProbability> candidates(std::span<const float> logits, std::span<const int32_t> history);

  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float weight;  // exp((logit - max) / temperature); probability = weight / total_weight_
  };
  void adjust_logits(std::span<const float> logits, std::span<const int32_t> history);
  void apply_penalties(std::span<const int32_t> history);
  void filter_candidates();
  void keep_top_k(size_t k);
  void keep_top_p();
  void keep_min_p(float max_logit);
  double uniform();

  SamplingParams params_;
  int64_t vocab_;
  std::mt19937_64 rng_;
  std::vector<float> logits_;         // adjusted logits of the current step
  std::vector<Candidate> candidates_; // what survives the filters of the current step
  bool sorted_ = false;               // candidates_ is in (logit descending, id ascending) order
  std::vector<Candidate> scratch_;    // top-p's selection works on a copy
  double total_weight_ = 0;           // sum of the candidates' weights
  std::vector<int32_t> window_;       // scratch: the penalty window, sorted
};

}  // namespace sparq
