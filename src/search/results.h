// results.json as a type: what `rankrl search` writes (search.cpp fills a SearchResults and writes
// results_to_json) and what the CLI's table and `rankrl experiment`'s summary read back
// (results_from_json). Adding a results field is one member here plus its line in the matching
// to_json/from_json pair of results.cpp (an integer stays an integer and a double a double there,
// so the file's text does not change with the type).
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rankrl {

// Mean metrics of one system on one split.
struct SplitMetrics {
  double margin = 0.0, acc = 0.0, acc_norm = 0.0;
  int64_t items = 0;
};

// A test-split difference (system − reference) with its paired bootstrap interval.
struct Difference {
  double diff = 0.0, lo = 0.0, hi = 0.0;
};
struct PairedDifferences {
  Difference margin, acc;
};

// What dense and every approach share.
struct ResultRow {
  SplitMetrics rkd, vrkd, test;
  PairedDifferences vs_dense, vs_best_uniform;
  int64_t linear_parameters = 0, total_parameters = 0, total_bytes = 0;
  // Speed of the compressed model, measured at the end of the run (eval/latency.h; the workloads
  // are in SearchResults::budget): multiply-add FLOPs per token of the projection weights, and
  // tokens per second of a prefill and of a decode forward pass.
  int64_t linear_flops_per_token = 0;
  double prefill_tokens_per_second = 0.0, decode_tokens_per_second = 0.0;
  // --budget latency: the forward pass of the latency workload, predicted from the latency table
  // (rest + Σ Linear times) and measured (median seconds); null for other budgets.
  std::optional<double> predicted_seconds, measured_seconds;
};

struct DenseResult : ResultRow {
  std::optional<double> heldout_ppl;  // absent without held-out text
};

// An approach's chosen plan after the compensating heal (search --final-heal compensate): its
// scores, and its test differences against dense and against the best uniform plan by healed VRkD.
struct HealedResult {
  SplitMetrics rkd, vrkd, test;
  double heldout_ppl = 0.0;        // 0 without held-out text
  PairedDifferences vs_dense, vs_best_uniform;
  double seconds = 0.0;            // healing and scoring this approach's finalists
  bool plan_changed = false;       // the unhealed VRkD scores would have chosen another of its finalists
};

struct ApproachResult : ResultRow {
  std::string name;                    // "uniform:svd", "ppo", ... (search/names.h)
  int64_t evaluations = 0;             // RkD evaluations on the reward subset
  int64_t surrogate_evaluations = 0;   // agents' KL evaluations
  double seconds = 0.0;
  double heldout_ppl = 0.0;            // 0 without held-out text
  std::optional<double> surrogate_kl;  // KL(dense ‖ chosen plan) when the surrogate is on (null otherwise)
  double keep_actual = 0.0;            // linear-weight parameters kept
  int64_t found_at_unit = 0;           // the unit that found the chosen plan
  double train_reward = 0.0;           // its reward on the reward subset
  std::optional<HealedResult> healed;  // with --final-heal compensate (absent otherwise)
};

struct RewardSettings {
  std::string kind;            // margin | acc | nll
  double size_weight = 0.0, shaping = 0.0;
  uint64_t items_per_evaluation = 0;
  std::string agent_surrogate;  // kl | none
  int64_t surrogate_tokens = 0, promote = 0;
};

struct SplitSizes {
  uint64_t rkd = 0, vrkd = 0, test = 0;
};

struct BootstrapSettings {
  std::string split = "test";
  double level = 0.95;
  int64_t resamples = 0;
  uint64_t seed = 0;
  std::string method, best_uniform, best_uniform_rule;
  std::optional<std::string> best_uniform_healed;  // with --final-heal compensate: by healed VRkD
};

struct Timing {
  double seconds = 0.0, setup_seconds = 0.0, decompose_seconds = 0.0;
  int64_t factorizations_loaded = 0;
  double calibration_seconds = 0.0;
  int64_t evaluations = 0, items_scored = 0, memo_hits = 0, surrogate_evaluations = 0;
  double surrogate_seconds = 0.0, forward_seconds = 0.0, apply_seconds = 0.0;
  double evaluations_per_second = 0.0, forward_share = 0.0;
};

// What each speed trick saved, from counts.
struct Savings {
  struct RewardSubset {
    int64_t evaluations = 0, items_scored = 0;
    double items_if_all_rkd = 0.0, saved_share = 0.0;
  } reward_subset;
  struct Memo {
    int64_t evaluations_skipped = 0;
  } memo;
  struct Surrogate {
    int64_t rkd_evaluations_avoided = 0;
    double seconds_per_evaluation = 0.0, rkd_seconds_per_evaluation = 0.0;
  } surrogate;
  struct ContextSharing {
    double rkd_tokens = 0.0, rkd_tokens_without_sharing = 0.0, saved_share = 0.0;
  } context_sharing;
  struct FactorCache {
    double decompose_seconds_once = 0.0, apply_seconds_per_evaluation = 0.0;
    int64_t factorizations_loaded_from_disk = 0;
  } factor_cache;
};

// What --keep was a fraction of and the speed workloads.
struct BudgetInfo {
  std::string kind = "params";  // params | flops | latency
  double dense = 0.0;           // Σ dense cost of the projection weights in the budget's quantity
  double budget = 0.0;          // keep · dense
  std::string prefill_workload, decode_workload;  // of every row's tokens per second
  // --budget latency: its workload, the measured time of the dense forward pass outside the
  // Linears (rest) and the forward-pass time the budget allows (rest + budget).
  std::string latency_workload;
  std::optional<double> rest_seconds, budget_forward_seconds;
};

struct SearchResults {
  // The run.
  std::string command, rankrl_version, libtorch_version;
  uint64_t seed = 0;
  int threads = 0;
  std::string model;
  double keep = 0.0;
  BudgetInfo budget;
  std::vector<std::string> methods, selects, agents;
  int64_t episodes = 0;
  RewardSettings reward;
  SplitSizes splits;
  SplitSizes skipped_too_long;    // items dropped per split: an answer fills the model's context
  std::string final_heal = "none";  // none | compensate (search --final-heal)
  uint64_t heldout_tokens = 0;
  // The outcome.
  DenseResult dense;
  std::vector<ApproachResult> approaches;  // in the order they ran
  std::string chosen;                      // the approach with the best VRkD score (healed with compensate)
  std::optional<std::string> chosen_without_heal;  // with compensate: the choice by the unhealed VRkD scores
  BootstrapSettings bootstrap;
  Timing timing;
  Savings savings;

  const ApproachResult* approach(const std::string& name) const;  // nullptr when absent
};

nlohmann::json results_to_json(const SearchResults& r);
// Throws Error(path, ...) when `j` lacks a field or holds one of the wrong type.
SearchResults results_from_json(const nlohmann::json& j, const std::string& path);
// results_from_json of the file.
SearchResults read_results(const std::string& path);

}  // namespace rankrl
