#include "eval/ranking_batch.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <numeric>

#include "core/dist.h"
#include "core/error.h"
#include "core/log.h"
#include "model/transformer.h"

namespace rankrl {

namespace {

constexpr float kHidden = -1e9f;  // finite: a pad query that sees only pads stays finite

int64_t longest_continuation(const EncodedItem& e) {
  int64_t longest = 0;
  for (const auto& c : e.continuations) longest = std::max<int64_t>(longest, c.size());
  return longest;
}

}  // namespace

RankingScorer::RankingScorer(const Tokenizer& tok, std::vector<TaskItem> items, int64_t max_seq_len,
                             int64_t batch_tokens)
    : items_(std::move(items)), batch_tokens_(batch_tokens) {
  for (const TaskItem& item : items_) {
    EncodedItem e = encode_item(tok, item);
    int64_t longest = longest_continuation(e);
    bool cut = false;
    if (max_seq_len > 0 && int64_t(e.context.size()) + longest > max_seq_len) {
      int64_t room = max_seq_len - longest;
      if (room < 1) throw Error("", "a choice alone is longer than the model's context");
      e.context.erase(e.context.begin(), e.context.end() - room);
      cut = true;
    }
    encoded_.push_back(std::move(e));
    truncated_.push_back(cut);
  }
}

namespace {
int64_t count_tokens(const std::vector<EncodedItem>& items, const std::vector<size_t>& subset, bool shared) {
  int64_t n = 0;
  auto count = [&](size_t i) {
    const EncodedItem& e = items[i];
    n += shared ? int64_t(e.context.size()) : int64_t(e.context.size() * e.continuations.size());
    for (const auto& c : e.continuations) n += c.size();
  };
  if (subset.empty())
    for (size_t i = 0; i < items.size(); ++i) count(i);
  for (size_t i : subset) count(i);
  return n;
}
}  // namespace

int64_t RankingScorer::tokens(const std::vector<size_t>& subset) const { return count_tokens(encoded_, subset, true); }

int64_t RankingScorer::tokens_without_sharing(const std::vector<size_t>& subset) const {
  return count_tokens(encoded_, subset, false);
}

std::vector<ItemScores> RankingScorer::score_batch(const Transformer& net,
                                                   const std::vector<size_t>& batch) const {
  int64_t N = batch.size(), Tc = 0, Tk = 0, R = 0;
  for (size_t i : batch) {
    Tc = std::max<int64_t>(Tc, encoded_[i].context.size());
    Tk = std::max(Tk, longest_continuation(encoded_[i]));
    R += encoded_[i].continuations.size();
  }
  int64_t max_len = net.config().max_seq_len;
  if (N == 1 || net.config().arch == Arch::GPT2 || (max_len > 0 && Tc + Tk > max_len)) {
    std::vector<ItemScores> out;
    for (size_t i : batch) {
      out.push_back(score_encoded(net, encoded_[i]));
      out.back().truncated = truncated_[i];
    }
    return out;
  }
  // Contexts, left-padded so every one ends at position Tc - 1.
  at::Tensor ctx = at::zeros({N, Tc}, at::kLong), bias = at::zeros({N, Tc + Tk}, at::kFloat);
  at::Tensor rows = at::empty({R}, at::kLong), conts = at::zeros({R, Tk}, at::kLong);
  auto ctx_a = ctx.accessor<int64_t, 2>(), conts_a = conts.accessor<int64_t, 2>();
  auto bias_a = bias.accessor<float, 2>();
  auto rows_a = rows.accessor<int64_t, 1>();
  for (int64_t n = 0, r = 0; n < N; ++n) {
    const EncodedItem& e = encoded_[batch[n]];
    int64_t pad = Tc - int64_t(e.context.size());
    for (int64_t t = 0; t < Tc; ++t) {
      ctx_a[n][t] = t < pad ? e.context[0] : e.context[t - pad];
      if (t < pad) bias_a[n][t] = kHidden;
    }
    for (const auto& c : e.continuations) {
      rows_a[r] = n;
      for (size_t j = 0; j < c.size(); ++j) conts_a[r][j] = c[j];  // right padding: never seen
      ++r;
    }
  }
  KVCache cache;
  cache.key_bias = bias;
  at::Tensor first = at::log_softmax(net.forward(ctx, &cache).select(1, Tc - 1), -1);  // [N, V]
  KVCache shared = cache.select_rows(rows);
  at::Tensor logp = at::log_softmax(net.forward(conts, &shared), -1);  // [R, Tk, V]
  auto first_a = first.accessor<float, 2>();
  auto logp_a = logp.accessor<float, 3>();
  std::vector<ItemScores> out(N);
  for (int64_t n = 0, r = 0; n < N; ++n) {
    out[n].truncated = truncated_[batch[n]];
    for (const auto& c : encoded_[batch[n]].continuations) {
      double s = first_a[n][c[0]];
      for (size_t j = 1; j < c.size(); ++j) s += logp_a[r][j - 1][c[j]];
      out[n].scores.push_back(s);
      out[n].lengths.push_back(c.size());
      ++r;
    }
  }
  return out;
}

RankingResult RankingScorer::score(const Transformer& net, const std::vector<size_t>& subset) const {
  c10::InferenceMode guard;
  auto start = std::chrono::steady_clock::now();
  std::vector<size_t> order = subset;
  if (order.empty()) {
    order.resize(items_.size());
    std::iota(order.begin(), order.end(), 0);
  }
  // Batches of similar context length waste little on padding; the order is deterministic.
  std::vector<size_t> by_length = order;
  std::stable_sort(by_length.begin(), by_length.end(), [&](size_t a, size_t b) {
    return encoded_[a].context.size() < encoded_[b].context.size();
  });
  const int64_t vocab = net.config().vocab_size;
  std::vector<std::vector<size_t>> batches;
  for (size_t begin = 0; begin < by_length.size();) {
    std::vector<size_t> batch;
    int64_t logits = 0;
    for (size_t i = begin; i < by_length.size(); ++i) {
      const EncodedItem& e = encoded_[by_length[i]];
      int64_t cost = (int64_t(e.context.size()) + int64_t(e.continuations.size()) * longest_continuation(e)) * vocab;
      if (!batch.empty() && logits + cost > batch_tokens_ * vocab) break;
      batch.push_back(by_length[i]);
      logits += cost;
    }
    begin += batch.size();
    batches.push_back(std::move(batch));
  }
  // The batches are formed as in one process whatever the rank count, and each runs whole on one
  // rank, so every item's scores are bit-identical under mpirun (core/dist.h).
  const std::vector<std::string> done =
      dist::share(batches.size(), [&](size_t b) { return pack_scores(score_batch(net, batches[b])); });
  std::vector<ItemScores> scores(items_.size());
  for (size_t b = 0; b < batches.size(); ++b) {
    std::vector<ItemScores> got = unpack_scores(done[b]);
    for (size_t j = 0; j < batches[b].size(); ++j) scores[batches[b][j]] = std::move(got[j]);
  }
  std::vector<TaskItem> picked;
  std::vector<ItemScores> picked_scores;
  for (size_t i : order) {
    picked.push_back(items_[i]);
    picked_scores.push_back(std::move(scores[i]));
  }
  RankingResult r = summarize_ranking(picked, std::move(picked_scores));
  r.seconds = seconds_since(start);
  return r;
}

}  // namespace rankrl
