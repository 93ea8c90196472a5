#include "runtime/engine/engine.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "runtime/core/error.h"
#include "runtime/engine/logprobs.h"
#include "runtime/engine/step_builder.h"
#include "runtime/engine/stop_strings.h"
#include "runtime/grammar/grammar_matcher.h"
#include "runtime/tokenizer/stream_detokenizer.h"

namespace sparq {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::StopToken: return "stop_token";
    case FinishReason::StopString: return "stop_string";
    case FinishReason::Length: return "length";
    case FinishReason::ContextLimit: return "context_limit";
    case FinishReason::GrammarComplete: return "grammar_complete";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "unknown";
}

void EngineOptions::validate() const {
  if (max_step_tokens < 1) fail("engine: max_step_tokens must be at least 1 (got ", max_step_tokens, ")");
  if (prefill_chunk < 1) fail("engine: prefill_chunk must be at least 1 (got ", prefill_chunk, ")");
  if (max_sequences < 1) fail("engine: max_sequences must be at least 1 (got ", max_sequences, ")");
  if (context_length < 0) fail("engine: context_length must not be negative (got ", context_length, ")");
  if (drafter && (draft_tokens < 1 || draft_tokens > 32))
    fail("engine: draft_tokens must be in 1..32 (got ", draft_tokens, ")");
}

struct Engine::RequestState {
  RequestId id = 0;
  std::vector<int32_t> tokens;  // the prompt, then every sampled id
  int64_t prompt_tokens = 0;
  int64_t max_tokens = 0;
  std::vector<int32_t> stop_ids;  // sorted
  SessionId session = 0;
  int32_t logprobs = -1, prompt_logprobs = -1;
  int64_t prompt_logprobs_next = 1;  // the next prompt position whose log-probabilities are due
  std::shared_ptr<EventCallback> on_event;
  Sampler sampler;
  std::unique_ptr<StreamDetokenizer> detokenizer;  // null without a tokenizer
  std::unique_ptr<StopStringMatcher> stop_strings;  // null without stop strings
  std::unique_ptr<GrammarMatcher> grammar;          // null without a grammar

  SeqId seq = -1;          // the cache sequence while admitted
  std::vector<int32_t> fed;  // a speculating step's input: the last sampled id, then the guesses
  int64_t draft_window = 0;  // guesses to ask for next (adapts to how many were kept; 0 = not set)
  bool decoding = false;   // the last token was just sampled; it is fed alone as a decode token
  bool cancelled = false;
  bool started = false;   // admitted at least once
  bool finished = false;
  RequestStats stats;
  Clock::time_point submitted;

  RequestState(const SamplingParams& params, int64_t vocab) : sampler(params, vocab) {}
  int64_t generated() const { return static_cast<int64_t>(tokens.size()) - prompt_tokens; }
};

struct Engine::Session {
  SeqId seq = -1;               // -1: nothing cached (or a request on the session holds it)
  std::vector<int32_t> tokens;  // the ids whose keys/values seq holds
  RequestId busy = 0;           // the unfinished request on this session
  uint64_t last_used = 0;
};

namespace {

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}


}  // namespace

Engine::Engine(PreparedModel& model, KvStorage& storage, const Tokenizer* tokenizer, EngineOptions options)
    : model_(model),
      graph_(model.graph()),
      storage_(storage),
      blocks_(storage.blocks(), storage.geometry().block_tokens),
      tokenizer_(tokenizer),
      options_(std::move(options)) {
  options_.validate();
  // Every running sequence feeds one token per step, so no more can run than a step holds.
  options_.max_sequences = std::min(options_.max_sequences, options_.max_step_tokens);
  if (graph_.logits < 0 || static_cast<size_t>(graph_.logits) >= graph_.widths.size())
    fail("engine: the graph has no logits value");
  vocab_ = graph_.widths[static_cast<size_t>(graph_.logits)];
  const KvCacheGeometry& geo = storage_.geometry();
  if (geo.layers != graph_.kv.layers || geo.kv_heads != graph_.kv.kv_heads || geo.head_dim != graph_.kv.head_dim)
    fail("engine: the KV cache geometry (", geo.layers, " layers, ", geo.kv_heads, " kv heads, head dim ", geo.head_dim,
         ") does not match the model's (", graph_.kv.layers, ", ", graph_.kv.kv_heads, ", ", graph_.kv.head_dim, ")");
  for (int32_t id : options_.default_stop_tokens)
    if (id < 0 || id >= vocab_) fail("engine: default stop token ", id, " is outside the vocabulary (", vocab_, " ids)");
}

Engine::~Engine() = default;

int64_t Engine::max_sequence_tokens() const {
  const int64_t cache_tokens = static_cast<int64_t>(blocks_.capacity_tokens());
  return options_.context_length > 0 ? std::min(options_.context_length, cache_tokens) : cache_tokens;
}

bool Engine::idle() const { return requests_.empty(); }
int64_t Engine::running() const { return static_cast<int64_t>(running_.size()); }
int64_t Engine::waiting() const { return static_cast<int64_t>(waiting_.size()); }

Engine::RequestState& Engine::request(RequestId id) { return *requests_.at(id); }

// Positions a request occupies at most: its prompt plus what it may generate (the last sampled id is
// never fed, but counting it keeps the context rule that prompt + generated <= the context length).
void Engine::check_fits(const GenerationRequest& r) const {
  const int64_t prompt = static_cast<int64_t>(r.prompt.size());
  const int64_t generate = r.max_tokens > 0 ? r.max_tokens : 1;
  const int64_t positions = prompt + generate;
  const std::string what = std::to_string(positions) + " positions (" + std::to_string(prompt) + " prompt + " +
                           std::to_string(generate) + (r.max_tokens > 0 ? " to generate)" : " generated at least)");
  if (options_.context_length > 0 && positions > options_.context_length)
    fail("the request needs ", what, ", more than the context length of ", options_.context_length,
         " (lower max_tokens or shorten the prompt)");
  const int64_t bt = storage_.geometry().block_tokens;
  const int64_t need_blocks = kv_blocks_for(positions, bt);
  if (need_blocks > blocks_.total_blocks()) {
    const uint64_t bb = storage_.geometry().block_bytes();
    fail("the request needs ", what, ": ", need_blocks, " KV blocks of ", bt, " positions, ",
         mib(static_cast<uint64_t>(need_blocks) * bb), "; the KV cache holds ", blocks_.total_blocks(), " blocks (",
         blocks_.capacity_tokens(), " positions, ", mib(static_cast<uint64_t>(blocks_.total_blocks()) * bb),
         ") (raise the KV cache budget, lower max_tokens or shorten the prompt)");
  }
}

void Engine::validate(const GenerationRequest& r) const {
  if (r.prompt.empty()) fail("the request's prompt has no tokens");
  for (size_t i = 0; i < r.prompt.size(); ++i)
    if (r.prompt[i] < 0 || r.prompt[i] >= vocab_)
      fail("prompt token ", i, " is id ", r.prompt[i], ", outside the vocabulary (", vocab_, " ids)");
  if (r.max_tokens < 0) fail("max_tokens must not be negative (got ", r.max_tokens, "; 0 = up to the context limit)");
  for (int32_t id : r.stop_token_ids)
    if (id < 0 || id >= vocab_) fail("stop token id ", id, " is outside the vocabulary (", vocab_, " ids)");
  if (!r.stop_strings.empty() && !tokenizer_) fail("stop strings need the model's tokenizer to decode text");
  if (r.grammar && !tokenizer_) fail("a grammar needs the model's tokenizer to know each token's text");
  if (r.grammar && r.grammar->rules.empty()) fail("the request's grammar is empty");
  if (r.logprobs < -1 || r.logprobs > kMaxTopLogprobs)
    fail("logprobs must be -1 (none) or 0..", kMaxTopLogprobs, " (got ", r.logprobs, ")");
  if (r.prompt_logprobs < -1 || r.prompt_logprobs > kMaxTopLogprobs)
    fail("prompt_logprobs must be -1 (none) or 0..", kMaxTopLogprobs, " (got ", r.prompt_logprobs, ")");
  if (r.session != 0) {
    auto it = sessions_.find(r.session);
    if (it == sessions_.end()) fail("no open session ", r.session);
    if (it->second->busy) fail("session ", r.session, " is still generating (request ", it->second->busy, ")");
  }
  check_fits(r);
  (void)Sampler(r.sampling, vocab_);  // validates the sampling parameters
}

RequestId Engine::submit(GenerationRequest r) {
  // Everything is checked before anything changes, so a refused request leaves no trace.
  validate(r);
  Session* session = r.session != 0 ? sessions_.at(r.session).get() : nullptr;
  auto s = std::make_unique<RequestState>(r.sampling, vocab_);
  if (!r.stop_strings.empty()) s->stop_strings = std::make_unique<StopStringMatcher>(std::move(r.stop_strings));
  if (r.grammar) {
    if (!grammar_vocabulary_) grammar_vocabulary_ = std::make_shared<const GrammarVocabulary>(*tokenizer_);
    s->grammar = std::make_unique<GrammarMatcher>(r.grammar, grammar_vocabulary_);
  }

  s->id = next_request_++;
  s->prompt_tokens = static_cast<int64_t>(r.prompt.size());
  s->tokens = std::move(r.prompt);
  s->max_tokens = r.max_tokens;
  s->stop_ids = std::move(r.stop_token_ids);
  if (r.use_default_stop_tokens)
    s->stop_ids.insert(s->stop_ids.end(), options_.default_stop_tokens.begin(), options_.default_stop_tokens.end());
  std::sort(s->stop_ids.begin(), s->stop_ids.end());
  s->session = r.session;
  s->logprobs = r.logprobs;
  s->prompt_logprobs = r.prompt_logprobs;
  if (r.on_event) s->on_event = std::make_shared<EventCallback>(std::move(r.on_event));
  if (tokenizer_) s->detokenizer = std::make_unique<StreamDetokenizer>(*tokenizer_, /*skip_special=*/true);
  s->stats.prompt_tokens = s->prompt_tokens;
  s->submitted = Clock::now();
  if (session) session->busy = s->id;
  const RequestId id = s->id;
  waiting_.push_back(id);
  requests_.emplace(id, std::move(s));
  return id;
}

bool Engine::cancel(RequestId id) {
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second->cancelled) return false;
  it->second->cancelled = true;
  return true;
}

SessionId Engine::open_session() {
  const SessionId id = next_session_++;
  sessions_.emplace(id, std::make_unique<Session>());
  return id;
}

void Engine::reset_session(SessionId id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) fail("no open session ", id);
  Session& s = *it->second;
  if (s.busy) fail("session ", id, " is still generating (request ", s.busy, "); cancel it and step first");
  if (s.seq >= 0) blocks_.remove_sequence(s.seq);
  s.seq = -1;
  s.tokens.clear();
}

void Engine::close_session(SessionId id) {
  reset_session(id);
  sessions_.erase(id);
}

std::span<const int32_t> Engine::session_tokens(SessionId id) const {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) fail("no open session ", id);
  return it->second->tokens;
}

// Frees the least recently used cached session sequence that no admitted request holds.
bool Engine::evict_idle_session(SessionId keep) {
  Session* victim = nullptr;
  for (auto& [id, s] : sessions_)
    if (id != keep && s->seq >= 0 && (!victim || s->last_used < victim->last_used)) victim = s.get();
  if (!victim) return false;
  blocks_.remove_sequence(victim->seq);
  victim->seq = -1;
  victim->tokens.clear();
  ++totals_.session_evictions;
  return true;
}

// Frees the sequence's blocks and queues it (at the front) to be recomputed from its tokens so far.
void Engine::preempt(RequestState& s) {
  if (options_.drafter) options_.drafter->forget(s.id);
  blocks_.remove_sequence(s.seq);
  s.seq = -1;
  s.decoding = false;
  ++s.stats.preemptions;
  ++totals_.preemptions;
  ++last_step_.preempted;
  running_.erase(std::find(running_.begin(), running_.end(), s.id));
  waiting_.insert(waiting_.begin(), s.id);
}

// Gives the sequence's cache sequence back: to its session (kept for the next request) or the pool.
void Engine::release(RequestState& s) {
  if (options_.drafter) options_.drafter->forget(s.id);
  // A finish among kept guesses leaves cached positions past the last id: they are not the request's.
  if (s.seq >= 0 && blocks_.length(s.seq) > static_cast<int64_t>(s.tokens.size()))
    blocks_.truncate(s.seq, static_cast<int64_t>(s.tokens.size()));
  if (s.session != 0) {
    Session& session = *sessions_.at(s.session);
    session.busy = 0;
    session.last_used = ++session_clock_;
    if (s.seq >= 0) {
      session.seq = s.seq;
      session.tokens.assign(s.tokens.begin(), s.tokens.begin() + blocks_.length(s.seq));
    }
  } else if (s.seq >= 0) {
    blocks_.remove_sequence(s.seq);
  }
  s.seq = -1;
  auto r = std::find(running_.begin(), running_.end(), s.id);
  if (r != running_.end()) running_.erase(r);
  auto w = std::find(waiting_.begin(), waiting_.end(), s.id);
  if (w != waiting_.end()) waiting_.erase(w);
}

void Engine::finish(RequestState& s, FinishReason reason, std::vector<PendingEvent>& events) {
  GenerationEvent ev;
  ev.request = s.id;
  ev.kind = GenerationEvent::Kind::Finished;
  if (reason != FinishReason::StopString && s.detokenizer) {
    // Whatever the detokenizer still holds, then whatever the stop-string matcher held back.
    std::string tail = s.detokenizer->finish();
    if (s.stop_strings) {
      tail = s.stop_strings->push(tail);
      if (s.stop_strings->stopped()) {
        if (reason == FinishReason::Length || reason == FinishReason::ContextLimit) reason = FinishReason::StopString;
      } else {
        tail += s.stop_strings->flush();
      }
    }
    ev.text = std::move(tail);
  }
  ev.reason = reason;
  s.stats.generated_tokens = s.generated();
  s.stats.total_seconds = std::chrono::duration<double>(Clock::now() - s.submitted).count();
  ev.stats = s.stats;
  events.push_back({s.on_event, std::move(ev)});
  s.finished = true;
  release(s);
}

// Samples from a logits row; with a grammar, from the row with every token it refuses at -inf (stop
// tokens only once the text is complete).
int32_t Engine::sample_next(RequestState& s, std::span<const float> logits) {
  if (!s.grammar) return s.sampler.sample(logits, s.tokens);
  const auto t0 = Clock::now();
  s.grammar->allowed_tokens(mask_);
  const bool complete = s.grammar->complete();
  for (int32_t id : s.stop_ids)
    if (complete && static_cast<size_t>(id) / 32 < mask_.size()) mask_[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
  masked_.resize(logits.size());
  constexpr float kBanned = -std::numeric_limits<float>::infinity();
  bool any = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    const bool ok = i / 32 < mask_.size() && ((mask_[i / 32] >> (i % 32)) & 1u);
    masked_[i] = ok ? logits[i] : kBanned;
    any |= ok;
  }
  ++totals_.grammar_masks;
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  totals_.grammar_mask_seconds += took;
  totals_.grammar_mask_max_seconds = std::max(totals_.grammar_mask_max_seconds, took);
  if (!any) fail("the grammar allows no token here (the vocabulary cannot spell what it needs next)");
  return s.sampler.sample(masked_, s.tokens);
}

// Records a sampled id: its event, then whether the request is done.
void Engine::after_sample(RequestState& s, int32_t token, std::span<const float> logits, std::vector<PendingEvent>& events) {
  s.tokens.push_back(token);
  if (s.generated() == 1) s.stats.first_token_seconds = std::chrono::duration<double>(Clock::now() - s.submitted).count();
  GenerationEvent ev;
  ev.request = s.id;
  ev.token = token;
  if (s.logprobs >= 0) ev.logprobs.push_back(position_logprobs(logits, token, s.logprobs));
  const bool stop_token = std::binary_search(s.stop_ids.begin(), s.stop_ids.end(), token);
  if (!stop_token && s.detokenizer) {
    ev.text = s.detokenizer->push(token);
    if (s.stop_strings) ev.text = s.stop_strings->push(ev.text);
  }
  events.push_back({s.on_event, std::move(ev)});
  if (stop_token) return finish(s, FinishReason::StopToken, events);
  if (s.grammar) {
    if (!s.grammar->accept_token(token)) fail("engine: the grammar refused token ", token, " it had allowed");
    if (!s.grammar->can_continue()) return finish(s, FinishReason::GrammarComplete, events);
  }
  if (s.stop_strings && s.stop_strings->stopped()) return finish(s, FinishReason::StopString, events);
  if (s.max_tokens > 0 && s.generated() >= s.max_tokens) return finish(s, FinishReason::Length, events);
  if (static_cast<int64_t>(s.tokens.size()) >= max_sequence_tokens()) return finish(s, FinishReason::ContextLimit, events);
  s.decoding = true;
}

// Leading tokens of the request whose keys and values are in the cache.
int64_t Engine::computed(const RequestState& s) const { return s.seq >= 0 ? blocks_.length(s.seq) : 0; }

// Claims a cache sequence for the head of the queue when `room_blocks` (free blocks not promised to
// running sequences) can hold all of its tokens; evicts idle session caches to make that room. The
// prompt's leading tokens are reused from the session's sequence (the longest common prefix) or,
// without one, from the prefix cache; at least one token is always fed, so there are logits to sample.
bool Engine::admit(RequestState& s, int64_t& room_blocks) {
  const int64_t bt = storage_.geometry().block_tokens;
  const int64_t length = static_cast<int64_t>(s.tokens.size());
  // Prompt log-probabilities need logits at every prompt position: nothing is reused then.
  const int64_t reusable = s.prompt_logprobs >= 0 ? 0 : length - 1;
  Session* session = s.session ? sessions_.at(s.session).get() : nullptr;
  if (session && session->seq >= 0) {
    // What the session holds past the common prefix is of no use to this request.
    const auto& cached = session->tokens;
    const int64_t limit = std::min<int64_t>(static_cast<int64_t>(cached.size()), reusable);
    int64_t common = 0;
    while (common < limit && cached[static_cast<size_t>(common)] == s.tokens[static_cast<size_t>(common)]) ++common;
    if (common < static_cast<int64_t>(cached.size())) {
      const int64_t before = blocks_.free_blocks();
      blocks_.truncate(session->seq, common);
      session->tokens.resize(static_cast<size_t>(common));
      room_blocks += blocks_.free_blocks() - before;
    }
  }
  std::vector<int32_t> shared;
  // Blocks the request takes from the pool (shared ones nobody holds come out of the cache).
  auto need = [&] {
    if (session && session->seq >= 0) return blocks_.blocks_needed(session->seq, length);
    if (options_.prefix_cache && reusable > 0)
      shared = blocks_.match_prefix(std::span<const int32_t>(s.tokens).first(static_cast<size_t>(reusable)), reusable / bt);
    return kv_blocks_for(length, bt) - static_cast<int64_t>(shared.size()) + blocks_.unreferenced(shared);
  };
  int64_t n = need();
  while (n > room_blocks) {
    const int64_t before = blocks_.free_blocks();
    if (!evict_idle_session(s.session)) return false;
    room_blocks += blocks_.free_blocks() - before;
    n = need();  // the eviction may have released shared blocks
  }
  room_blocks -= n;
  if (session && session->seq >= 0) {
    s.seq = session->seq;
    if (!s.started) s.stats.reused_tokens = blocks_.length(s.seq);
    session->seq = -1;
    session->tokens.clear();
  } else {
    s.seq = blocks_.add_sequence_sharing(shared);
    if (!s.started) s.stats.reused_tokens = blocks_.length(s.seq);
    if (options_.prefix_cache) {
      totals_.prefix_lookup_tokens += reusable / bt * bt;
      totals_.prefix_hit_tokens += blocks_.length(s.seq);
    }
  }
  if (!s.started) {
    s.started = true;
    s.stats.queued_seconds = std::chrono::duration<double>(Clock::now() - s.submitted).count();
  }
  return true;
}

// A prefill chunk computes logits at every position while prompt log-probabilities are still due.
bool Engine::wants_prompt_logprobs(const RequestState& s) const {
  return !s.decoding && s.prompt_logprobs >= 0 && s.prompt_logprobs_next < s.prompt_tokens;
}

// A chunk fed n tokens from position `start`: its logits row j predicts the token at start + j + 1.
void Engine::emit_prompt_logprobs(RequestState& s, const StepChunk& chunk, std::vector<PendingEvent>& events) {
  GenerationEvent ev;
  ev.request = s.id;
  ev.kind = GenerationEvent::Kind::PromptLogprobs;
  ev.first_position = s.prompt_logprobs_next;
  for (int64_t j = 0; j < chunk.rows; ++j) {
    const int64_t q = chunk.start + j + 1;
    if (q < s.prompt_logprobs_next || q >= s.prompt_tokens) continue;  // sent before (recomputation), or generated
    const std::span<const float> row(logits_.row(chunk.first_logit_row + j), static_cast<size_t>(vocab_));
    ev.logprobs.push_back(position_logprobs(row, s.tokens[static_cast<size_t>(q)], s.prompt_logprobs));
    s.prompt_logprobs_next = q + 1;
  }
  if (!ev.logprobs.empty()) events.push_back({s.on_event, std::move(ev)});
}

// Asks the drafter for guesses for the planned decode tokens, within the step budget prefills left,
// the free KV blocks, max_tokens and the context; a sequence's guesses become its chunk (fed).
void Engine::add_drafts(std::vector<Planned>& plan, int64_t budget, int64_t free_blocks) {
  std::vector<DraftRequest> asks;
  std::vector<size_t> at;
  for (size_t i = 0; i < plan.size(); ++i) {
    RequestState& s = *plan[i].s;
    s.fed.clear();
    if (!s.decoding || budget <= 0 || s.grammar) continue;  // guesses would bypass the grammar's mask
    const auto length = static_cast<int64_t>(s.tokens.size());
    // Feeding k guesses writes positions up to length + k - 1, and keeping them all samples one more.
    if (s.draft_window == 0) s.draft_window = options_.draft_tokens;
    int64_t k = std::min<int64_t>({s.draft_window, budget, max_sequence_tokens() - length});
    if (s.max_tokens > 0) k = std::min(k, s.max_tokens - s.generated() - 1);
    if (k <= 0) continue;
    budget -= k;
    asks.push_back({s.id, s.tokens, k, {}});
    at.push_back(i);
  }
  if (asks.empty()) return;
  try {
    options_.drafter->propose(asks);
  } catch (const std::exception&) {
    ++totals_.draft_failures;  // a drafter that fails costs its guesses, never the requests
    return;
  }
  for (size_t a = 0; a < asks.size(); ++a) {
    Planned& p = plan[at[a]];
    RequestState& s = *p.s;
    auto& drafts = asks[a].drafts;
    if (static_cast<int64_t>(drafts.size()) > asks[a].max_drafts) drafts.resize(static_cast<size_t>(asks[a].max_drafts));
    const int64_t length = computed(s);
    const int64_t base = blocks_.blocks_needed(s.seq, length + 1);
    while (!drafts.empty() &&
           blocks_.blocks_needed(s.seq, length + 1 + static_cast<int64_t>(drafts.size())) - base > free_blocks)
      drafts.pop_back();
    bool bad = false;
    for (int32_t d : drafts) bad |= d < 0 || d >= vocab_;
    if (drafts.empty() || bad) continue;
    free_blocks -= blocks_.blocks_needed(s.seq, length + 1 + static_cast<int64_t>(drafts.size())) - base;
    s.fed.assign(1, s.tokens.back());
    s.fed.insert(s.fed.end(), drafts.begin(), drafts.end());
    p.n = static_cast<int64_t>(s.fed.size());
    last_step_.drafted_tokens += static_cast<int64_t>(drafts.size());
  }
}

// A speculating chunk ran: rows 0..k-1 check the guesses in order, up to the first rejected one
// (replaced by the verdict's id); when all are kept, row k samples one more. The cache keeps the
// positions of the last sampled id and the kept guesses only.
void Engine::verify_drafts(RequestState& s, const StepChunk& chunk, std::vector<PendingEvent>& events) {
  const std::vector<int32_t> fed = std::move(s.fed);
  s.fed.clear();
  const auto guesses = static_cast<int64_t>(fed.size()) - 1;
  const size_t length = s.tokens.size();
  std::vector<int32_t> out;
  auto row = [&](int64_t i) {
    return std::span<const float>(logits_.row(chunk.first_logit_row + i), static_cast<size_t>(vocab_));
  };
  // The history the penalties see grows with each verdict, exactly as in plain decoding.
  try {
    for (int64_t i = 0; i <= guesses; ++i) {
      if (i == guesses) {
        out.push_back(s.sampler.sample(row(i), s.tokens));
        break;
      }
      const Sampler::Verdict v = s.sampler.verify(row(i), s.tokens, fed[static_cast<size_t>(i + 1)]);
      out.push_back(v.token);
      s.tokens.push_back(v.token);
      if (!v.accepted) break;
    }
  } catch (const std::exception& e) {
    // As a sampling failure in plain decoding: this request ends with the error, the others go on.
    s.tokens.resize(length);
    blocks_.truncate(s.seq, static_cast<int64_t>(length) - 1);
    finish(s, FinishReason::Error, events);
    events.back().second.error = e.what();
    return;
  }
  s.tokens.resize(length);
  const auto kept = static_cast<int64_t>(out.size()) - 1;
  blocks_.truncate(s.seq, static_cast<int64_t>(length) + kept);
  // The next window: doubled after a step that kept every guess, halved after one that kept none
  // (guesses that are rejected cost a row each), within 1..draft_tokens.
  if (kept == guesses) s.draft_window = std::min<int64_t>(options_.draft_tokens, 2 * s.draft_window);
  else if (kept == 0) s.draft_window = std::max<int64_t>(1, s.draft_window / 2);
  s.stats.drafted_tokens += guesses;
  s.stats.accepted_tokens += kept;
  totals_.drafted_tokens += guesses;
  totals_.accepted_tokens += kept;
  for (size_t i = 0; i < out.size() && !s.finished; ++i) after_sample(s, out[i], row(static_cast<int64_t>(i)), events);
  if (!s.finished && options_.prefix_cache) blocks_.publish(s.seq, s.tokens);
}

// The requests of a failed step end with an error; what their cache sequences hold is unknown, so
// none is kept (not even for a session).
void Engine::fail_planned(const std::vector<RequestState*>& ran, const std::string& why,
                          std::vector<PendingEvent>& events) {
  ++totals_.failed_steps;
  for (RequestState* s : ran) {
    if (s->seq >= 0) blocks_.remove_sequence(s->seq);
    s->seq = -1;
    finish(*s, FinishReason::Error, events);
    events.back().second.error = why;
  }
  for (RequestState* s : ran) requests_.erase(s->id);
}

bool Engine::step() {
  last_step_ = {};
  std::vector<PendingEvent> events;
  // Cancellations take effect before anything runs.
  std::vector<RequestId> cancelled;
  for (const auto& [id, s] : requests_)
    if (s->cancelled) cancelled.push_back(id);
  for (RequestId id : cancelled) {
    finish(request(id), FinishReason::Cancelled, events);
    requests_.erase(id);
  }

  // Plan: running sequences oldest first (decode tokens always fit the budget: max_sequences <=
  // max_step_tokens), then the queue in order while the budget and the cache allow.
  std::vector<Planned> plan;
  int64_t decoders = 0;
  for (RequestId id : running_) decoders += request(id).decoding ? 1 : 0;
  int64_t prefill_budget = options_.max_step_tokens - decoders;
  int64_t planned_blocks = 0;
  auto free_blocks = [&] { return blocks_.free_blocks() - planned_blocks; };
  for (size_t i = 0; i < running_.size(); ++i) {
    RequestState& s = request(running_[i]);
    const int64_t pending = static_cast<int64_t>(s.tokens.size()) - computed(s);
    const int64_t n = s.decoding ? 1 : std::min({pending, options_.prefill_chunk, prefill_budget});
    if (n <= 0) continue;
    int64_t need = blocks_.blocks_needed(s.seq, computed(s) + n);
    bool preempted_self = false;
    while (need > free_blocks()) {
      // Room comes from idle session caches first, then from the newest running sequence (not yet planned).
      if (evict_idle_session(0)) continue;
      RequestState& victim = request(running_.back());
      if (victim.decoding) prefill_budget += 1;
      preempted_self = &victim == &s;
      preempt(victim);
      if (preempted_self) break;
    }
    if (preempted_self) break;
    if (!s.decoding) prefill_budget -= n;
    planned_blocks += need;
    plan.push_back({&s, n});
  }
  // Admission keeps room for every running sequence's whole pending input, so that a new request
  // does not take blocks a prefill in progress will need. A step that had to preempt admits nothing.
  int64_t room = blocks_.free_blocks();
  for (RequestId id : running_) {
    const RequestState& s = request(id);
    room -= blocks_.blocks_needed(s.seq, static_cast<int64_t>(s.tokens.size()));
  }
  while (last_step_.preempted == 0 && !waiting_.empty() && prefill_budget > 0 &&
         static_cast<int64_t>(running_.size()) < options_.max_sequences) {
    RequestState& s = request(waiting_.front());
    if (!admit(s, room)) break;
    waiting_.erase(waiting_.begin());
    running_.push_back(s.id);
    const int64_t n =
        std::min({static_cast<int64_t>(s.tokens.size()) - computed(s), options_.prefill_chunk, prefill_budget});
    prefill_budget -= n;
    planned_blocks += blocks_.blocks_needed(s.seq, computed(s) + n);
    plan.push_back({&s, n});
  }

  for (Planned& p : plan) p.s->fed.clear();
  // Guesses take no blocks that admission keeps for prompts still being read.
  if (options_.drafter && last_step_.preempted == 0) add_drafts(plan, prefill_budget, std::min(free_blocks(), room));

  // Reserve, run, commit: the engine describes the whole step; the backend only computes it.
  std::vector<SequenceChunk> chunks;
  for (const Planned& p : plan) {
    if (!p.s->fed.empty()) {
      chunks.push_back({p.s->seq, p.s->fed, LogitRows::All});
      continue;
    }
    const int64_t start = computed(*p.s);
    const auto tokens = std::span<const int32_t>(p.s->tokens).subspan(static_cast<size_t>(start), static_cast<size_t>(p.n));
    const bool samples = start + p.n == static_cast<int64_t>(p.s->tokens.size());
    chunks.push_back({p.s->seq, tokens,
                      wants_prompt_logprobs(*p.s) ? LogitRows::All : samples ? LogitRows::Last : LogitRows::None});
  }
  Step step;
  bool ran = false;
  if (!plan.empty()) {
    try {
      step = build_step(chunks, blocks_);
      ran = true;
    } catch (const KvCacheFull&) {
      // The plan counted every block the engine's own sequences need, so this is not expected;
      // make room and plan again on the next step.
      if (running_.empty()) throw;
      preempt(request(running_.back()));
    }
  }
  if (ran) {
    try {
      model_.run(step, storage_, logits_);
    } catch (const std::exception& e) {
      ran = false;
      std::vector<RequestState*> failed;
      for (const Planned& p : plan) failed.push_back(p.s);
      fail_planned(failed, e.what(), events);
    }
  }
  if (ran) {
    commit_step(step, blocks_);
    ++totals_.steps;
    std::vector<RequestId> done;
    for (size_t c = 0; c < plan.size(); ++c) {
      RequestState& s = *plan[c].s;
      const StepChunk& chunk = step.chunks[c];
      if (!s.fed.empty()) {
        ++last_step_.decode_sequences;
        ++totals_.decode_tokens;
        verify_drafts(s, chunk, events);
        if (s.finished) done.push_back(s.id);
        continue;
      }
      if (s.decoding) {
        ++last_step_.decode_sequences;
        ++totals_.decode_tokens;
      } else {
        ++last_step_.prefill_sequences;
        last_step_.prefill_tokens += chunk.rows;
        s.stats.prefilled_tokens += chunk.rows;
        totals_.prefill_tokens += chunk.rows;
      }
      if (options_.prefix_cache) blocks_.publish(s.seq, s.tokens);
      if (chunk.logits == LogitRows::All) emit_prompt_logprobs(s, chunk, events);
      if (computed(s) < static_cast<int64_t>(s.tokens.size())) continue;  // more prompt to read
      const std::span<const float> last(logits_.row(chunk.first_logit_row + chunk.logit_rows - 1),
                                        static_cast<size_t>(vocab_));
      int32_t token = -1;
      try {
        token = sample_next(s, last);
      } catch (const std::exception& e) {
        finish(s, FinishReason::Error, events);
        events.back().second.error = e.what();
        done.push_back(s.id);
        continue;
      }
      after_sample(s, token, last, events);
      if (s.finished) done.push_back(s.id);
    }
    for (RequestId id : done) requests_.erase(id);
  }
  for (const auto& [callback, ev] : events)
    if (callback && *callback) (*callback)(ev);
  return !plan.empty() || !cancelled.empty();
}

void Engine::run_until_idle() {
  while (!idle())
    if (!step() && !idle())
      fail("engine: ", waiting_.size(), " requests wait for KV cache blocks that nothing running will free");
}

}  // namespace sparq
