#include "runtime/engine/step_builder.h"

#include <set>
#include <string>

namespace sparq {

Step build_step(std::span<const SequenceChunk> chunks, BlockAllocator& blocks) {
  // Count first, so a refusal leaves the allocator untouched.
  std::set<SeqId> seen;
  int64_t need = 0;
  for (const SequenceChunk& c : chunks) {
    if (c.tokens.empty()) fail("step: sequence ", c.seq, " has a chunk without tokens");
    if (!seen.insert(c.seq).second) fail("step: sequence ", c.seq, " appears twice");
    need += blocks.blocks_needed(c.seq, blocks.length(c.seq) + static_cast<int64_t>(c.tokens.size()));
  }
  if (need > blocks.free_blocks())
    throw KvCacheFull("the KV cache is full: this step needs " + std::to_string(need) + " more blocks of " +
                      std::to_string(blocks.block_tokens()) + " positions, " + std::to_string(blocks.free_blocks()) +
                      " are free (raise the KV cache budget)");
  Step step;
  for (const SequenceChunk& c : chunks) {
    const int64_t start = blocks.length(c.seq), n = static_cast<int64_t>(c.tokens.size());
    if (!blocks.reserve(c.seq, start + n, step.block_copies))
      fail("step: the KV cache could not reserve the blocks it counted");  // blocks_needed() is an upper bound
    StepChunk sc;
    sc.seq = c.seq;
    sc.first_row = step.rows();
    sc.rows = n;
    sc.start = start;
    sc.logits = c.logits;
    sc.first_logit_row = static_cast<int64_t>(step.logit_rows.size());
    const std::vector<int32_t>& table = blocks.block_table(c.seq);
    sc.first_block = static_cast<int64_t>(step.block_table.size());
    sc.blocks = kv_blocks_for(start + n, blocks.block_tokens());
    step.block_table.insert(step.block_table.end(), table.begin(), table.begin() + sc.blocks);
    for (int64_t i = 0; i < n; ++i) {
      const auto row = static_cast<int32_t>(step.rows());
      if (c.logits == LogitRows::All || (c.logits == LogitRows::Last && i == n - 1)) step.logit_rows.push_back(row);
      step.tokens.push_back(c.tokens[static_cast<size_t>(i)]);
      step.positions.push_back(start + i);
      step.row_chunk.push_back(static_cast<int32_t>(step.chunks.size()));
    }
    sc.logit_rows = static_cast<int64_t>(step.logit_rows.size()) - sc.first_logit_row;
    step.chunks.push_back(sc);
  }
  return step;
}

void commit_step(const Step& step, BlockAllocator& blocks) {
  for (const StepChunk& c : step.chunks) blocks.set_length(c.seq, c.start + c.rows);
}

void run_step(PreparedModel& model, KvStorage& storage, BlockAllocator& blocks, std::span<const SequenceChunk> chunks,
              StepLogits& out) {
  const Step step = build_step(chunks, blocks);
  model.run(step, storage, out);
  commit_step(step, blocks);
}

}  // namespace sparq
