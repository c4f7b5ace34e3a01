// The pair-merging core shared by every BPE variant (internal header).
//
// llama2.c merges the adjacent pair with the highest vocabulary score; Hugging Face BPE merges the
// adjacent pair with the lowest merge rank. Both are "apply the best-priority rule, leftmost on
// ties, until none applies", so one engine serves both with priority = -score or rank.
#pragma once
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace rankrl {

struct MergeRule {
  int32_t merged;   // id of the token the pair becomes
  double priority;  // lower merges first
};

class MergeTable {
 public:
  // A later rule for the same pair replaces the earlier one, as in Hugging Face's merge map.
  void add(int32_t left, int32_t right, MergeRule rule) {
    rules_.insert_or_assign(key(left, right), rule);
  }
  const MergeRule* find(int32_t left, int32_t right) const {
    auto it = rules_.find(key(left, right));
    return it == rules_.end() ? nullptr : &it->second;
  }
  size_t size() const { return rules_.size(); }

 private:
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  std::unordered_map<uint64_t, MergeRule> rules_;
};

// Merges `ids` in place: repeatedly the applicable pair with the lowest priority (leftmost among
// equals). O(n log n) with a linked list and a heap of candidate pairs, so a whole
// document treated as one word (llama2.c, SentencePiece-style tokenizer.json) stays fast.
void apply_merges(std::vector<int32_t>& ids, const MergeTable& table);

}  // namespace rankrl
