#include "runtime/grammar/grammar_matcher.h"

#include <algorithm>

#include "runtime/core/error.h"

namespace sparq {

namespace {
// Beyond this many live parse stacks the grammar is too ambiguous to follow in time.
constexpr size_t kMaxStacks = 4096;
constexpr int kMaxExpansionDepth = 2000;
// Interned states kept before the table starts afresh from the current one (about 1 KiB each).
constexpr size_t kMaxStates = 32768;
// Masks kept (each vocabulary / 8 bytes: 32 KiB for 256k tokens).
constexpr size_t kMaxMasks = 64;
}  // namespace

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocabulary> vocabulary)
    : grammar_(std::move(grammar)), vocabulary_(std::move(vocabulary)) {
  if (!grammar_ || grammar_->rules.empty()) fail("grammar: empty grammar");
  std::vector<Stack> stacks;
  for (int32_t alt : grammar_->rules[static_cast<size_t>(grammar_->root)].alternatives)
    expand(grammar_->code[static_cast<size_t>(alt)].kind == GrammarSymbol::Kind::End ? Stack{} : Stack{alt}, stacks);
  current_ = intern(std::move(stacks), 0, 0);
}

// Replaces rule references on top by their alternatives until every stack waits for a character
// (or is empty). Terminates because the parser refused left recursion.
void GrammarMatcher::expand(Stack stack, std::vector<Stack>& out, int depth) const {
  // Each level is a rule entered before any character: a chain this long is refused, not followed
  // until the call stack runs out.
  if (depth > kMaxExpansionDepth) fail("grammar: rules nest more than ", kMaxExpansionDepth, " deep before a character");
  if (stack.empty()) {
    out.push_back(std::move(stack));
    return;
  }
  const int32_t pos = stack.back();
  const GrammarSymbol& sym = grammar_->code[static_cast<size_t>(pos)];
  if (sym.kind == GrammarSymbol::Kind::Chars) {
    out.push_back(std::move(stack));
    return;
  }
  stack.pop_back();
  if (grammar_->code[static_cast<size_t>(pos) + 1].kind != GrammarSymbol::Kind::End) stack.push_back(pos + 1);
  for (int32_t alt : grammar_->rules[static_cast<size_t>(sym.index)].alternatives) {
    Stack s = stack;
    if (grammar_->code[static_cast<size_t>(alt)].kind != GrammarSymbol::Kind::End) s.push_back(alt);
    expand(std::move(s), out, depth + 1);
    if (out.size() > kMaxStacks) fail("grammar: more than ", kMaxStacks, " parses are alive at once (the grammar is too ambiguous)");
  }
}

int32_t GrammarMatcher::intern(std::vector<Stack> stacks, char32_t partial, int remaining) {
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  std::string key;
  key.reserve(16 + stacks.size() * 16);
  auto put = [&key](uint32_t v) { key.append(reinterpret_cast<const char*>(&v), sizeof v); };
  put(static_cast<uint32_t>(partial));
  put(static_cast<uint32_t>(remaining));
  for (const Stack& s : stacks) {
    put(static_cast<uint32_t>(s.size()));
    for (int32_t p : s) put(static_cast<uint32_t>(p));
  }
  auto [it, added] = index_.try_emplace(std::move(key), static_cast<int32_t>(states_.size()));
  if (!added) return it->second;
  auto st = std::make_unique<State>();
  for (const Stack& s : stacks) (s.empty() ? st->accepting : st->live) = true;
  st->stacks = std::move(stacks);
  st->partial = partial;
  st->remaining = remaining;
  states_.push_back(std::move(st));
  return it->second;
}

int32_t GrammarMatcher::advance(int32_t state, char32_t c) {
  std::vector<Stack> out;
  for (const Stack& s : states_[static_cast<size_t>(state)]->stacks) {
    if (s.empty()) continue;
    const int32_t pos = s.back();
    if (!grammar_->classes[static_cast<size_t>(grammar_->code[static_cast<size_t>(pos)].index)].matches(c)) continue;
    Stack next(s.begin(), s.end() - 1);
    if (grammar_->code[static_cast<size_t>(pos) + 1].kind != GrammarSymbol::Kind::End) next.push_back(pos + 1);
    expand(std::move(next), out);
    if (out.size() > kMaxStacks) fail("grammar: more than ", kMaxStacks, " parses are alive at once (the grammar is too ambiguous)");
  }
  if (out.empty()) return kDead;
  return intern(std::move(out), 0, 0);
}

namespace {
// Whether the class holds some code point in [lo, hi].
bool class_meets(const CharClass& cls, char32_t lo, char32_t hi) {
  if (!cls.negated) {
    for (const auto& [a, b] : cls.ranges)
      if (a <= hi && b >= lo) return true;
    return false;
  }
  // Negated: look for a code point no range covers.
  char32_t c = lo;
  for (bool moved = true; moved;) {
    moved = false;
    for (const auto& [a, b] : cls.ranges) {
      if (a <= c && c <= b) {
        if (b >= hi) return false;
        c = b + 1;
        moved = true;
      }
    }
  }
  return true;
}
}  // namespace

// Midway through a UTF-8 character: keep the stacks whose next class can still match one of the
// characters these bits begin (so a token ending inside a character is allowed only when a
// completion exists); none left means the byte is refused.
int32_t GrammarMatcher::partial_state(int32_t state, char32_t bits, int remaining, char32_t least) {
  const char32_t lo = std::max<char32_t>(least, bits << (6 * remaining));
  const char32_t hi = std::min<char32_t>((bits << (6 * remaining)) + ((char32_t{1} << (6 * remaining)) - 1), 0x10FFFF);
  std::vector<Stack> keep;
  for (const Stack& s : states_[static_cast<size_t>(state)]->stacks)
    if (!s.empty() &&
        class_meets(grammar_->classes[static_cast<size_t>(grammar_->code[static_cast<size_t>(s.back())].index)], lo, hi))
      keep.push_back(s);
  if (keep.empty()) return kDead;
  return intern(std::move(keep), bits, remaining);
}

int32_t GrammarMatcher::compute_step(int32_t state, uint8_t b) {
  const State& st = *states_[static_cast<size_t>(state)];
  if (!st.live) return kDead;
  if (st.remaining > 0) {
    if ((b & 0xC0) != 0x80) return kDead;
    // The first continuation byte rules out overlong forms and surrogates (as UTF-8 decoders do:
    // E0 80..9F, ED A0..BF, F0 80..8F and F4 90..BF decode to U+FFFD).
    if (st.remaining == 2 && st.partial <= 0xF && ((st.partial == 0 && b < 0xA0) || (st.partial == 0xD && b > 0x9F)))
      return kDead;
    if (st.remaining == 3 && ((st.partial == 0 && b < 0x90) || (st.partial == 4 && b > 0x8F))) return kDead;
    const char32_t c = (st.partial << 6) | (b & 0x3F);
    if (st.remaining > 1) return partial_state(state, c, st.remaining - 1, 0);
    return advance(state, c);
  }
  if (b < 0x80) return advance(state, b);
  // A lead byte: the character is at least the smallest its length may encode.
  if (b >= 0xC2 && b <= 0xDF) return partial_state(state, b & 0x1F, 1, 0x80);
  if (b >= 0xE0 && b <= 0xEF) return partial_state(state, b & 0x0F, 2, 0x800);
  if (b >= 0xF0 && b <= 0xF4) return partial_state(state, b & 0x07, 3, 0x10000);
  return kDead;  // a continuation byte out of place, or a byte UTF-8 never uses
}

int32_t GrammarMatcher::step(int32_t state, uint8_t b) {
  State* st = states_[static_cast<size_t>(state)].get();
  if (!st->next) {
    st->next = std::make_unique<int32_t[]>(256);
    std::fill(st->next.get(), st->next.get() + 256, kUnknown);
  }
  int32_t& slot = st->next[b];
  if (slot == kUnknown) {
    const int32_t n = compute_step(state, b);
    states_[static_cast<size_t>(state)]->next[b] = n;  // states_ may have grown: index again
    return n;
  }
  return slot;
}

void GrammarMatcher::forget_states_but_current() {
  State& cur = *states_[static_cast<size_t>(current_)];
  std::vector<Stack> stacks = std::move(cur.stacks);
  const char32_t partial = cur.partial;
  const int remaining = cur.remaining;
  states_.clear();
  index_.clear();
  masks_.clear();
  current_ = intern(std::move(stacks), partial, remaining);
}

bool GrammarMatcher::complete() const { return states_[static_cast<size_t>(current_)]->accepting && states_[static_cast<size_t>(current_)]->remaining == 0; }
bool GrammarMatcher::can_continue() const { return states_[static_cast<size_t>(current_)]->live; }

void GrammarMatcher::allowed_tokens(std::vector<uint32_t>& mask) {
  if (states_.size() > kMaxStates) forget_states_but_current();
  if (auto it = masks_.find(current_); it != masks_.end()) {
    mask = it->second;
    return;
  }
  const GrammarVocabulary& v = *vocabulary_;
  mask.assign((v.size() + 31) / 32, 0);
  const auto& nodes = v.nodes();
  const auto& order = v.token_order();
  // Depth-first over the trie, each entry a node and the state reached at it.
  std::vector<std::pair<uint32_t, int32_t>> todo{{0u, current_}};
  while (!todo.empty()) {
    const auto [node, state] = todo.back();
    todo.pop_back();
    const GrammarVocabulary::Node& n = nodes[node];
    for (uint32_t c = n.first_child; c < n.first_child + n.children; ++c) {
      const int32_t next = step(state, nodes[c].byte);
      if (next == kDead) continue;
      const GrammarVocabulary::Node& child = nodes[c];
      // A token ending inside a UTF-8 character is fine: a later token completes it.
      for (uint32_t t = child.first_token; t < child.first_token + child.tokens; ++t) {
        const auto id = static_cast<uint32_t>(order[t]);
        mask[id / 32] |= 1u << (id % 32);
      }
      if (child.children) todo.push_back({c, next});
    }
  }
  if (masks_.size() >= kMaxMasks) masks_.clear();
  masks_.emplace(current_, mask);
}

bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  if (states_.size() > kMaxStates) forget_states_but_current();
  int32_t s = current_;
  for (char ch : bytes) {
    s = step(s, static_cast<uint8_t>(ch));
    if (s == kDead) return false;
  }
  current_ = s;
  return true;
}

bool GrammarMatcher::accept_token(TokenId id) {
  if (id < 0 || static_cast<size_t>(id) >= vocabulary_->size()) return false;
  const std::string& b = vocabulary_->bytes(id);
  return !b.empty() && accept_bytes(b);
}

bool GrammarMatcher::matches(const Grammar& grammar, std::string_view text) {
  GrammarMatcher m(std::make_shared<const Grammar>(grammar), std::make_shared<const GrammarVocabulary>(std::vector<std::string>{}));
  return m.accept_bytes(text) && m.complete();
}

}  // namespace sparq
