#include "search/evaluator.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "calib/calibrate.h"
#include "compress/apply.h"
#include "compress/factor_cache.h"
#include "core/error.h"
#include "core/log.h"
#include "eval/divergence.h"
#include "eval/perplexity.h"
#include "eval/ranking_batch.h"
#include "model/transformer.h"

namespace rankrl {

const char* split_name(Split s) {
  switch (s) {
    case Split::rkd: return "rkd";
    case Split::vrkd: return "vrkd";
    case Split::test: return "test";
  }
  return "?";
}

PlanEvaluator::PlanEvaluator(const Transformer& dense, FactorCache& cache, const CalibStats& stats,
                             const Tokenizer& tok, std::vector<TaskItem> rkd, std::vector<TaskItem> vrkd,
                             std::vector<TaskItem> test, RewardOptions reward, std::vector<int32_t> calib_ids,
                             int64_t ctx)
    : dense_(dense), cache_(cache), stats_(stats), reward_(std::move(reward)), calib_ids_(std::move(calib_ids)), ctx_(ctx) {
  check(reward_.kind == "margin" || reward_.kind == "acc" || reward_.kind == "nll", "",
        "unknown reward '" + reward_.kind + "' (margin, acc, nll)");
  check(reward_.kind != "nll" || int64_t(calib_ids_.size()) > ctx_, "", "the nll reward needs more than --ctx tokens of text");
  work_ = std::make_unique<Transformer>(dense.config(), dense.weights());
  const int64_t max_len = dense.config().max_seq_len;
  scorers_[0] = std::make_unique<RankingScorer>(tok, std::move(rkd), max_len);
  scorers_[1] = std::make_unique<RankingScorer>(tok, std::move(vrkd), max_len);
  scorers_[2] = std::make_unique<RankingScorer>(tok, std::move(test), max_len);
}

PlanEvaluator::~PlanEvaluator() = default;

const RankingScorer& PlanEvaluator::scorer(Split split) const { return *scorers_[int(split)]; }
size_t PlanEvaluator::size(Split split) const { return scorer(split).size(); }

void PlanEvaluator::reset_to_dense() {
  std::vector<Linear*> work = work_->linears();
  std::vector<const Linear*> dense = dense_.linears();
  for (size_t i = 0; i < work.size(); ++i)
    if (work[i]->is_low_rank()) work[i]->set_dense(dense[i]->weight());
  work_plan_.clear();
}

Transformer& PlanEvaluator::apply(const Plan& plan) {
  std::string key = plan_to_json(plan).dump();
  if (key == work_plan_) return *work_;
  auto start = std::chrono::steady_clock::now();
  reset_to_dense();
  apply_plan(*work_, plan, cache_, &stats_, "plan");
  work_plan_ = key;
  counters_.apply_seconds += seconds_since(start);
  return *work_;
}

RankMetrics PlanEvaluator::run_on(Transformer& net, Split split, const std::vector<size_t>& subset) {
  auto start = std::chrono::steady_clock::now();
  RankMetrics m;
  if (reward_.kind == "nll" && split == Split::rkd) {
    PerplexityResult p = perplexity(net, calib_ids_, ctx_, 8, false);
    m.nll = p.nll;
  }
  RankingResult r = scorer(split).score(net, subset);
  m.margin = r.margin;
  m.acc = r.acc;
  m.acc_norm = r.acc_norm;
  m.items = r.items;
  m.per_item = std::move(r.outcomes);
  m.finite = std::isfinite(m.margin) && std::isfinite(m.nll);
  counters_.evaluations++;
  counters_.items_scored += r.items;
  if (!subset.empty()) counters_.subset_evaluations++, counters_.subset_items += r.items;
  counters_.forward_seconds += seconds_since(start);
  return m;
}

RankMetrics PlanEvaluator::evaluate(const Plan& plan, Split split, const std::vector<size_t>& subset) {
  std::string key = plan_to_json(plan).dump() + "|" + split_name(split) + "|";
  for (size_t i : subset) key += std::to_string(i) + ",";
  auto it = memo_.find(key);
  if (it != memo_.end()) {
    counters_.memo_hits++;
    return it->second;
  }
  apply(plan);
  return memo_[key] = run(split, subset);
}

RankMetrics PlanEvaluator::evaluate_model(Transformer& net, Split split) { return run_on(net, split, {}); }

RankMetrics PlanEvaluator::dense_metrics(Split split, const std::vector<size_t>& subset) {
  std::string key = std::string("dense|") + split_name(split) + "|";
  for (size_t i : subset) key += std::to_string(i) + ",";
  auto it = memo_.find(key);
  if (it != memo_.end()) return it->second;
  reset_to_dense();
  return memo_[key] = run(split, subset);
}

double PlanEvaluator::reward(const Plan& plan, const std::vector<size_t>& subset, double cost, double budget,
                             double dense_cost, RankMetrics* metrics) {
  RankMetrics c = evaluate(plan, Split::rkd, subset);
  RankMetrics d = dense_metrics(Split::rkd, subset);
  if (metrics) *metrics = c;
  if (!c.finite) return -reward_.nonfinite_penalty;
  double delta = reward_.kind == "acc" ? c.acc - d.acc
               : reward_.kind == "nll" ? -(c.nll - d.nll)
                                       : c.margin - d.margin;
  return delta + reward_.size_weight * (budget - cost) / dense_cost;
}

void PlanEvaluator::enable_surrogate(int64_t tokens) {
  check(!calib_ids_.empty(), "", "--surrogate kl needs --calib FILE (the text its KL is measured on)");
  const size_t n = size_t(std::min<int64_t>(tokens, int64_t(calib_ids_.size())));
  divergence_ = std::make_unique<DivergenceScorer>(dense_, std::vector<int32_t>(calib_ids_.begin(), calib_ids_.begin() + n), ctx_);
}

int64_t PlanEvaluator::surrogate_tokens() const { return divergence_ ? divergence_->tokens() : 0; }

double PlanEvaluator::surrogate(const Plan& plan, double cost, double budget, double dense_cost, double* kl) {
  check(divergence_ != nullptr, "", "internal: surrogate() before enable_surrogate()");
  std::string key = plan_to_json(plan).dump();
  auto it = kl_memo_.find(key);
  double d = 0.0;
  if (it != kl_memo_.end()) {
    counters_.memo_hits++;
    d = it->second;
  } else {
    const Transformer& net = apply(plan);
    auto start = std::chrono::steady_clock::now();
    d = kl_memo_[key] = divergence_->kl(net);
    counters_.surrogate_evaluations++;
    counters_.surrogate_seconds += seconds_since(start);
  }
  if (kl) *kl = d;
  if (!std::isfinite(d)) return -reward_.nonfinite_penalty;
  return -d + reward_.size_weight * (budget - cost) / dense_cost;
}

}  // namespace rankrl
