// The generation engine: turns requests (token-id prompts plus sampling and stop settings) into
// streamed tokens and text, running many sequences through one prepared model over one KV storage.
//
// The engine owns each step: it plans the batch, reserves KV blocks (its BlockAllocator), describes
// the step (step_builder.h), has the backend compute it, then commits the new cache lengths.
// Each step() is ONE PreparedModel::run over a batch holding a decode token for every running sequence
// plus prefill chunks of sequences that are still reading their prompt, up to a token budget
// (continuous batching: requests join and leave between steps). A request whose prompt and
// max_tokens can never fit the cache or the model's context is refused at submit(); when the cache
// is merely full, new requests wait, and a running sequence that runs out of blocks preempts the
// newest one (its blocks are freed and it is recomputed later from its prompt and the tokens it
// generated so far; sampling state is kept, so its output does not change).
//
// Sessions keep a finished request's sequence in the cache with the ids it holds; the next request
// on the session prefills only what follows the longest common prefix (a chat's earlier turns).
// Without a session, the prefix cache shares whole blocks between requests whose prompts start
// with the same tokens (a system prompt, few-shot examples): they are computed once and held by
// reference; cached blocks nobody holds are reused least-recently-released first.
//
// A step whose backend run fails (throws) finishes the requests it ran with FinishReason::Error and
// the failure's message, frees their blocks, and the engine goes on with the others.
//
// Speculative decoding (EngineOptions::drafter): a decoding sequence feeds its last sampled id and
// up to draft_tokens guesses in one chunk, with logits at every row; row i checks guess i
// (Sampler::verify: greedy keeps it when it is the argmax, sampling keeps it with its probability
// and otherwise draws from the rest), the first rejected guess is replaced by the verdict's id, and
// when all are kept the last row gives one more. So greedy output equals plain decoding token for
// token and sampled output follows the same distribution; the cache positions of rejected guesses
// are cut off. Guesses take only the step budget prefills leave and never push a sequence past
// max_tokens or its context. Each sequence asks for fewer guesses after a step that kept none and
// for more after one that kept all (up to draft_tokens).
//
// Not thread-safe: one thread calls submit/step/cancel (EngineService wraps it for many callers).
// Event callbacks run inside step() after the step's bookkeeping is done, so they may call submit()
// and cancel().
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "runtime/engine/drafter.h"
#include "runtime/engine/sampler.h"
#include "runtime/grammar/grammar.h"
#include "runtime/graph/backend.h"
#include "runtime/kv_cache/block_allocator.h"
#include "runtime/tokenizer/tokenizer.h"

namespace sparq {

class GrammarVocabulary;
using SessionId = int64_t;  // 0 = no session

enum class FinishReason : uint8_t {
  StopToken,     // sampled one of the stop token ids (delivered as a Token event with empty text)
  StopString,    // the text reached a stop string (neither it nor anything after it is emitted)
  Length,        // max_tokens generated
  ContextLimit,  // the sequence filled the model's context (or the whole KV cache)
  GrammarComplete,  // the output is a whole sentence of the request's grammar and nothing may follow
  Cancelled,     // cancel() was called
  Error,         // the step that ran it failed (GenerationEvent::error says why)
};
// "stop_token", "stop_string", "length", "context_limit", "grammar_complete", "cancelled", "error".
const char* finish_reason_name(FinishReason reason);

struct RequestStats {
  int64_t prompt_tokens = 0;     // the request's prompt length
  int64_t reused_tokens = 0;     // prompt tokens whose keys/values were already cached (session or prefix cache)
  int64_t prefilled_tokens = 0;  // tokens run in prefill chunks (recomputation after preemption included)
  int64_t generated_tokens = 0;  // sampled tokens (a stop token included)
  int64_t preemptions = 0;       // times the sequence was evicted to make room and recomputed
  int64_t drafted_tokens = 0;    // speculative guesses checked
  int64_t accepted_tokens = 0;   // guesses kept (each one a token gained without its own step)
  double queued_seconds = 0;       // submit -> first step that ran it
  double first_token_seconds = 0;  // submit -> first sampled token
  double total_seconds = 0;        // submit -> finish
};

// A token with its log-probability under the model's raw distribution (log-softmax of the logits,
// before bias, penalties, temperature and filters: what OpenAI's and vLLM's logprobs report).
struct TokenLogprob {
  int32_t id = -1;
  float logprob = 0;
};

// Log-probabilities of one position: the token that is there (sampled, or the prompt's) and the
// `top` most likely ones, most likely first (ties: lower id first).
struct PositionLogprobs {
  TokenLogprob token;
  std::vector<TokenLogprob> top;
};

struct GenerationEvent {
  // Token: one sampled id. PromptLogprobs: log-probabilities of prompt positions (requested with
  // GenerationRequest::prompt_logprobs), in order, before the first Token event. Finished: last.
  enum class Kind : uint8_t { Token, PromptLogprobs, Finished };
  RequestId request = 0;
  Kind kind = Kind::Token;
  int32_t token = -1;  // Token: the sampled id
  // Token: its log-probabilities when the request asked for logprobs (empty otherwise).
  // PromptLogprobs: one entry per prompt position from first_position on (position 0, which
  // nothing predicts, is never included).
  std::vector<PositionLogprobs> logprobs;
  int64_t first_position = 0;  // PromptLogprobs only
  // Text that is now safe to show: whole UTF-8 characters, none of a stop string. Concatenating the
  // text of all of a request's events (Finished included) gives its whole output.
  std::string text;
  FinishReason reason = FinishReason::Length;  // Finished only
  RequestStats stats;                          // Finished only
  std::string error;                           // Finished with FinishReason::Error: the failure
};
using EventCallback = std::function<void(const GenerationEvent&)>;

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids; for a session, the whole conversation so far
  SamplingParams sampling;
  // Tokens to generate; 0 = until a stop condition or the context limit.
  int64_t max_tokens = 256;
  std::vector<int32_t> stop_token_ids;   // in addition to the defaults below
  bool use_default_stop_tokens = true;   // the model's end-of-sequence / end-of-turn ids (EngineOptions)
  std::vector<std::string> stop_strings; // needs a tokenizer
  SessionId session = 0;                 // reuse and keep this session's cached sequence
  // Log-probabilities: -1 = none; k >= 0 = the chosen token's plus the k most likely (0..20).
  int32_t logprobs = -1;         // of each sampled token, on its Token event
  int32_t prompt_logprobs = -1;  // of each prompt token after the first, on PromptLogprobs events
                                 // (every prompt position is computed, even ones a session holds)
  // Structured output: every generated token keeps the text a prefix of a sentence of this grammar
  // (compile_gbnf / compile_json_schema); stop tokens are allowed once it is a whole one. Needs the
  // tokenizer. The logprobs reported stay those of the model's raw distribution.
  std::shared_ptr<const Grammar> grammar;
  EventCallback on_event;                // may be empty
};

struct EngineOptions {
  int64_t max_step_tokens = 512;  // tokens one Backend::run takes (decodes + prefill chunks)
  int64_t prefill_chunk = 256;    // most prompt tokens one sequence feeds in one step
  int64_t max_sequences = 64;     // sequences running at once (capped at max_step_tokens)
  int64_t context_length = 0;     // most positions of one sequence; 0 = only the cache bounds it
  bool prefix_cache = true;       // share full KV blocks between requests with a common prompt prefix
  std::vector<int32_t> default_stop_tokens;  // see generation_defaults.h
  // Speculative decoding: guesses from this drafter (not owned; must outlive the engine; null =
  // off), at most draft_tokens (1..32) per sequence and step.
  Drafter* drafter = nullptr;
  int32_t draft_tokens = 4;
  // Throws sparq::Error naming the bad field.
  void validate() const;
};

// What the last step() ran, and totals since construction.
struct StepStats {
  int64_t decode_sequences = 0;   // sequences that fed one just-sampled token
  int64_t prefill_sequences = 0;  // sequences that fed a prompt (or recomputation) chunk
  int64_t prefill_tokens = 0;
  int64_t preempted = 0;          // sequences evicted while planning this step
  int64_t drafted_tokens = 0;     // speculative guesses fed with the decode tokens
};
struct EngineTotals {
  int64_t steps = 0, prefill_tokens = 0, decode_tokens = 0, preemptions = 0, session_evictions = 0;
  int64_t failed_steps = 0;
  // Speculative decoding: guesses checked and kept; drafter failures (the step ran without guesses).
  int64_t drafted_tokens = 0, accepted_tokens = 0, draft_failures = 0;
  // Structured output: token masks computed, the seconds they took, and the slowest one.
  int64_t grammar_masks = 0;
  double grammar_mask_seconds = 0, grammar_mask_max_seconds = 0;
  // Prefix cache: prompt tokens in whole blocks that could have been shared, and those that were.
  int64_t prefix_lookup_tokens = 0, prefix_hit_tokens = 0;
};

class Engine {
 public:
  // model, storage and tokenizer must outlive the engine; storage was made for the model's KV
  // geometry by the same backend. tokenizer may be null: events then carry no text and stop
  // strings are refused.
  Engine(PreparedModel& model, KvStorage& storage, const Tokenizer* tokenizer, EngineOptions options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. Throws sparq::Error (and changes nothing) when it is invalid or can never
  // fit: the message says how many tokens / KV blocks / MiB it needs and what the budget holds.
  RequestId submit(GenerationRequest request);
  // The checks submit() makes, without queueing anything: throws sparq::Error naming the problem.
  void validate(const GenerationRequest& request) const;
  // Stops a queued or running request before the next step runs (its Finished event comes from
  // that step). False when the id is unknown or already finished.
  bool cancel(RequestId id);
  // Runs one batch and delivers its events. False when there was nothing to do.
  bool step();
  // Steps until no request is queued or running.
  void run_until_idle();

  bool idle() const;
  int64_t running() const;  // sequences admitted to the cache (prefilling or decoding)
  int64_t waiting() const;  // queued, not admitted (new or preempted)

  // A session keeps its sequence's keys/values between requests.
  SessionId open_session();
  // Forgets the cached sequence (frees its blocks); the session stays open. Throws while a request
  // on it is unfinished.
  void reset_session(SessionId session);
  // reset_session, then the id is no longer valid.
  void close_session(SessionId session);
  // The ids whose keys/values the session holds now (empty after a reset or an eviction).
  std::span<const int32_t> session_tokens(SessionId session) const;

  const StepStats& last_step() const { return last_step_; }
  const EngineTotals& totals() const { return totals_; }
  const EngineOptions& options() const { return options_; }
  int64_t vocab() const { return vocab_; }
  const BlockAllocator& kv_blocks() const { return blocks_; }
  // Positions one sequence may hold: min(context_length, the whole cache).
  int64_t max_sequence_tokens() const;

 private:
  struct RequestState;
  struct Session;
  using Clock = std::chrono::steady_clock;
  // An event waiting for the end of the step, with the callback of its request.
  using PendingEvent = std::pair<std::shared_ptr<EventCallback>, GenerationEvent>;
  struct Planned {
    RequestState* s;
    int64_t n;  // tokens fed this step
  };

  RequestState& request(RequestId id);
  int64_t computed(const RequestState& s) const;
  void check_fits(const GenerationRequest& r) const;
  bool admit(RequestState& s, int64_t& room_blocks);
  void preempt(RequestState& s);
  bool evict_idle_session(SessionId keep);
  void release(RequestState& s);
  void finish(RequestState& s, FinishReason reason, std::vector<PendingEvent>& events);
  int32_t sample_next(RequestState& s, std::span<const float> logits);
  void after_sample(RequestState& s, int32_t token, std::span<const float> logits, std::vector<PendingEvent>& events);
  bool wants_prompt_logprobs(const RequestState& s) const;
  void emit_prompt_logprobs(RequestState& s, const StepChunk& chunk, std::vector<PendingEvent>& events);
  void add_drafts(std::vector<Planned>& plan, int64_t budget, int64_t free_blocks);
  void verify_drafts(RequestState& s, const StepChunk& chunk, std::vector<PendingEvent>& events);
  void fail_planned(const std::vector<RequestState*>& ran, const std::string& why, std::vector<PendingEvent>& events);

  PreparedModel& model_;
  const Graph& graph_;
  KvStorage& storage_;
  BlockAllocator blocks_;
  const Tokenizer* tokenizer_;
  EngineOptions options_;
  int64_t vocab_ = 0;

  RequestId next_request_ = 1;
  SessionId next_session_ = 1;
  std::map<RequestId, std::unique_ptr<RequestState>> requests_;  // unfinished requests
  std::vector<RequestId> running_;  // admitted, in admission order (the newest is preempted first)
  std::vector<RequestId> waiting_;  // FIFO; preempted sequences go to the front
  std::map<SessionId, std::unique_ptr<Session>> sessions_;
  uint64_t session_clock_ = 0;  // least recently used idle session cache is evicted first
  StepStats last_step_;
  EngineTotals totals_;
  StepLogits logits_;  // reused between steps
  std::shared_ptr<const GrammarVocabulary> grammar_vocabulary_;  // built at the first grammar request
  std::vector<float> masked_;  // a logits row with the grammar's refused tokens at -inf
  std::vector<uint32_t> mask_;
};

}  // namespace sparq
