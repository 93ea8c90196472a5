// Drafting with a smaller model of the same vocabulary: it keeps its own KV cache of each
// sequence, catches up on the tokens the target accepted since its last proposal (a prefix it
// already holds is kept; what the target rejected is cut off), then guesses greedily, one token
// per step, every speculating sequence batched into each step.
#pragma once
#include <map>

#include "runtime/engine/drafter.h"
#include "runtime/graph/backend.h"
#include "runtime/kv_cache/block_allocator.h"

namespace sparq {

class DraftModelDrafter final : public Drafter {
 public:
  // model and storage must outlive the drafter; `vocab` is the target's (the draft's logits must
  // have as many ids). prefill_chunk bounds the tokens one sequence feeds per catch-up step.
  // Throws sparq::Error naming a mismatch.
  DraftModelDrafter(PreparedModel& model, KvStorage& storage, int64_t vocab, int64_t prefill_chunk = 256);
  void propose(std::span<DraftRequest> requests) override;
  void forget(RequestId request) override;
  const char* name() const override { return "draft model"; }

 private:
  struct Sequence {
    SeqId seq = -1;
    std::vector<int32_t> tokens;  // the ids whose keys/values the draft cache holds
  };
  Sequence& sequence_for(const DraftRequest& r);
  void drop_all();

  PreparedModel& model_;
  KvStorage& storage_;
  BlockAllocator blocks_;
  int64_t vocab_, prefill_chunk_;
  std::map<RequestId, Sequence> sequences_;
  StepLogits logits_;
};

}  // namespace sparq
