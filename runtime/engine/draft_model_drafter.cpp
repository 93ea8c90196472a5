#include "runtime/engine/draft_model_drafter.h"

#include <algorithm>

#include "runtime/core/error.h"
#include "runtime/engine/step_builder.h"

namespace sparq {

namespace {
int32_t argmax(const float* row, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (row[i] > row[best]) best = i;
  return static_cast<int32_t>(best);
}
}  // namespace

DraftModelDrafter::DraftModelDrafter(PreparedModel& model, KvStorage& storage, int64_t vocab, int64_t prefill_chunk)
    : model_(model),
      storage_(storage),
      blocks_(storage.blocks(), storage.geometry().block_tokens),
      vocab_(vocab),
      prefill_chunk_(prefill_chunk) {
  const Graph& g = model.graph();
  if (g.logits < 0 || static_cast<size_t>(g.logits) >= g.widths.size()) fail("draft model: the graph has no logits value");
  const int64_t draft_vocab = g.widths[static_cast<size_t>(g.logits)];
  if (draft_vocab != vocab)
    fail("draft model: its vocabulary has ", draft_vocab, " ids, the target's ", vocab,
         " (the draft must share the target's tokenizer)");
  if (prefill_chunk < 1) fail("draft model: prefill_chunk must be at least 1 (got ", prefill_chunk, ")");
}

DraftModelDrafter::Sequence& DraftModelDrafter::sequence_for(const DraftRequest& r) {
  Sequence& s = sequences_[r.request];
  if (s.seq < 0) s.seq = blocks_.add_sequence();
  // Keep the common prefix of what the cache holds and what the sequence is now.
  const size_t limit = std::min(s.tokens.size(), r.tokens.size() - 1);  // the last id is fed again for its logits
  size_t common = 0;
  while (common < limit && s.tokens[common] == r.tokens[common]) ++common;
  if (common < s.tokens.size()) {
    blocks_.truncate(s.seq, static_cast<int64_t>(common));
    s.tokens.resize(common);
  }
  return s;
}

void DraftModelDrafter::forget(RequestId request) {
  auto it = sequences_.find(request);
  if (it == sequences_.end()) return;
  if (it->second.seq >= 0) blocks_.remove_sequence(it->second.seq);
  sequences_.erase(it);
}

void DraftModelDrafter::drop_all() {
  for (auto& [id, s] : sequences_)
    if (s.seq >= 0) blocks_.remove_sequence(s.seq);
  sequences_.clear();
}

void DraftModelDrafter::propose(std::span<DraftRequest> requests) {
  std::vector<DraftRequest*> active;
  for (DraftRequest& r : requests) {
    r.drafts.clear();
    if (r.max_drafts > 0 && !r.tokens.empty()) active.push_back(&r);
  }
  if (active.empty()) return;
  try {
    // Catch up: feed what each sequence has that the draft cache lacks, in chunks; the chunk that
    // ends at the last id gives the first guess.
    std::vector<Sequence*> seqs;
    for (DraftRequest* r : active) seqs.push_back(&sequence_for(*r));
    for (;;) {
      std::vector<SequenceChunk> chunks;
      std::vector<size_t> which;
      for (size_t i = 0; i < active.size(); ++i) {
        const auto have = static_cast<int64_t>(seqs[i]->tokens.size());
        const auto total = static_cast<int64_t>(active[i]->tokens.size());
        if (have >= total) continue;
        const int64_t n = std::min(prefill_chunk_, total - have);
        chunks.push_back({seqs[i]->seq, active[i]->tokens.subspan(static_cast<size_t>(have), static_cast<size_t>(n)),
                          have + n == total ? LogitRows::Last : LogitRows::None});
        which.push_back(i);
      }
      if (chunks.empty()) break;
      run_step(model_, storage_, blocks_, chunks, logits_);
      int64_t row = 0;
      for (size_t c = 0; c < chunks.size(); ++c) {
        Sequence& s = *seqs[which[c]];
        s.tokens.insert(s.tokens.end(), chunks[c].tokens.begin(), chunks[c].tokens.end());
        if (chunks[c].logits == LogitRows::Last) active[which[c]]->drafts.push_back(argmax(logits_.row(row++), vocab_));
      }
    }
    // Guess on: each step feeds every sequence's latest guess.
    for (;;) {
      std::vector<SequenceChunk> chunks;
      std::vector<size_t> which;
      for (size_t i = 0; i < active.size(); ++i) {
        const auto& d = active[i]->drafts;
        if (static_cast<int64_t>(d.size()) >= active[i]->max_drafts) continue;
        chunks.push_back({seqs[i]->seq, std::span<const int32_t>(d).last(1), LogitRows::Last});
        which.push_back(i);
      }
      if (chunks.empty()) break;
      run_step(model_, storage_, blocks_, chunks, logits_);
      for (size_t c = 0; c < chunks.size(); ++c) {
        DraftRequest& r = *active[which[c]];
        seqs[which[c]]->tokens.push_back(r.drafts.back());
        r.drafts.push_back(argmax(logits_.row(static_cast<int64_t>(c)), vocab_));
      }
    }
  } catch (const KvCacheFull&) {
    // The draft cache is full: start every sequence afresh next time; no guesses this step.
    drop_all();
    for (DraftRequest* r : active) r->drafts.clear();
  }
}

}  // namespace sparq
