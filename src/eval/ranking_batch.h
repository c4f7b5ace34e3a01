// Batched multiple-choice scoring for search, where one item set is scored thousands of times.
// The items are tokenized once. A batch of items runs its contexts together, left-padded so that
// every context ends at the same position (hidden pads get a large negative attention bias, and
// RoPE attention depends only on relative positions, so a padded context scores as it would
// alone); then every choice of every item runs as one row that continues its item's keys and
// values (the context is computed once per item, never once per choice). Scores equal
// score_item()'s up to float rounding. Models with learned absolute positions (GPT-2) are scored
// item by item.
#pragma once
#include <cstdint>
#include <vector>

#include "eval/ranking.h"

namespace rankrl {

class RankingScorer {
 public:
  // `max_seq_len` of the model that will be scored (0 = unlimited); contexts are cut from the
  // left as score_item does. `batch_tokens` bounds the tokens per forward pass: small batches
  // win on small models, whose scoring is bound by memory traffic rather than arithmetic
  // (bench_ranking measures it).
  RankingScorer(const Tokenizer& tok, std::vector<TaskItem> items, int64_t max_seq_len,
                int64_t batch_tokens = 512);

  // Scores the items at positions `subset` (all when empty) and summarises them in that order.
  RankingResult score(const Transformer& net, const std::vector<size_t>& subset = {}) const;

  const std::vector<TaskItem>& items() const { return items_; }
  size_t size() const { return items_.size(); }
  // Tokens one scoring pass forwards: each context once plus every continuation.
  int64_t tokens(const std::vector<size_t>& subset = {}) const;
  // Tokens if every choice re-ran its context (what sharing the context saves).
  int64_t tokens_without_sharing(const std::vector<size_t>& subset = {}) const;

 private:
  std::vector<ItemScores> score_batch(const Transformer& net, const std::vector<size_t>& batch) const;

  std::vector<TaskItem> items_;
  std::vector<EncodedItem> encoded_;
  std::vector<bool> truncated_;
  int64_t batch_tokens_;
};

}  // namespace rankrl
