// Plan evaluation for search: applies a plan to a working copy of the dense model (factors come
// sliced from the FactorCache, so applying costs only the slicing) and scores the RkD, VRkD or
// test items with the batched RankingScorer. Results are memoised per (plan, split, subset), and
// the counters say how many evaluations ran, how many items they scored and where the time went.
//
// Reward (documented in `rankrl search --help`): with Δ = metric(compressed) − metric(dense) on
// the same RkD items,
//     reward = Δ + size_weight · (budget − cost) / dense_cost
// where metric is the mean gold-choice margin (log-softmax of the gold choice's summed
// log-likelihood among the choices; default), accuracy ("acc"), or minus the mean NLL per token
// of the reward text ("nll"); a plan whose scores are not finite gets −nonfinite_penalty instead.
// The agents may instead train on a surrogate, −KL(dense ‖ compressed) on the calibration text
// (see surrogate()), and spend RkD evaluations only on the plans it promotes.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/tasks.h"
#include "eval/ranking.h"
#include "plan/plan.h"

namespace rankrl {

struct CalibStats;
class FactorCache;
class DivergenceScorer;
class RankingScorer;
class Tokenizer;
class Transformer;

enum class Split { rkd, vrkd, test };
const char* split_name(Split s);

struct RankMetrics {
  double margin = 0.0, acc = 0.0, acc_norm = 0.0;
  double nll = 0.0;  // only for the "nll" reward
  int64_t items = 0;
  bool finite = true;
  std::vector<ItemOutcome> per_item;  // in the order scored (item order when no subset)
};

struct EvalCounters {
  int64_t evaluations = 0;   // forward evaluations of a plan on some items
  int64_t items_scored = 0;  // items those evaluations scored
  int64_t memo_hits = 0;
  int64_t subset_evaluations = 0, subset_items = 0;  // training evaluations on the reward subset
  int64_t surrogate_evaluations = 0;                  // KL evaluations (no RkD item)
  double surrogate_seconds = 0.0;
  double forward_seconds = 0.0, apply_seconds = 0.0;
};

struct RewardOptions {
  std::string kind = "margin";  // margin | acc | nll
  double size_weight = 0.0;
  double nonfinite_penalty = 10.0;
};

class PlanEvaluator {
 public:
  // `calib_ids`/`ctx`: the calibration text, which the "nll" reward and the KL surrogate score
  // (may be empty when neither is used).
  PlanEvaluator(const Transformer& dense, FactorCache& cache, const CalibStats& stats, const Tokenizer& tok,
                std::vector<TaskItem> rkd, std::vector<TaskItem> vrkd, std::vector<TaskItem> test,
                RewardOptions reward, std::vector<int32_t> calib_ids = {}, int64_t ctx = 256);
  ~PlanEvaluator();

  // Metrics of the model under `plan` on the split's items at `subset` (all when empty).
  RankMetrics evaluate(const Plan& plan, Split split, const std::vector<size_t>& subset = {});
  RankMetrics dense_metrics(Split split, const std::vector<size_t>& subset = {});
  // reward(plan) on RkD items `subset` (see the header comment).
  double reward(const Plan& plan, const std::vector<size_t>& subset, double cost, double budget,
                double dense_cost, RankMetrics* metrics = nullptr);
  // The surrogate reward (search --surrogate kl): −KL(dense ‖ plan) in nats per token on the
  // first `tokens` of the calibration text plus the same size term; no RkD item is scored. Call
  // enable_surrogate first. Non-finite → −nonfinite_penalty.
  void enable_surrogate(int64_t tokens);
  bool has_surrogate() const { return divergence_ != nullptr; }
  int64_t surrogate_tokens() const;
  double surrogate(const Plan& plan, double cost, double budget, double dense_cost, double* kl = nullptr);
  // The working model under `plan` (valid until the next call).
  Transformer& apply(const Plan& plan);
  // Metrics of another model (a healed one, search --final-heal) on all of the split's items,
  // scored and counted like a plan's evaluation (not memoised).
  RankMetrics evaluate_model(Transformer& net, Split split);

  size_t size(Split split) const;
  const RankingScorer& scorer(Split split) const;
  const EvalCounters& counters() const { return counters_; }
  const RewardOptions& reward_options() const { return reward_; }

 private:
  RankMetrics run(Split split, const std::vector<size_t>& subset) { return run_on(*work_, split, subset); }
  RankMetrics run_on(Transformer& net, Split split, const std::vector<size_t>& subset);
  void reset_to_dense();  // every layer of work_ back to the dense weight (shared tensors)

  const Transformer& dense_;
  FactorCache& cache_;
  const CalibStats& stats_;
  std::unique_ptr<Transformer> work_;
  std::string work_plan_;  // JSON of the plan applied to work_ ("" = dense)
  std::unique_ptr<RankingScorer> scorers_[3];
  RewardOptions reward_;
  std::vector<int32_t> calib_ids_;
  int64_t ctx_;
  std::unique_ptr<DivergenceScorer> divergence_;
  std::map<std::string, RankMetrics> memo_;
  std::map<std::string, double> kl_memo_;
  EvalCounters counters_;
};

}  // namespace rankrl
