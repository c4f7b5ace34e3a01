#include "search/policy_plan.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "calib/calibrate.h"
#include "compress/factor_cache.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "io/weight_roles.h"
#include "model/model.h"
#include "model/transformer.h"
#include "search/agent.h"
#include "search/env.h"
#include "search/factor_store.h"

namespace rankrl {

namespace {

std::string listed(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& x : v) out += (out.empty() ? "" : ",") + x;
  return out;
}

void validate(const PolicyPlanOptions& o) {
  if (o.policy.empty()) throw usage_error("plan needs --policy FILE");
  if (o.model.empty()) throw usage_error("plan needs --model");
  if (!(o.keep > 0.0 && o.keep < 1.0)) throw usage_error("--keep must be in (0, 1)");
  if (o.samples < 0) throw usage_error("--samples must not be negative");
  const StatsSource& st = o.stats;
  if (!st.given()) throw usage_error("plan needs --calib FILE (or --stats FILE): the features are output errors on calibration data");
  if (!st.calib_file.empty() && !st.stats_file.empty()) throw usage_error("give either --calib or --stats, not both");
  if (!st.calib_file.empty() && (st.calib_tokens < 1 || st.ctx < 2))
    throw usage_error("--calib needs --calib-tokens N (N >= 1) and --ctx (>= 2)");
}

// The policy against the target: methods it knows, a keep it was trained near, roles it has seen.
void check_policy_fits(const PolicyInfo& p, const PolicyPlanOptions& o, const Transformer& net) {
  for (const std::string& m : o.methods)
    check(std::find(p.methods.begin(), p.methods.end(), m) != p.methods.end(), o.policy,
          "the policy does not know method '" + m + "' (it was trained on " + listed(p.methods) + ")");
  check(o.keep >= p.keep_min - kPolicyKeepTolerance && o.keep <= p.keep_max + kPolicyKeepTolerance, o.policy,
        "--keep " + std::to_string(o.keep).substr(0, 6) + " is outside the keeps the policy was trained at (" +
            std::to_string(p.keep_min).substr(0, 6) + " to " + std::to_string(p.keep_max).substr(0, 6) + ", ± " +
            std::to_string(kPolicyKeepTolerance).substr(0, 4) + "); fine-tune it at this keep with search --init-policy");
  check(p.feature_version == kFeatureVersion, o.policy,
        "feature version " + std::to_string(p.feature_version) + " (this rankrl computes version " +
            std::to_string(kFeatureVersion) + ")");
  for (const Linear* l : net.linears()) {
    const std::optional<ParsedName> n = parse_tensor_name(net.config().arch, l->name());
    const std::string role = n ? role_short_name(n->role) : "";
    check(std::find(p.roles.begin(), p.roles.end(), role) != p.roles.end(), o.policy,
          "the policy never acted on a '" + role + "' weight (" + l->name() + "); it knows the roles " + listed(p.roles));
  }
}

// Mean closed-form relative output error of a plan over the env's weights (dense: 0).
double closed_form_error(SearchEnv& env, const Plan& plan, int64_t& computed) {
  double sum = 0.0;
  for (size_t i = 0; i < env.steps(); ++i) {
    const WeightDecision& d = plan.weights.at(env.weights()[i].name);
    if (d.method == kDense) continue;
    sum += env.relative_error(i, d.method, d.rank);
    ++computed;
  }
  return sum / double(env.steps());
}

// One episode of the policy through the env's budget clip (the rank fraction read as in training).
Plan decode(SearchEnv& env, Agent& agent, const PolicyInfo& p, std::mt19937_64& rng, bool greedy) {
  std::vector<float> s = env.reset();
  while (!env.done()) {
    StepRecord rec;
    Action a = agent.act(s, rng, rec, greedy);
    env.read_action(a);
    s = env.step(a);
  }
  return env.plan();
}

// What the features and the samples' closed-form errors read, from the factor store exactly as
// search makes it (search/factor_store.h): with --calib and no Fisher method the model is
// calibrated one decoder layer at a time on search's calibration tokens (the first
// --calib-tokens ids), so no whole-model statistics are held and a search's --factor-cache store
// of the same inputs serves; Fisher or --stats use whole-model statistics, dropped once the
// errors are taken. Only the errors are read, so factors not written to a store are not kept.
ObtainedFactors policy_factors(const Model& model, const PolicyPlanOptions& o, const EnvOptions& eo) {
  const FactorStorePlace place{o.factor_cache, true, false};
  if (streams_factor_store(!o.stats.calib_file.empty(), eo.methods, o.whole_model_setup || eo.loss_estimates)) {
    const std::vector<int32_t> ids = calibration_ids(*model.tokenizer, o.stats.calib_file, o.stats.calib_tokens);
    return obtain_factor_store(*model.net, {&ids, o.stats.ctx, nullptr}, eo, {}, place);
  }
  const CalibStats stats = obtain_stats(model, o.stats, uses_fisher(eo.methods), eo.loss_estimates);
  ObtainedFactors factors = obtain_factor_store(*model.net, {nullptr, 0, &stats}, eo, {}, place);
  factors.cache->set_stats(nullptr);  // the statistics go now
  return factors;
}

}  // namespace

PolicyPlan plan_from_policy(const PolicyPlanOptions& o) {
  auto start = std::chrono::steady_clock::now();
  validate(o);
  const PolicyInfo p = read_policy_info(o.policy);
  Model model = load_model(o.model, o.tokenizer);
  check_policy_fits(p, o, *model.net);
  const double smallest = SearchEnv::smallest_keep(*model.net, EnvOptions{}.min_rank_frac);
  if (o.keep < smallest)
    throw usage_error("--keep " + std::to_string(o.keep) + " is below what factoring every weight at the smallest rank costs (" +
                      std::to_string(smallest) + " for this model)");
  // The features need every method the policy knows (its state has an error curve for each).
  EnvOptions eo;
  eo.methods = p.methods;
  eo.selects = p.selects;
  eo.keep = o.keep;
  eo.seed = o.seed;
  eo.step_errors = true;  // the plans' closed-form errors are read per rank (no Gram is held)
  eo.rank_action = p.rank_action;
  eo.anchor = p.anchor;
  // A kfac anchor is computed on this model from its own output-gradient statistics (a backward
  // pass over the calibration text; no evaluation of any plan).
  eo.loss_estimates = anchored_at_kfac(eo);
  ObtainedFactors factors = policy_factors(model, o, eo);
  SearchEnv env(*model.net, *factors.cache, factors.errors, eo);
  check(env.feature_names() == p.features, o.policy, "the policy's state features differ from the ones computed here");
  AgentOptions ao;
  ao.hidden = p.hidden;
  std::unique_ptr<Agent> agent = make_agent(p.agent, env.state_size(), p.methods.size(), p.selects.size(), ao, o.seed);
  agent->load_policy(o.policy);
  if (!o.methods.empty()) {
    std::vector<bool> allowed;
    for (const std::string& m : p.methods) allowed.push_back(std::find(o.methods.begin(), o.methods.end(), m) != o.methods.end());
    agent->restrict_methods(allowed);
  }
  std::mt19937_64 rng(o.seed);
  int64_t errors_computed = 0;
  PolicyPlan best{decode(env, *agent, p, rng, true), nullptr};
  double best_error = closed_form_error(env, best.plan, errors_computed);
  const double greedy_error = best_error;
  int64_t chosen = 0;
  for (int64_t k = 1; k <= o.samples; ++k) {
    Plan candidate = decode(env, *agent, p, rng, false);
    const double e = closed_form_error(env, candidate, errors_computed);
    if (e < best_error) best_error = e, best.plan = std::move(candidate), chosen = k;
  }
  // Methods outside --methods never come back from the masked policy, but the budget clip may
  // factor a weight with the first factoring method when "dense" does not fit: say so.
  if (!o.methods.empty())
    for (const auto& [name, d] : best.plan.weights)
      check(std::find(o.methods.begin(), o.methods.end(), d.method) != o.methods.end() || d.method == kDense, o.policy,
            "the budget clip chose method '" + d.method + "' for " + name + ", outside --methods");
  const double cost = env.plan_cost(best.plan);
  best.summary = {{"policy", o.policy}, {"model", o.model}, {"keep", o.keep}, {"keep_actual", cost / env.dense_params()},
                  {"linear_parameters", cost}, {"candidates", 1 + o.samples},
                  {"chosen", chosen == 0 ? std::string("greedy") : "sample " + std::to_string(chosen)},
                  {"closed_form_error", best_error}, {"greedy_closed_form_error", greedy_error},
                  {"closed_form_errors_computed", errors_computed},
                  {"factorizations_loaded", factors.loaded}, {"rkd_evaluations", 0}, {"surrogate_evaluations", 0},
                  {"seconds", seconds_since(start)}};
  return best;
}

}  // namespace rankrl
