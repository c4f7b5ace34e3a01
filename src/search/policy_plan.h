// `rankrl plan --policy`: a plan decoded by a saved policy on a model it may never have seen,
// with zero plan evaluations on that model: no RkD item, no surrogate (KL) forward, no perplexity.
// What it does compute on the target: calibration statistics (the Gram matrices the features and
// data-aware methods need), every factorization the policy's methods need (as search does, or
// loaded from a factor store), and from them the state features. Greedy decoding (most likely
// method and selection, the mean rank fraction), or with `samples` > 0 the greedy plan and that
// many sampled ones, the one kept with the lowest mean closed-form relative output error
// ‖(W − Ŵ_r)X‖²/‖WX‖² over the weights (top selection; 0 for a dense weight).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "compress/pipeline.h"
#include "plan/plan.h"

namespace rankrl {

struct PolicyPlanOptions {
  std::string policy, model, tokenizer;
  StatsSource stats;
  double keep = 0.0;
  std::vector<std::string> methods;  // a subset of the policy's (empty = all of them)
  int64_t samples = 0;               // sampled plans besides the greedy one
  uint64_t seed = 0;
  std::string factor_cache;          // directory of a factor store to reuse / fill (optional)
  bool whole_model_setup = false;    // testing aid: whole-model statistics even with --calib (as search's)
};

struct PolicyPlan {
  Plan plan;
  // What was computed: candidates, closed-form errors, factorizations, keep_actual, the
  // evaluations (0) and the seconds.
  nlohmann::json summary;
};

// Checks every flag (usage errors) and the policy against the model (Error naming the policy
// file: a role it never saw, a keep outside its training range ± kPolicyKeepTolerance, a method
// it does not know).
PolicyPlan plan_from_policy(const PolicyPlanOptions& o);

}  // namespace rankrl
