#include "eval/ranking.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>

#include "core/dist.h"
#include "core/error.h"
#include "core/log.h"
#include "model/transformer.h"
#include "tokenizer/tokenizer.h"

namespace rankrl {

EncodedItem encode_item(const Tokenizer& tok, const TaskItem& item) {
  std::string context = item.query;
  size_t keep = context.find_last_not_of(" \t\r\n") + 1;  // npos + 1 == 0 for blank contexts
  std::string moved = context.substr(keep);
  context.resize(keep);
  EncodedItem e;
  e.context = tok.encode_with_bos(context);
  for (const std::string& choice : item.choices) {
    std::string continuation = moved + " " + choice;
    std::vector<int32_t> whole = tok.encode_with_bos(context + continuation);
    std::vector<int32_t> cont;
    if (whole.size() > e.context.size()) cont.assign(whole.begin() + e.context.size(), whole.end());
    if (cont.empty()) cont = tok.encode(continuation);  // tokenization merged across the boundary
    e.continuations.push_back(std::move(cont));
  }
  return e;
}

namespace {

at::Tensor as_tensor(const std::vector<int32_t>& ids) {
  return at::tensor(at::ArrayRef<int32_t>(ids)).to(at::kLong).unsqueeze(0);
}

// Cloze and partial items: each (context, continuation) pair runs as one sequence. Returns the
// summed log-likelihood of the continuation tokens and whether each was the argmax.
void score_pair(const Transformer& net, const Tokenizer& tok, const std::string& context,
                const std::string& continuation, ItemScores& out) {
  TaskItem one;
  one.query = context;
  one.choices = {continuation};
  EncodedItem e = encode_item(tok, one);
  std::vector<int32_t> cont = e.continuations[0], seq = e.context;
  int64_t max_len = net.config().max_seq_len;
  if (max_len > 0 && int64_t(seq.size() + cont.size()) > max_len) {
    int64_t room = max_len - int64_t(cont.size());
    if (room < 1) throw Error("", "a continuation alone is longer than the model's context");
    seq.erase(seq.begin(), seq.end() - room);
    out.truncated = true;
  }
  size_t first = seq.size();
  if (first == 0) throw Error("", "empty context and no BOS token: nothing predicts the continuation");
  seq.insert(seq.end(), cont.begin(), cont.end());
  at::Tensor logp = at::log_softmax(net.forward(as_tensor(seq))[0], -1);
  auto logp_a = logp.accessor<float, 2>();
  at::Tensor best = logp.argmax(-1);
  auto best_a = best.accessor<int64_t, 1>();
  double s = 0.0;
  bool greedy = true;
  for (size_t j = 0; j < cont.size(); ++j) {
    s += logp_a[first + j - 1][cont[j]];
    greedy = greedy && best_a[first + j - 1] == cont[j];
  }
  out.scores.push_back(s);
  out.lengths.push_back(cont.size());
  out.greedy = greedy;
}

ItemScores score_other_kind(const Transformer& net, const Tokenizer& tok, const TaskItem& item) {
  c10::InferenceMode guard;
  ItemScores out;
  if (item.kind == TaskKind::cloze) {
    score_pair(net, tok, item.query, item.choices.at(0), out);
  } else {
    bool truncated = false;
    for (const std::string& context : item.choices) {
      score_pair(net, tok, context, item.continuation, out);
      truncated = truncated || out.truncated;
    }
    out.truncated = truncated;
    out.greedy = false;
  }
  return out;
}

}  // namespace

ItemScores score_item(const Transformer& net, const Tokenizer& tok, const TaskItem& item) {
  if (item.kind != TaskKind::choice) return score_other_kind(net, tok, item);
  return score_encoded(net, encode_item(tok, item));
}

ItemScores score_encoded(const Transformer& net, EncodedItem e) {
  c10::InferenceMode guard;
  ItemScores out;
  int64_t longest = 0;
  for (const auto& c : e.continuations) longest = std::max<int64_t>(longest, c.size());
  int64_t max_len = net.config().max_seq_len;
  if (max_len > 0 && int64_t(e.context.size()) + longest > max_len) {
    int64_t room = max_len - longest;
    if (room < 1) throw Error("", "a choice alone is longer than the model's context");
    e.context.erase(e.context.begin(), e.context.end() - room);
    out.truncated = true;
  }
  // The context once; its last logits predict every continuation's first token.
  KVCache cache;
  at::Tensor ctx_logp = at::log_softmax(net.forward(as_tensor(e.context), &cache)[0][-1], -1);
  int64_t K = e.continuations.size();
  at::Tensor conts = at::zeros({K, longest}, at::kLong);
  for (int64_t k = 0; k < K; ++k)
    for (size_t j = 0; j < e.continuations[k].size(); ++j) conts[k][j] = e.continuations[k][j];
  KVCache shared = cache.expand(K);
  // Right padding is harmless: causal attention never lets a real token see a pad.
  at::Tensor logp = at::log_softmax(net.forward(conts, &shared), -1);
  auto logp_a = logp.accessor<float, 3>();
  auto ctx_a = ctx_logp.accessor<float, 1>();
  for (int64_t k = 0; k < K; ++k) {
    const auto& c = e.continuations[k];
    double s = ctx_a[c[0]];
    for (size_t j = 1; j < c.size(); ++j) s += logp_a[k][j - 1][c[j]];
    out.scores.push_back(s);
    out.lengths.push_back(c.size());
  }
  return out;
}

namespace {

ItemOutcome item_outcome(const TaskItem& item, const ItemScores& scores) {
  const auto& s = scores.scores;
  if (item.kind == TaskKind::cloze) return {s[0], scores.greedy, scores.greedy};
  // Partial items share one continuation: normalising by its length changes nothing.
  bool partial = item.kind == TaskKind::partial;
  size_t best = 0, best_norm = 0;
  for (size_t k = 1; k < s.size(); ++k) {
    if (s[k] > s[best]) best = k;
    if (partial ? s[k] > s[best_norm]
                : s[k] / item.choices[k].size() > s[best_norm] / item.choices[best_norm].size())
      best_norm = k;
  }
  double top = *std::max_element(s.begin(), s.end()), z = 0.0;
  for (double v : s) z += std::exp(v - top);
  return {s[item.gold] - top - std::log(z), best == size_t(item.gold), best_norm == size_t(item.gold)};
}

}  // namespace

RankingResult summarize_ranking(const std::vector<TaskItem>& items, std::vector<ItemScores> scores) {
  RankingResult r;
  r.items = items.size();
  for (size_t i = 0; i < items.size(); ++i) {
    const ItemOutcome o = item_outcome(items[i], scores[i]);
    r.outcomes.push_back(o);
    r.acc += o.acc;
    r.acc_norm += o.acc_norm;
    r.margin += o.margin;
    r.truncated += scores[i].truncated;
    if (items[i].kind == TaskKind::cloze) {
      r.cloze_items++;
      r.cloze_greedy += scores[i].greedy;
      r.cloze_ll += scores[i].scores[0];
    }
  }
  if (r.items > 0) {
    r.acc /= r.items;
    r.acc_norm /= r.items;
    r.margin /= r.items;
  }
  if (r.cloze_items > 0) {
    r.cloze_greedy /= r.cloze_items;
    r.cloze_ll /= r.cloze_items;
  }
  r.per_item = std::move(scores);
  return r;
}

int64_t longest_answer_tokens(const Tokenizer& tok, const TaskItem& item) {
  int64_t longest = 0;
  if (item.kind == TaskKind::partial) {
    for (const std::string& context : item.choices) {
      TaskItem one;
      one.query = context;
      one.choices = {item.continuation};
      longest = std::max<int64_t>(longest, encode_item(tok, one).continuations[0].size());
    }
    return longest;
  }
  for (const auto& c : encode_item(tok, item).continuations) longest = std::max<int64_t>(longest, c.size());
  return longest;
}

int64_t drop_items_too_long(std::vector<TaskItem>& items, const Tokenizer& tok, int64_t max_len,
                            const std::string& file) {
  if (max_len <= 0) return 0;
  std::vector<TaskItem> kept;
  int64_t dropped = 0;
  for (TaskItem& item : items) {
    const int64_t longest = longest_answer_tokens(tok, item);
    if (longest < max_len) {
      kept.push_back(std::move(item));
      continue;
    }
    ++dropped;
    warn(file + ":" + std::to_string(item.line) + ": skipped: an answer is " + std::to_string(longest) +
         " tokens, the model's context is " + std::to_string(max_len));
  }
  items = std::move(kept);
  return dropped;
}

std::string pack_scores(const std::vector<ItemScores>& items) {
  dist::Writer w;
  w.put(items.size());
  for (const ItemScores& s : items) {
    w.put(s.scores.size());
    for (size_t c = 0; c < s.scores.size(); ++c) w.put(s.scores[c]), w.put(s.lengths[c]);
    w.put(uint8_t(s.truncated)), w.put(uint8_t(s.greedy));
  }
  return w.take();
}

std::vector<ItemScores> unpack_scores(const std::string& bytes) {
  dist::Reader r(bytes);
  std::vector<ItemScores> items(r.get<size_t>());
  for (ItemScores& s : items) {
    const size_t n = r.get<size_t>();
    for (size_t c = 0; c < n; ++c) {
      s.scores.push_back(r.get<double>());
      s.lengths.push_back(r.get<int64_t>());
    }
    s.truncated = r.get<uint8_t>() != 0;
    s.greedy = r.get<uint8_t>() != 0;
  }
  return items;
}

RankingResult evaluate_ranking(const Transformer& net, const Tokenizer& tok,
                               const std::vector<TaskItem>& items, bool show_progress) {
  auto start = std::chrono::steady_clock::now();
  Progress progress("ranking", items.size(), "items", show_progress);
  // One item per unit; under mpirun the items are spread over the ranks and gathered in order.
  const std::vector<std::string> done = dist::share(items.size(), [&](size_t i) {
    std::string bytes = pack_scores({score_item(net, tok, items[i])});
    progress.advance(dist::size());  // this rank's share of the items, as the whole
    return bytes;
  });
  progress.finish();
  std::vector<ItemScores> scores;
  for (const std::string& bytes : done) scores.push_back(std::move(unpack_scores(bytes).at(0)));
  RankingResult r = summarize_ranking(items, std::move(scores));
  r.seconds = seconds_since(start);
  return r;
}

}  // namespace rankrl
