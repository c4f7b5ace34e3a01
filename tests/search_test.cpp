// The search: batched ranking equals per-item scoring, the environment's budget clip and state
// features (against the decomposers' closed-form truncation errors), both agents learning a
// known optimum and checkpointing exactly, and `rankrl search` end to end with resume.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "calib/calibrate.h"
#include "compress/factor_cache.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/tasks.h"
#include "eval/ranking.h"
#include "eval/ranking_batch.h"
#include "model/model.h"
#include "search/agent.h"
#include "model/transformer.h"
#include "search/env.h"
#include "search/options.h"
#include "search/results.h"
#include "plan/plan.h"
#include "test_util.h"

namespace rankrl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::data_file;

using test::kBin;
using test::kTok;
using test::kVal;

Model stories() { return load_model(data_file(kBin), data_file(kTok)); }

const CalibStats& calib_stats(const Model& m) {
  static const CalibStats s = [&] {
    return calibrate(*m.net, calibration_ids(*m.tokenizer, data_file(kVal), 2048), {2048, 256, 8, false});
  }();
  return s;
}

// The same calibration with the output-gradient Grams the K-FAC loss estimates read.
const CalibStats& grad_stats(const Model& m) {
  static const CalibStats s = [&] {
    CalibOptions opts{2048, 256, 8, false};
    opts.output_grads = true;
    return calibrate(*m.net, calibration_ids(*m.tokenizer, data_file(kVal), 2048), opts);
  }();
  return s;
}

TEST(RankingScorer, BatchedScoresEqualPerItemScores) {
  RANKRL_REQUIRE_DATA(kBin);
  Model m = stories();
  for (const char* file : {"tasks/arc_easy.jsonl", "tasks/piqa.jsonl"}) {
    std::vector<TaskItem> items = read_tasks(data_file(file), "", 24);
    RankingScorer scorer(*m.tokenizer, items, m.config().max_seq_len, 1 << 12);  // several batches
    RankingResult batched = scorer.score(*m.net);
    RankingResult single = evaluate_ranking(*m.net, *m.tokenizer, items, false);
    ASSERT_EQ(batched.per_item.size(), items.size());
    for (size_t i = 0; i < items.size(); ++i)
      for (size_t k = 0; k < items[i].choices.size(); ++k)
        EXPECT_NEAR(batched.per_item[i].scores[k], single.per_item[i].scores[k], 2e-3) << file << " item " << i;
    EXPECT_DOUBLE_EQ(batched.acc, single.acc);
    EXPECT_NEAR(batched.margin, single.margin, 1e-4);
    // A subset is scored in the order given.
    RankingResult sub = scorer.score(*m.net, {5, 2});
    EXPECT_NEAR(sub.per_item[0].scores[0], single.per_item[5].scores[0], 2e-3);
    EXPECT_NEAR(sub.per_item[1].scores[1], single.per_item[2].scores[1], 2e-3);
  }
}

struct EnvFixture : ::testing::Test {
  void SetUp() override {
    if (!fs::exists(data_file(kBin)) || !fs::exists(data_file(kVal))) GTEST_SKIP() << "shared data missing";
    model = std::make_unique<Model>(stories());
    cache = std::make_unique<FactorCache>(*model->net, &calib_stats(*model));
  }
  std::unique_ptr<Model> model;
  std::unique_ptr<FactorCache> cache;
};

TEST_F(EnvFixture, EveryRandomPlanMeetsTheBudgetWithinOnePercent) {
  for (double keep : {0.4, 0.6, 0.8}) {
    EnvOptions o;
    o.keep = keep;
    SearchEnv env(*model->net, *cache, calib_stats(*model), o);
    std::mt19937_64 rng(7);
    for (int episode = 0; episode < 40; ++episode) {
      std::vector<Action> actions(env.steps());
      for (Action& a : actions)
        a = {int(uniform01(rng) * 4), 0.01 + 0.99 * uniform01(rng), int(uniform01(rng) * 2)};
      Plan plan = env.decode(actions);
      double cost = env.plan_cost(plan);
      EXPECT_LE(cost, env.budget() + 1e-6) << "keep " << keep;
      EXPECT_GE(cost, 0.99 * env.budget()) << "keep " << keep;
      EXPECT_NO_THROW(validate_plan(plan, *model->net, "plan"));
      // decode(applied actions) reproduces the plan: the applied actions are a fixed point.
      std::vector<Action> applied = env.applied();
      EXPECT_EQ(plan_to_json(env.decode(applied)), plan_to_json(plan));
    }
  }
}

TEST_F(EnvFixture, UniformActionsGiveTheUniformPlan) {
  EnvOptions o;
  o.keep = 0.6;
  SearchEnv env(*model->net, *cache, calib_stats(*model), o);
  Plan plan = env.decode(std::vector<Action>(env.steps(), Action{3, 0.6, 0}));
  Plan uniform = uniform_plan(*model->net, 0.6, "svdllm");
  int differing = 0;
  for (const auto& [name, d] : uniform.weights) differing += plan.weights.at(name).rank != d.rank;
  // Only the last weight may take up the rounding slack of the others.
  EXPECT_LE(differing, 1);
  EXPECT_GE(env.plan_cost(plan), env.plan_cost(uniform));
}

TEST_F(EnvFixture, FeaturesAreTheClosedFormTruncationErrors) {
  EnvOptions o;
  o.methods = {"dense", "svdllm"};
  SearchEnv env(*model->net, *cache, calib_stats(*model), o);
  std::vector<float> s = env.reset();
  ASSERT_EQ(s.size(), env.state_size());
  for (float v : s) EXPECT_TRUE(std::isfinite(v));
  for (size_t i = 0; i < env.steps(); i += 5) {
    const WeightInfo& w = env.weights()[i];
    // svdllm's tail_error is the discarded whitened σ² — the output error by Eckart–Young.
    const Factors& f = cache->get(w.name, "svdllm", std::min(w.m, w.n));
    ASSERT_EQ(f.metric, "output_sq");
    int64_t r = std::max<int64_t>(1, int64_t(0.5 * double(w.max_rank)));
    double closed_form = f.tail_error[r] / f.tail_error[0];
    EXPECT_NEAR(w.curve[0][1], closed_form, 1e-4 + 1e-3 * closed_form) << w.name;
    EXPECT_NEAR(env.relative_error(i, "svdllm", r), closed_form, 1e-4 + 1e-3 * closed_form) << w.name;
  }
}

// The per-rank errors kept for step_errors once the Gram is gone (WeightErrors::by_rank, the
// expanded form) against multiplying out W − A_rB_r through the Gram (relative_error of an env
// that holds the statistics), and svdllm's closed form (its tail_error) at every rank.
TEST_F(EnvFixture, PerRankErrorsWithoutTheGramEqualTheDirectOnes) {
  EnvOptions o;
  o.methods = {"dense", "svd", "svdllm"};
  o.step_errors = true;
  SearchEnv direct(*model->net, *cache, calib_stats(*model), o);
  std::map<std::string, WeightErrors> errors;
  for (const Linear* l : model->net->linears()) errors[l->name()] = weight_errors(*l, *cache, *calib_stats(*model).find(l->name()), o);
  SearchEnv kept(*model->net, *cache, errors, o);
  EXPECT_EQ(kept.reset(), direct.reset());  // the state features: bit for bit
  for (size_t i = 0; i < kept.steps(); i += 3) {
    const WeightInfo& w = kept.weights()[i];
    const Factors& f = cache->get(w.name, "svdllm", std::min(w.m, w.n));
    for (int64_t r : {int64_t(1), w.max_rank / 3, w.max_rank}) {
      for (const char* method : {"svd", "svdllm"}) {
        const double d = direct.relative_error(i, method, r);
        // The direct form rounds W − A_rB_r to float32 (~1e-9 here); the expanded one is float64.
        EXPECT_NEAR(kept.relative_error(i, method, r), d, 2e-8) << w.name << " " << method << " r " << r;
      }
      const double closed_form = f.tail_error[r] / f.tail_error[0];
      EXPECT_NEAR(kept.relative_error(i, "svdllm", r), closed_form, 1e-4 + 1e-3 * closed_form) << w.name;
    }
  }
}

// The K-FAC loss estimates kept per rank (the expanded form through both Grams) against
// multiplying out ½·tr(Eᵀ·G_out·E·G_in) with E = W − A_rB_r.
TEST_F(EnvFixture, LossEstimatesEqualTheDirectKfacTrace) {
  EnvOptions o;
  o.methods = {"dense", "svd", "svdllm"};
  o.loss_estimates = true;
  const CalibStats& st = grad_stats(*model);
  int checked = 0;
  for (const Linear* l : model->net->linears()) {
    if (checked++ % 4 != 0) continue;
    const LinearStats& s = *st.find(l->name());
    const WeightErrors e = weight_errors(*l, *cache, s, o);
    ASSERT_EQ(e.loss_by_rank.size(), 2u);
    const int64_t m = l->out_features(), n = l->in_features(), max_rank = (m * n - 1) / (m + n);
    for (size_t k = 0; k < 2; ++k) {
      const Factors& f = cache->get(l->name(), k == 0 ? "svd" : "svdllm", max_rank);
      ASSERT_EQ(e.loss_by_rank[k].size(), size_t(max_rank + 1));
      for (int64_t r : {int64_t(0), int64_t(1), max_rank / 2, max_rank}) {
        at::Tensor E = l->dense_weight().to(at::kDouble);
        if (r > 0) E = E - at::matmul(f.A.narrow(1, 0, r).to(at::kDouble), f.B.narrow(0, 0, r).to(at::kDouble));
        const double direct = 0.5 * at::matmul(at::matmul(E.t(), s.out_gram), at::matmul(E, s.gram)).trace().item<double>();
        EXPECT_NEAR(e.loss_by_rank[k][size_t(r)], direct, 1e-9 * e.loss_by_rank[k][0] + 1e-15) << l->name() << " r " << r;
      }
    }
  }
}

// The kfac allocation of `keep` with `methods` (dense among them: weights may stay dense), on
// the estimated losses of the fixture's model: the env, the allocation, and each allocation's
// decoded plan with its cost and summed estimated loss (0 for a dense weight).
struct KfacCase {
  std::map<std::string, WeightErrors> errors;
  std::unique_ptr<SearchEnv> env;
  RankAllocation kfac;
  // The plan of an allocation (factoring method 1 or 0 when dense is not among the methods).
  std::pair<double, Plan> estimated(const RankAllocation& a, double& cost) {
    const Plan plan = env->decode(env->actions_of(a, env->dense_method() >= 0 ? 1 : 0));
    double loss = 0.0;
    cost = env->plan_cost(plan);
    for (const WeightInfo& w : env->weights()) {
      const WeightDecision& d = plan.weights.at(w.name);
      if (d.method != kDense) loss += errors.at(w.name).loss_by_rank[0][size_t(d.rank)];
    }
    return {loss, plan};
  }
};

KfacCase kfac_case(EnvFixture& f, std::vector<std::string> methods, double keep) {
  EnvOptions o;
  o.methods = std::move(methods);
  o.selects = {"top"};
  o.keep = keep;
  o.loss_estimates = true;
  o.step_errors = true;  // svdllm2's allocation reads the per-rank output errors
  KfacCase c;
  for (const Linear* l : f.model->net->linears())
    c.errors[l->name()] = weight_errors(*l, *f.cache, *grad_stats(*f.model).find(l->name()), o);
  c.env = std::make_unique<SearchEnv>(*f.model->net, *f.cache, c.errors, o);
  c.kfac = c.env->kfac_allocation(o.methods.size() - 1);
  return c;
}

// The kfac allocation fits the budget, leaves no step that would still fit untaken (neither a
// weight's next rank nor keeping it dense), decodes to its own ranks, and its summed estimated
// loss is below that of the uniform and the svdllm2 allocations of the same budget; where it
// keeps weights dense (keep 0.9 here) its loss is below that of the same greedy without the dense
// step (dense not among the methods), which factors those weights at their largest ranks.
TEST_F(EnvFixture, KfacAllocationFitsTheBudgetAndLowersTheEstimatedLoss) {
  for (const double keep : {0.5, 0.9}) {
    KfacCase c = kfac_case(*this, {"dense", "svdllm"}, keep);
    const SearchEnv& env = *c.env;
    double kfac_cost = 0.0, uniform_cost = 0.0, svdllm2_cost = 0.0;
    const auto [kfac_loss, kfac_plan] = c.estimated(c.kfac, kfac_cost);
    const auto [uniform_loss, uniform_plan] =
        c.estimated(RankAllocation{std::vector<double>(env.steps(), keep), {}}, uniform_cost);
    const auto [svdllm2_loss, svdllm2_plan] = c.estimated(RankAllocation{c.env->loss_allocation(1), {}}, svdllm2_cost);
    EXPECT_LE(kfac_cost, env.budget()) << keep;
    int64_t kept_dense = 0;
    for (size_t i = 0; i < env.steps(); ++i) {
      const WeightInfo& w = env.weights()[i];
      const WeightDecision& d = kfac_plan.weights.at(w.name);
      if (c.kfac.is_dense(i)) {
        EXPECT_EQ(d.method, kDense) << w.name;
        ++kept_dense;
        continue;
      }
      // The decoded plan keeps the allocation's ranks (the clip has nothing to correct).
      EXPECT_EQ(double(d.rank), std::round(c.kfac.fractions[i] * w.cost.dense / double(w.m + w.n))) << w.name;
      if (d.rank < w.max_rank) EXPECT_GT(kfac_cost + double(w.m + w.n), env.budget()) << w.name << ": a rank that fits was left";
      EXPECT_GT(kfac_cost + w.cost.dense - w.cost.factored(d.rank), env.budget()) << w.name << ": dense fits and was left";
    }
    EXPECT_LT(kfac_loss, uniform_loss) << keep;
    EXPECT_LT(kfac_loss, svdllm2_loss) << keep;
    if (keep < 0.9) continue;
    ASSERT_GT(kept_dense, 0) << "keep 0.9 keeps no weight dense: the comparison below says nothing";
    KfacCase without = kfac_case(*this, {"svdllm"}, keep);
    EXPECT_TRUE(without.kfac.dense.empty());
    double without_cost = 0.0;
    const auto [without_loss, without_plan] = without.estimated(without.kfac, without_cost);
    EXPECT_LT(kfac_loss, without_loss);
    for (size_t i = 0; i < env.steps(); ++i)
      if (c.kfac.is_dense(i))
        EXPECT_GE(without_plan.weights.at(env.weights()[i].name).rank, env.weights()[i].max_rank / 2)
            << env.weights()[i].name << ": a weight kept dense is one the greedy without dense buys high ranks of";
  }
}

// Anchored at a kfac allocation that keeps weights dense, an agent asking for `keep` everywhere
// reproduces the kfac plan, dense weights included (read_action makes a factoring action that
// does not ask for less dense there); asking for less factors the weight.
TEST_F(EnvFixture, AnchoredAtKfacFollowingTheAnchorKeepsItsDenseWeights) {
  KfacCase c = kfac_case(*this, {"dense", "svdllm"}, 0.9);
  double cost = 0.0;
  const Plan kfac_plan = c.estimated(c.kfac, cost).second;
  EnvOptions o = c.env->options();
  o.rank_action = "anchored";
  o.anchor = "kfac";
  SearchEnv env(*model->net, *cache, c.errors, o);
  env.reset();
  while (!env.done()) {
    Action a{1, o.keep, 0};
    env.read_action(a);
    env.step(a);
  }
  EXPECT_EQ(plan_to_json(env.plan()), plan_to_json(kfac_plan));
  // Asking for less at the first weight the anchor keeps dense (a shift below it) factors it.
  const size_t first = size_t(std::find(c.kfac.dense.begin(), c.kfac.dense.end(), 1) - c.kfac.dense.begin());
  ASSERT_LT(first, env.steps());
  env.reset();
  for (size_t i = 0; !env.done(); ++i) {
    Action a{1, i == first ? 0.5 : o.keep, 0};
    env.read_action(a);
    if (i == first) {
      EXPECT_EQ(a.method, 1);
      EXPECT_LT(a.rank_frac, c.kfac.fractions[i]);
    }
    env.step(a);
  }
  EXPECT_NE(env.plan().weights.at(env.weights()[first].name).method, kDense);
}

// Anchored at kfac, the state also holds what the anchor does to the weight:
// logit(anchor fraction) − logit(keep), and the log of the K-FAC loss the anchor leaves at the
// weight over the mean over weights (so Σ exp over weights is their count when nothing is
// clamped). Recomputed here from the allocation and the loss estimates; not anchored, neither.
TEST_F(EnvFixture, AnchoredStatesSeeTheAnchorAndItsEstimatedLoss) {
  EnvOptions o;
  o.methods = {"svdllm"};
  o.selects = {"top"};
  o.keep = 0.5;
  o.loss_estimates = true;
  std::map<std::string, WeightErrors> errors;
  for (const Linear* l : model->net->linears()) errors[l->name()] = weight_errors(*l, *cache, *grad_stats(*model).find(l->name()), o);
  const std::vector<std::string> plain_names = SearchEnv(*model->net, *cache, errors, o).feature_names();
  o.rank_action = "anchored";
  o.anchor = "kfac";
  SearchEnv env(*model->net, *cache, errors, o);
  const std::vector<std::string> names = env.feature_names();
  ASSERT_EQ(names.size(), plain_names.size() + 2);
  const size_t shift = size_t(std::find(names.begin(), names.end(), "anchor_shift") - names.begin());
  ASSERT_LT(shift + 1, names.size());
  EXPECT_EQ(names[shift + 1], "log_relative_anchor_loss");
  EXPECT_EQ(std::count(plain_names.begin(), plain_names.end(), "anchor_shift"), 0);

  const std::vector<double> anchor = env.kfac_allocation(0).fractions;
  const auto logit = [](double p) { return std::log(p / (1.0 - p)); };
  std::vector<double> loss;
  for (size_t i = 0; i < env.steps(); ++i) {
    const WeightInfo& w = env.weights()[i];
    loss.push_back(errors.at(w.name).loss_by_rank[0][size_t(w.rank_for(anchor[i]))]);
  }
  const double mean = std::accumulate(loss.begin(), loss.end(), 0.0) / double(loss.size());
  std::vector<float> s = env.reset();
  double sum_exp = 0.0;
  bool clamped = false;
  for (size_t i = 0; i < env.steps(); ++i) {
    ASSERT_EQ(s.size(), names.size());
    const double expected_shift = std::clamp(logit(anchor[i]) - logit(o.keep), -3.0, 3.0);
    const double expected_loss = std::log(loss[i] / mean);
    EXPECT_NEAR(s[shift], expected_shift, 1e-5) << env.weights()[i].name;
    EXPECT_NEAR(s[shift + 1], std::clamp(expected_loss, -3.0, 3.0), 1e-5) << env.weights()[i].name;
    clamped = clamped || std::abs(expected_loss) > 3.0;
    sum_exp += std::exp(double(s[shift + 1]));
    s = env.step(Action{0, o.keep, 0});
  }
  if (!clamped) EXPECT_NEAR(sum_exp, double(env.steps()), 1e-4 * double(env.steps()));
}

// The agent's default prior: the factoring method with the lowest mean output error at half the
// largest saving rank, recomputed here from relative_error (W − A·B against the Gram matrix).
TEST_F(EnvFixture, RelativeRankFractionScalesByTheKeepTheRestMustMeet) {
  EnvOptions o;
  o.keep = 0.6;
  SearchEnv env(*model->net, *cache, calib_stats(*model), o);
  const auto& ws = env.weights();
  double total = 0.0;
  for (const auto& w : ws) total += w.cost.dense;
  env.reset();
  EXPECT_NEAR(env.relative_rank_frac(0.6), 0.6, 1e-12);  // nothing spent yet: need = keep
  EXPECT_NEAR(env.relative_rank_frac(0.3), 0.3, 1e-12);
  env.step(Action{0, 1.0, 0});  // "dense" for the first weight (fits the budget)
  ASSERT_EQ(env.plan().weights.at(ws[0].name).method, "dense");
  const double need = (0.6 * total - ws[0].cost.dense) / (total - ws[0].cost.dense);
  EXPECT_NEAR(env.relative_rank_frac(0.6), need, 1e-12);
  EXPECT_NEAR(env.relative_rank_frac(0.3), 0.5 * need, 1e-12);
  EXPECT_DOUBLE_EQ(env.relative_rank_frac(5.0), 1.0);  // never above dense
}

EnvOptions dense_or_svdllm_at_keep_06() {
  EnvOptions o;
  o.keep = 0.6;
  o.methods = {"dense", "svdllm"};
  return o;
}

// SVD-LLM v2's rule (Wang et al. 2025), recomputed here from relative_error and the output
// energies: within a role, R_i = |G|·(1 − keep)·(1/log L_i) / Σ_j 1/log L_j; so each role removes
// |G|·(1 − keep) in all (before the clamp) and a larger loss removes less.
TEST_F(EnvFixture, LossAllocationFollowsTheSvdLlmV2Rule) {
  const EnvOptions o = dense_or_svdllm_at_keep_06();
  SearchEnv env(*model->net, *cache, calib_stats(*model), o);
  const std::vector<double> frac = env.loss_allocation(1);
  const auto& ws = env.weights();
  ASSERT_EQ(frac.size(), ws.size());
  std::map<std::string, std::vector<size_t>> roles;
  for (size_t i = 0; i < ws.size(); ++i) roles[ws[i].type].push_back(i);
  for (const auto& [role, idx] : roles) {
    std::vector<double> loss;
    double inv_sum = 0.0, removed = 0.0;
    for (size_t i : idx) {
      loss.push_back(env.relative_error(i, "svdllm", ws[i].rank_for(0.6)) * ws[i].output_energy);
      ASSERT_GT(loss.back(), 1.0) << ws[i].name;  // the log rule applies on this model
      inv_sum += 1.0 / std::log(loss.back());
    }
    for (size_t k = 0; k < idx.size(); ++k) {
      const double expected = 1.0 - double(idx.size()) * 0.4 / std::log(loss[k]) / inv_sum;
      EXPECT_NEAR(frac[idx[k]], std::clamp(expected, o.min_rank_frac, 1.0), 1e-12) << ws[idx[k]].name;
      removed += 1.0 - frac[idx[k]];
    }
    if (std::all_of(idx.begin(), idx.end(), [&](size_t i) { return frac[i] > o.min_rank_frac && frac[i] < 1.0; }))
      EXPECT_NEAR(removed, double(idx.size()) * 0.4, 1e-9) << role;
    const auto most = std::max_element(loss.begin(), loss.end()) - loss.begin();
    const auto least = std::min_element(loss.begin(), loss.end()) - loss.begin();
    EXPECT_GE(frac[idx[most]], frac[idx[least]]) << role;  // more loss, less removed
  }
}

// --rank-action anchored: asking for `keep` everywhere reproduces the anchor (the svdllm2-style
// plan, as decoded from its fractions); other requests shift the anchor in logit
// space; both are scaled by what is left of the budget over what the anchor would still spend.
TEST_F(EnvFixture, AnchoredRankActionAtKeepReproducesTheLossAllocationPlan) {
  EnvOptions o = dense_or_svdllm_at_keep_06();
  SearchEnv plain(*model->net, *cache, calib_stats(*model), o);
  const std::vector<double> anchor = plain.loss_allocation(1);
  std::vector<Action> actions;
  for (double f : anchor) actions.push_back(Action{1, f, 0});
  const Plan svdllm2 = plain.decode(actions);
  EXPECT_DOUBLE_EQ(plain.read_rank_action(0.3), 0.3);  // absolute: the fraction as asked
  o.rank_action = "anchored";
  SearchEnv env(*model->net, *cache, calib_stats(*model), o);
  env.reset();
  const auto& ws = env.weights();
  auto logit = [](double p) { return std::log(p / (1.0 - p)); };
  double asked = 0.0;
  for (size_t i = 0; !env.done(); ++i) {
    double anchor_rest = 0.0;
    for (size_t j = i; j < ws.size(); ++j) anchor_rest += anchor[j] * ws[j].cost.dense;
    const double scale = (env.budget() - asked) / anchor_rest;
    EXPECT_NEAR(scale, 1.0, 1e-9) << ws[i].name;  // the plan follows the anchor
    EXPECT_NEAR(env.read_rank_action(0.6), scale * anchor[i], 1e-9) << ws[i].name;
    const double up = env.read_rank_action(0.8) / scale;
    EXPECT_NEAR(logit(up) - logit(anchor[i]), logit(0.8) - logit(0.6), 1e-9) << ws[i].name;
    const double frac = env.read_rank_action(0.6);
    env.step(Action{1, frac, 0});
    asked += frac * ws[i].cost.dense;
  }
  EXPECT_EQ(plan_to_json(env.plan()), plan_to_json(svdllm2));
  // A weight asked dense is paid for by every later one: the next weight's fraction shrinks by
  // (budget − dense cost) / (anchor's spend from weight 1 on).
  env.reset();
  env.step(Action{0, 1.0, 0});
  double anchor_rest = 0.0;
  for (size_t j = 1; j < ws.size(); ++j) anchor_rest += anchor[j] * ws[j].cost.dense;
  EXPECT_NEAR(env.read_rank_action(0.6), anchor[1] * (env.budget() - ws[0].cost.dense) / anchor_rest, 1e-9);
}

TEST_F(EnvFixture, PriorMethodHasTheLowestMeanOutputError) {
  EnvOptions o;
  o.methods = {"dense", "svd", "asvd", "svdllm"};
  SearchEnv env(*model->net, *cache, calib_stats(*model), o);
  int best = -1;
  double best_mean = 1e300, svd_mean = 0.0;
  for (int m = 1; m < 4; ++m) {
    double sum = 0.0;
    for (size_t i = 0; i < env.steps(); ++i) {
      const WeightInfo& w = env.weights()[i];
      sum += env.relative_error(i, o.methods[size_t(m)], std::max<int64_t>(1, int64_t(0.5 * double(w.max_rank))));
    }
    if (m == 1) svd_mean = sum / double(env.steps());
    if (sum < best_mean) best_mean = sum, best = m;
  }
  EXPECT_EQ(env.lowest_error_method(), best);
  EXPECT_EQ(best, 3);  // svdllm minimises exactly this error (Eckart–Young in the whitened space)
  EXPECT_LT(best_mean / double(env.steps()), svd_mean);
}

// A synthetic task with a known optimum: 4 steps, reward = (number of steps choosing method 1)
// − 4·|rank_frac − 0.3| summed over steps. Both agents must find method 1 and a rank near 0.3.
double train_bandit(const std::string& kind, Action* greedy_out) {
  AgentOptions o;
  o.lr = 1e-2;
  o.init_rank = 0.6;
  o.episodes_per_update = 4;
  auto agent = make_agent(kind, 3, 3, 2, o, 11);
  std::mt19937_64 rng(5);
  for (int episode = 0; episode < 300; ++episode) {
    std::vector<StepRecord> ep;
    double total = 0.0;
    for (int t = 0; t < 4; ++t) {
      StepRecord rec;
      Action a = agent->act({float(t) / 4, 1.f, 0.5f}, rng, rec);
      total += (a.method == 1) - 4.0 * std::abs(a.rank_frac - 0.3);
      ep.push_back(rec);
    }
    ep.back().reward = total;
    agent->finish_episode(std::move(ep));
  }
  StepRecord rec;
  *greedy_out = agent->act({0.5f, 1.f, 0.5f}, rng, rec, true);
  return rec.logp;
}

TEST(Agents, PpoAndReinforceFindTheOptimumOfABandit) {
  for (const char* kind : {"ppo", "reinforce"}) {
    Action a;
    train_bandit(kind, &a);
    EXPECT_EQ(a.method, 1) << kind;
    EXPECT_NEAR(a.rank_frac, 0.3, 0.08) << kind;
  }
}

// --prior-strength s: the untrained policy draws its prior method with probability
// e^s / (e^s + M - 1) among M methods (the other logits start at ~0).
TEST(Agents, PriorStrengthSetsTheInitialMethodProbability) {
  for (const char* kind : {"ppo", "reinforce"})
    for (double strength : {1.5, 4.0}) {
      AgentOptions o;
      o.prior_method = 2;
      o.prior_strength = strength;
      auto agent = make_agent(kind, 3, 3, 2, o, 1);
      std::mt19937_64 rng(7);
      const int draws = 4000;
      int prior = 0;
      for (int i = 0; i < draws; ++i) {
        StepRecord rec;
        prior += agent->act({0.2f, 0.5f, 1.f}, rng, rec).method == 2;
      }
      const double expected = std::exp(strength) / (std::exp(strength) + 2.0);
      EXPECT_NEAR(double(prior) / draws, expected, 0.03) << kind << " strength " << strength;  // 4 sd of a binomial
    }
}

TEST(Agents, CheckpointRestoresTheExactState) {
  test::TempDir dir;
  AgentOptions o;
  o.episodes_per_update = 3;
  auto a = make_agent("ppo", 3, 3, 2, o, 1), b = make_agent("ppo", 3, 3, 2, o, 99);
  std::mt19937_64 rng(3);
  auto run_episode = [&](Agent& agent, std::mt19937_64& r) {
    std::vector<StepRecord> ep;
    for (int t = 0; t < 5; ++t) {
      StepRecord rec;
      agent.act({float(t), 0.f, 1.f}, r, rec);
      ep.push_back(rec);
    }
    ep.back().reward = ep[0].action.rank_frac;
    agent.finish_episode(std::move(ep));
  };
  for (int i = 0; i < 4; ++i) run_episode(*a, rng);  // one update plus one pending episode
  a->save(dir.file("agent.pt"));
  b->load(dir.file("agent.pt"));
  std::mt19937_64 rng_a = rng, rng_b = rng;
  for (int i = 0; i < 5; ++i) {
    run_episode(*a, rng_a);
    run_episode(*b, rng_b);
  }
  StepRecord ra, rb;
  Action x = a->act({1.f, 2.f, 3.f}, rng_a, ra), y = b->act({1.f, 2.f, 3.f}, rng_b, rb);
  EXPECT_EQ(x.method, y.method);
  EXPECT_DOUBLE_EQ(x.rank_frac, y.rank_frac);
  EXPECT_DOUBLE_EQ(ra.logp, rb.logp);
}

// --- rankrl search end to end -------------------------------------------------------------

struct SearchCli : ::testing::Test {
  void SetUp() override {
    if (!fs::exists(data_file(kBin)) || !fs::exists(data_file("tasks/arc_easy.jsonl"))) GTEST_SKIP() << "shared data missing";
    test::write_small_task_splits(dir.file("tasks"));
  }
  // The flags of a small run; `overrides` replaces values ("--keep" -> "1.5"), `extra` is appended.
  std::string args(const std::string& out, const std::string& extra = "",
                   std::map<std::string, std::string> overrides = {}) const {
    std::vector<std::pair<std::string, std::string>> flags = {
        {"--model", data_file(kBin)}, {"--calib", data_file(kVal)}, {"--calib-tokens", "1024"},
        {"--ctx", "128"}, {"--heldout-tokens", "1024"}, {"--keep", "0.6"}, {"--rkd", dir.file("tasks")},
        {"--vrkd", dir.file("tasks")}, {"--test", dir.file("tasks")}, {"--episodes", "6"},
        {"--episodes-per-update", "2"}, {"--sensitivity-grid", "1"}, {"--reward-items", "8"},
        {"--threads", "1"}, {"--seed", "3"}, {"--finalists", "1"}, {"--out", dir.file(out)}};
    std::string cmd = "search";
    for (auto& [flag, value] : flags) cmd += " " + flag + " " + (overrides.count(flag) ? overrides[flag] : value);
    for (auto& [flag, value] : overrides)
      if (std::none_of(flags.begin(), flags.end(), [&](const auto& f) { return f.first == flag; }))
        cmd += " " + flag + " " + value;
    return cmd + " " + extra;
  }
  static json read_json(const std::string& path) { return json::parse(test::read_text(path)); }
  test::TempDir dir;
};

// results.json's test differences: every approach (and dense) vs dense and vs the best uniform
// plan, each a mean difference inside its interval and equal to the difference of the two test
// means (mean of differences = difference of means); a system against itself is exactly 0 [0, 0].
void expect_test_intervals(const json& res, int items) {
  const json& boot = res["bootstrap"];
  EXPECT_EQ(boot["split"], "test");
  EXPECT_EQ(boot["resamples"], 2000);
  EXPECT_EQ(boot["seed"], res["seed"]);
  // The best uniform plan is chosen on VRkD, not test.
  std::string best;
  double best_vrkd = -1e300;
  std::map<std::string, json> test_of = {{"dense", res["dense"]["test"]}};
  for (const auto& a : res["approaches"]) {
    test_of[a["name"]] = a["test"];
    const std::string name = a["name"];
    if (name.rfind("uniform:", 0) == 0 && a["vrkd"]["margin"].get<double>() > best_vrkd)
      best = name, best_vrkd = a["vrkd"]["margin"];
  }
  EXPECT_EQ(boot["best_uniform"], best);
  std::vector<std::pair<std::string, json>> rows = {{"dense", res["dense"]}};
  for (const auto& a : res["approaches"]) rows.push_back({a["name"], a});
  for (const auto& [name, row] : rows)
    for (const auto& [vs, other] : {std::pair{"vs_dense", std::string("dense")}, {"vs_best_uniform", best}})
      for (const char* metric : {"margin", "acc"}) {
        const json& d = row[vs][metric];
        const std::string what = name + " " + vs + " " + metric;
        EXPECT_LE(d["lo"].get<double>(), d["diff"].get<double>()) << what;
        EXPECT_LE(d["diff"].get<double>(), d["hi"].get<double>()) << what;
        EXPECT_NEAR(d["diff"].get<double>(), test_of[name][metric].get<double>() - test_of[other][metric].get<double>(), 1e-9) << what;
        if (std::string(metric) == "acc")  // a difference of counts over `items`
          EXPECT_NEAR(d["diff"].get<double>() * items, std::round(d["diff"].get<double>() * items), 1e-9) << what;
        if (name == other) EXPECT_EQ(d, json({{"diff", 0.0}, {"lo", 0.0}, {"hi", 0.0}})) << what;
      }
}

TEST_F(SearchCli, WritesResultsPlanAndAModelThatEvaluatesAsReported) {
  // --heldout: a short text, so perplexity covers all of it, as `rankrl eval --text` does.
  std::string text = test::read_text(data_file(kVal)).substr(0, 2000);
  test::write_text(dir.file("heldout.txt"), text.substr(0, text.rfind(' ')));
  test::CliResult r = test::run_cli(args("run", "--json -q --promote 3 --baseline-evaluations 5 --heldout " + dir.file("heldout.txt") +
                                             " --baselines uniform,svdllm2,sensitivity,random,evolution,evolution-kl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json res = json::parse(r.out);
  EXPECT_EQ(res, read_json(dir.file("run/results.json")));
  std::set<std::string> names;
  for (const auto& a : res["approaches"]) {
    names.insert(a["name"]);
    EXPECT_NEAR(a["keep_actual"].get<double>(), 0.6, 0.006) << a["name"];
    EXPECT_LE(a["test"]["margin"].get<double>(), 0.0);
  }
  for (const char* n : {"uniform:svd", "uniform:asvd", "uniform:svdllm", "svdllm2", "sensitivity", "ppo", "random", "evolution", "evolution-kl"})
    EXPECT_TRUE(names.count(n)) << n;
  // PPO trains on the KL surrogate (6 episodes + the greedy plan) and scores its 3 best on RkD;
  // random and evolution get --baseline-evaluations, more than the agent's.
  // evolution-kl (the ablation) spends as many surrogate evaluations as PPO and promotes as many.
  for (const auto& a : res["approaches"]) {
    const bool kl_trained = a["name"] == "ppo" || a["name"] == "evolution-kl";
    if (kl_trained) EXPECT_EQ(a["evaluations"], 3) << a["name"];
    EXPECT_EQ(a["surrogate_evaluations"], kl_trained ? 7 : 0) << a["name"];
    EXPECT_GT(a["surrogate_kl"].get<double>(), 0.0) << a["name"];
    if (a["name"] == "random" || a["name"] == "evolution") EXPECT_EQ(a["evaluations"], 5) << a["name"];
  }
  // The promoted plans are the best 3 distinct training plans by surrogate (= −KL), best first.
  std::vector<double> trained, promoted;
  std::set<std::string> seen;
  std::ifstream log(dir.file("run/log.jsonl"));
  for (std::string line; std::getline(log, line);) {
    json j = json::parse(line);
    if (j["approach"] != "ppo") continue;
    if (j.contains("kl")) {
      EXPECT_DOUBLE_EQ(j["surrogate"].get<double>(), -j["kl"].get<double>());
      EXPECT_GT(j["kl"].get<double>(), 0.0);
      if (seen.insert(j["actions"].dump()).second) trained.push_back(j["surrogate"]);
    } else {
      promoted.push_back(j["surrogate"]);
    }
  }
  std::sort(trained.rbegin(), trained.rend());
  ASSERT_GE(trained.size(), 3u);
  EXPECT_EQ(promoted, std::vector<double>(trained.begin(), trained.begin() + 3));
  EXPECT_EQ(res["savings"]["surrogate"]["rkd_evaluations_avoided"], 14);
  // Savings: every training evaluation scored 8 of the 16 RkD items; arc_easy contexts are
  // shared by 4 choices, so sharing saves between 0 and 3/4 of the tokens.
  const json& sv = res["savings"];
  const int64_t n = sv["reward_subset"]["evaluations"];
  EXPECT_GT(n, 20);
  EXPECT_EQ(sv["reward_subset"]["items_scored"], 8 * n);
  EXPECT_DOUBLE_EQ(sv["reward_subset"]["saved_share"].get<double>(), 0.5);
  const double share = sv["context_sharing"]["saved_share"];
  EXPECT_GT(share, 0.2);
  EXPECT_LT(share, 0.75);
  // The written model, evaluated by `rankrl eval`, scores the test split as results.json says.
  const json* chosen = nullptr;
  for (const auto& a : res["approaches"])
    if (a["name"] == res["chosen"]) chosen = &a;
  ASSERT_NE(chosen, nullptr);
  test::CliResult e = test::run_cli("eval --model " + dir.file("run/model") + " --tasks " +
                                    dir.file("tasks/test.jsonl") + " --threads 1 --json -q");
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_NEAR(json::parse(e.out)["margin"].get<double>(), (*chosen)["test"]["margin"].get<double>(), 1e-3);
  for (const auto& [model, ppl] : {std::pair{data_file(kBin), res["dense"]["heldout_ppl"]},
                                   std::pair{dir.file("run/model"), (*chosen)["heldout_ppl"]}}) {
    test::CliResult p = test::run_cli("eval --model " + model + " --text " + dir.file("heldout.txt") +
                                      " --ctx 128 --threads 1 --json -q");
    ASSERT_EQ(p.exit_code, 0) << p.err;
    EXPECT_NEAR(json::parse(p.out)["ppl"].get<double>(), ppl.get<double>(), 1e-6 * ppl.get<double>()) << model;
  }
  // `eval --tasks` gives the same test metrics with bootstrap intervals around them.
  const json evaluated = json::parse(e.out), ci = evaluated["ci95"];
  EXPECT_EQ(ci["resamples"], 2000);
  for (const char* k : {"acc", "acc_norm", "margin"}) {
    const double v = evaluated[k];
    EXPECT_LE(ci[k]["lo"].get<double>(), v) << k;
    EXPECT_GE(ci[k]["hi"].get<double>(), v) << k;
    EXPECT_LT(ci[k]["lo"].get<double>(), ci[k]["hi"].get<double>()) << k;  // 16 items that differ
  }
  expect_test_intervals(res, 16);
  // `eval --against` the dense model, with the search's seed: the same paired differences and
  // intervals as results.json's vs_dense (the same bootstrap over the same items, another code path).
  test::CliResult paired = test::run_cli("eval --model " + dir.file("run/model") + " --tasks " + dir.file("tasks/test.jsonl") +
                                         " --against " + data_file(kBin) + " --seed 3 --threads 1 --json -q");
  ASSERT_EQ(paired.exit_code, 0) << paired.err;
  const json pj = json::parse(paired.out)["paired"];
  EXPECT_EQ(pj["against"], data_file(kBin));
  for (const char* k : {"acc", "margin"}) {
    const json& want = (*chosen)["vs_dense"][k];
    for (const auto& [got, expected] : {std::pair{"difference", "diff"}, {"lo", "lo"}, {"hi", "hi"}})
      EXPECT_NEAR(pj[k][got].get<double>(), want[expected].get<double>(), 2e-3) << k << " " << got;
  }
  test::CliResult itself = test::run_cli("eval --model " + data_file(kBin) + " --tasks " + dir.file("tasks/test.jsonl") +
                                         " --against " + data_file(kBin) + " --threads 1 --json -q");
  ASSERT_EQ(itself.exit_code, 0) << itself.err;
  EXPECT_EQ(json::parse(itself.out)["paired"]["margin"],
            json({{"difference", 0.0}, {"lo", 0.0}, {"hi", 0.0}, {"verdict", "no significant difference"}}));
  const std::string md = test::read_text(dir.file("run/report.md"));
  EXPECT_NE(md.find("## Differences (paired bootstrap 95% intervals)"), std::string::npos);
  EXPECT_NE(md.find("chosen: " + res["chosen"].get<std::string>() + " (best VRkD margin); on test, 95% paired bootstrap intervals over 16 items"), std::string::npos);
  Plan plan = read_plan(dir.file("run/plan.json"));
  Model m = stories();
  EXPECT_NO_THROW(validate_plan(plan, *m.net, "plan.json"));
  EXPECT_FALSE(fs::exists(dir.file("run/checkpoint/state.json.tmp")));
}

TEST_F(SearchCli, InterruptedRunResumesToTheSamePlanAndLog) {
  const std::string fast = "-q --baselines uniform,random,evolution --methods dense,svd,svdllm";
  test::CliResult whole = test::run_cli(args("whole", fast));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  // Killed right after the 6th checkpoint (uniform:svd, uniform:svdllm, then 4 PPO episodes), then resumed.
  test::CliResult killed = test::run_cli(args("part", fast + " --abort-after 6"));
  ASSERT_EQ(killed.exit_code, 3) << killed.err;
  EXPECT_FALSE(fs::exists(dir.file("part/results.json")));
  test::CliResult resumed = test::run_cli(args("part", fast + " --resume"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(test::read_text(dir.file("whole/plan.json")), test::read_text(dir.file("part/plan.json")));
  EXPECT_EQ(test::log_without_times(dir.file("whole/log.jsonl")), test::log_without_times(dir.file("part/log.jsonl")));
  // The test intervals are recomputed from the resumed run's plans: the same numbers.
  json w = read_json(dir.file("whole/results.json")), p = read_json(dir.file("part/results.json"));
  EXPECT_EQ(w["bootstrap"], p["bootstrap"]);
  ASSERT_EQ(w["approaches"].size(), p["approaches"].size());
  for (size_t i = 0; i < w["approaches"].size(); ++i)
    for (const char* vs : {"vs_dense", "vs_best_uniform"}) EXPECT_EQ(w["approaches"][i][vs], p["approaches"][i][vs]) << i << vs;
  // Killed after the 10th checkpoint: 6 episodes, the greedy plan, then the first promoted plan's RkD score.
  ASSERT_EQ(test::run_cli(args("promo", fast + " --abort-after 10")).exit_code, 3);
  test::CliResult again = test::run_cli(args("promo", fast + " --resume"));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(test::read_text(dir.file("whole/plan.json")), test::read_text(dir.file("promo/plan.json")));
  EXPECT_EQ(test::log_without_times(dir.file("whole/log.jsonl")), test::log_without_times(dir.file("promo/log.jsonl")));
}

// results.json through its type: from_json then to_json gives the file back byte for byte (every
// field read, no integer turned into a double or back), and a missing field names the file.
TEST_F(SearchCli, ResultsRoundTripThroughSearchResults) {
  test::CliResult r = test::run_cli(args("rt", "-q --baselines uniform,random --methods dense,svd,svdllm", {{"--episodes", "2"}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string path = dir.file("rt/results.json"), text = test::read_text(path);
  const SearchResults res = read_results(path);
  EXPECT_EQ(results_to_json(res).dump(2) + "\n", text);
  // Typed values equal the file's.
  const json j = json::parse(text);
  ASSERT_EQ(res.approaches.size(), j["approaches"].size());
  EXPECT_EQ(res.chosen, j["chosen"]);
  EXPECT_EQ(res.approaches[0].name, "uniform:svd");
  EXPECT_EQ(res.approaches[0].test.margin, j["approaches"][0]["test"]["margin"].get<double>());
  EXPECT_EQ(res.dense.heldout_ppl.value_or(-1), j["dense"]["heldout_ppl"].get<double>());
  EXPECT_EQ(res.splits.test, 16u);
  json broken = j;
  broken["approaches"][1].erase("keep_actual");
  try {
    results_from_json(broken, path);
    ADD_FAILURE() << "a results.json without keep_actual was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("keep_actual"), std::string::npos) << e.what();
  }
}

// The option table is the one list: every visible row is a --help flag (CliHelp checks the defaults), every
// key an experiment may set is an option that is not the spec's own field, and text sets the typed field.
TEST(SearchOptionTable, GeneratesHelpAndExperimentKeys) {
  test::CliResult help = test::run_cli("search --help");
  ASSERT_EQ(help.exit_code, 0) << help.err;
  for (const SearchOptionInfo& opt : search_option_table())
    EXPECT_EQ(help.out.find(std::string(opt.flag) + " ") != std::string::npos, !opt.has(kHidden)) << opt.flag;
  // Text set through the table lands in the typed field (a list split at commas).
  SearchOptions o;
  set_option_text(o, *find_search_option("--episodes-per-update"), "7");
  set_option_text(o, *find_search_option("--methods"), "dense,svd,,cur");
  set_option_text(o, *find_search_option("--gae-lambda"), "0.5");
  EXPECT_EQ(o.agent.episodes_per_update, 7);
  EXPECT_EQ(o.env.methods, (std::vector<std::string>{"dense", "svd", "cur"}));
  EXPECT_EQ(o.agent.lambda, 0.5);
  EXPECT_EQ(option_json(o, *find_search_option("--methods")), json({"dense", "svd", "cur"}));
  // The keys an experiment file may set: the options that are not the spec's own fields.
  std::set<std::string> keys;
  for (const SearchOptionInfo& opt : search_option_table())
    if (opt.has(kExperiment)) keys.insert(opt.key());
  EXPECT_EQ(keys.count("episodes-per-update"), 1u);
  for (const char* own : {"model", "calib", "keep", "seed", "episodes", "agent", "out", "rkd"}) EXPECT_EQ(keys.count(own), 0u) << own;
  EXPECT_EQ(find_search_option("--no-such-flag"), nullptr);
}

TEST_F(SearchCli, SurrogateNoneScoresEveryEpisodeOnRkd) {
  test::CliResult r = test::run_cli(args("rkd", "--json -q --surrogate none --baselines uniform,random --methods dense,svdllm"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json res = json::parse(r.out);
  // PPO: 6 episodes + the greedy plan, each one RkD evaluation; random gets as many.
  for (const auto& a : res["approaches"]) {
    EXPECT_EQ(a["surrogate_evaluations"], 0) << a["name"];
    if (a["name"] == "ppo" || a["name"] == "random") EXPECT_EQ(a["evaluations"], 7) << a["name"];
  }
  EXPECT_EQ(res["timing"]["surrogate_evaluations"], 0);
}

// The kfac baseline: one plan (one RkD evaluation) of svdllm ranks, or dense weights, within the
// budget.
TEST_F(SearchCli, KfacBaselineIsOnePlanAtTheBudget) {
  test::CliResult r = test::run_cli(args("kfac", "--json -q --baselines uniform,kfac --methods dense,svdllm --selects top",
                                         {{"--episodes", "2"}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json res = json::parse(r.out);
  int found = 0;
  for (const auto& a : res["approaches"])
    if (a["name"] == "kfac") {
      ++found;
      EXPECT_EQ(a["evaluations"], 1);
    }
  EXPECT_EQ(found, 1);
  const Plan plan = read_plan(dir.file("kfac/plans/kfac.json"));
  Model m = stories();
  double kept = 0.0, dense = 0.0;
  for (const Linear* l : m.net->linears()) {
    const WeightDecision& d = plan.weights.at(l->name());
    const double m_n = double(l->out_features() * l->in_features());
    if (d.method == kDense) {
      kept += m_n;
    } else {
      EXPECT_EQ(d.method, "svdllm") << l->name();
      kept += double(d.rank * (l->out_features() + l->in_features()));
    }
    dense += m_n;
  }
  EXPECT_LE(kept, 0.6 * dense);
  EXPECT_GT(kept, 0.59 * dense);
  // --anchor kfac beside a rank action that is not anchored is not read: no loss estimates needed.
  test::CliResult unanchored =
      test::run_cli(args("unanchored", "-q --baselines uniform --methods dense,svdllm --selects top --anchor kfac", {{"--episodes", "1"}}));
  EXPECT_EQ(unanchored.exit_code, 0) << unanchored.err;
}

// Random and evolution draw from their own seeded streams: the agents' episodes (their draws)
// do not move them. Two runs that differ only in --episodes log the same first 4 units for both.
TEST_F(SearchCli, BaselinesDrawFromTheirOwnStreams) {
  auto baseline_lines = [&](const std::string& out, const std::string& episodes) {
    test::CliResult r = test::run_cli(args(out, "-q --baselines random,evolution --baseline-evaluations 4 --methods dense,svd,svdllm",
                                           {{"--episodes", episodes}}));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> kept;
    for (const json& j : test::log_without_times(dir.file(out + "/log.jsonl")))
      if ((j["approach"] == "random" || j["approach"] == "evolution") && j["unit"].get<int64_t>() < 4) kept.push_back(j);
    return kept;
  };
  const std::vector<json> two = baseline_lines("e2", "2"), four = baseline_lines("e4", "4");
  ASSERT_EQ(two.size(), 8u);
  EXPECT_EQ(two, four);
  EXPECT_NE(two[0]["actions"], two[1]["actions"]);  // the stream moves between units
}

TEST_F(SearchCli, KillNineHalfwayThenResumeGivesTheSamePlan) {
  const std::string fast = "-q --baselines uniform,random --methods dense,svd,svdllm";
  auto start = std::chrono::steady_clock::now();
  test::CliResult whole = test::run_cli(args("whole", fast));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // SIGKILL at half the uninterrupted run's time: no chance to flush or clean up.
  char kill_after[32];
  std::snprintf(kill_after, sizeof kill_after, "%.2f", 0.5 * seconds);
  std::string cmd = std::string("timeout -s KILL ") + kill_after + " " + RANKRL_CLI + " " + args("part", fast) +
                    " >/dev/null 2>&1";
  int status = std::system(cmd.c_str());
  ASSERT_NE(WEXITSTATUS(status), 0) << "the run finished before the kill; the machine is faster than assumed";
  const bool started = fs::exists(dir.file("part/checkpoint/state.json"));
  test::CliResult resumed = test::run_cli(args("part", fast + (started ? " --resume" : " --force")));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(test::read_text(dir.file("whole/plan.json")), test::read_text(dir.file("part/plan.json")));
  EXPECT_EQ(test::log_without_times(dir.file("whole/log.jsonl")), test::log_without_times(dir.file("part/log.jsonl")));
}

TEST_F(SearchCli, BadInputIsAOneLineErrorAndWritesNoResults) {
  struct Case {
    std::map<std::string, std::string> overrides;
    std::string extra, needle;
    int code;
  };
  test::write_text(dir.file("empty.jsonl"), "");
  const std::vector<Case> cases = {
      {{{"--keep", "1.5"}}, "", "--keep must be in (0, 1)", 2},
      {{{"--agent", "dqn"}}, "", "unknown agent 'dqn'", 2},
      {{{"--keep", "0.001"}}, "", "below what factoring every weight", 2},
      {{{"--rkd", dir.file("empty.jsonl")}}, "", "empty.jsonl", 1},
      {{{"--methods", "dense,svd,bogus"}}, "", "bogus", 2},
      {{{"--surrogate", "mse"}}, "", "unknown --surrogate 'mse'", 2},
      {{{"--promote", "0"}}, "", "--promote", 2},
      {{{"--surrogate", "none"}}, "--baselines uniform,evolution-kl", "evolution-kl baseline needs --surrogate kl", 2},
      {{{"--rank-action", "sideways"}}, "", "unknown --rank-action 'sideways'", 2},
  };
  for (const Case& c : cases) {
    test::CliResult r = test::run_cli(args("bad", c.extra, c.overrides));
    EXPECT_EQ(r.exit_code, c.code) << c.extra << ": " << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.extra << ": " << r.err;
    EXPECT_NE(r.err.find("rankrl: error: "), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir.file("bad"))) << c.extra << ": a refused run must write nothing";
    fs::remove_all(dir.file("bad"));
  }
}

// An OUT that an interrupted start left (calibration killed: an empty checkpoint/, no state):
// --resume starts the run and says so, instead of refusing.
TEST_F(SearchCli, ResumeWithNothingSavedStartsTheRun) {
  fs::create_directories(dir.file("early/checkpoint"));
  test::CliResult r = test::run_cli(args("early", "--resume --baselines uniform --methods dense,svd"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("nothing to resume in " + dir.file("early") + " (no checkpoint/state.json): starting the run"),
            std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir.file("early/results.json")));
}

// While one run holds OUT/.lock, a second writer (plain, --resume or --force) is refused at once
// with one line, exit 1, and OUT is left as it was.
// results.json without what depends on time (every "...seconds...", rates, the command line).
json without_times(const json& j) {
  if (j.is_array()) {
    json out = json::array();
    for (const json& v : j) out.push_back(without_times(v));
    return out;
  }
  if (!j.is_object()) return j;
  json out = json::object();
  for (const auto& [k, v] : j.items())
    if (k.find("second") == std::string::npos && k != "command" && k != "forward_share") out[k] = without_times(v);
  return out;
}

// The setup streams the calibration layer by layer and keeps only per-weight numbers of the
// Grams: plan, results and log equal those of whole-model statistics (--whole-model-setup), with
// importance selection (component energies) and step errors (--shaping) on. The store is one file
// per layer; a second search with the same --factor-cache loads it without calibrating, and a
// truncated layer file is recomputed with a warning, to the same results.
TEST_F(SearchCli, StreamedSetupEqualsWholeModelStatistics) {
  // svdllm2 reads relative errors at the rank --keep means (WeightErrors::exact).
  const std::string fast = "-q --baselines uniform,svdllm2,random --methods dense,svd,svdllm --shaping 0.5";
  const std::map<std::string, std::string> two = {{"--episodes", "2"}};
  test::CliResult whole = test::run_cli(args("whole", fast + " --whole-model-setup", two));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  test::CliResult streamed = test::run_cli(args("streamed", fast + " --factor-cache " + dir.file("fc"), two));
  ASSERT_EQ(streamed.exit_code, 0) << streamed.err;
  auto expect_same = [&](const std::string& a, const std::string& b) {
    EXPECT_EQ(test::read_text(dir.file(a + "/plan.json")), test::read_text(dir.file(b + "/plan.json"))) << b;
    EXPECT_EQ(test::log_without_times(dir.file(a + "/log.jsonl")), test::log_without_times(dir.file(b + "/log.jsonl"))) << b;
    json ra = without_times(read_json(dir.file(a + "/results.json"))), rb = without_times(read_json(dir.file(b + "/results.json")));
    ra["savings"].erase("factor_cache"), rb["savings"].erase("factor_cache");  // factorizations_loaded_from_disk
    ra["timing"].erase("factorizations_loaded"), rb["timing"].erase("factorizations_loaded");
    EXPECT_EQ(ra, rb) << b;
  };
  expect_same("whole", "streamed");
  // The store: factors-<key>/layer-NNN.safetensors, one per decoder layer, nothing partial left.
  std::vector<std::string> stores;
  for (const auto& e : fs::directory_iterator(dir.file("fc")))
    if (e.path().filename().string().rfind("factors-", 0) == 0) stores.push_back(e.path().string());
  ASSERT_EQ(stores.size(), 1u);
  const int64_t layers = stories().config().n_layers;
  for (int64_t i = 0; i < layers; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/layer-%03lld.safetensors", static_cast<long long>(i));
    EXPECT_TRUE(fs::exists(stores[0] + name)) << name;
  }
  // Loaded by a second search: no calibration, the same results.
  test::CliResult again = test::run_cli(args("again", fast + " --factor-cache " + dir.file("fc"), two));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(read_json(dir.file("again/results.json"))["timing"]["factorizations_loaded"], layers * 7 * 2);
  expect_same("whole", "again");
  // A truncated layer file: a warning, recomputed, the same results.
  const std::string last = stores[0] + "/layer-" + std::string(layers - 1 < 10 ? "00" : "0") + std::to_string(layers - 1) + ".safetensors";
  fs::resize_file(last, fs::file_size(last) / 2);
  test::CliResult cut = test::run_cli(args("cut", fast + " --factor-cache " + dir.file("fc"), two));
  ASSERT_EQ(cut.exit_code, 0) << cut.err;
  EXPECT_NE(cut.err.find("recomputing the factorizations"), std::string::npos) << cut.err;
  EXPECT_EQ(read_json(dir.file("cut/results.json"))["timing"]["factorizations_loaded"], 0);
  expect_same("whole", "cut");
}

TEST_F(SearchCli, SecondWriterOfOutIsRefused) {
  fs::create_directories(dir.file("busy"));
  test::write_text(dir.file("busy/log.jsonl"), "{}\n");
  std::unique_ptr<FileLock> held = FileLock::try_acquire(dir.file("busy/.lock"));
  ASSERT_NE(held, nullptr);
  for (const char* extra : {"", "--resume", "--force"}) {
    test::CliResult r = test::run_cli(args("busy", extra));
    EXPECT_EQ(r.exit_code, 1) << extra << ": " << r.err;
    EXPECT_EQ(r.err, "rankrl: error: " + dir.file("busy") +
                         ": another rankrl run is writing to this directory (it holds .lock); wait for it or choose another --out\n")
        << extra;
    EXPECT_EQ(test::read_text(dir.file("busy/log.jsonl")), "{}\n") << extra;
    EXPECT_FALSE(fs::exists(dir.file("busy/checkpoint"))) << extra;
  }
  held.reset();  // released: the same lock can be taken again
  EXPECT_NE(FileLock::try_acquire(dir.file("busy/.lock")), nullptr);
}

// The checkpoint records every input by content: another --vrkd file (or flag value) is refused
// naming each difference; the same files through a symlink resume; a truncated factor store is
// recomputed (with a warning) rather than failing the resume, and the plan is the uninterrupted one.
TEST_F(SearchCli, ResumeChecksInputsByContentAndNamesTheDifferences) {
  const std::string fast = "-q --baselines uniform,random --methods dense,svd";
  test::CliResult whole = test::run_cli(args("whole", fast));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  ASSERT_EQ(test::run_cli(args("part", fast + " --abort-after 4")).exit_code, 3);
  fs::create_directories(dir.file("other"));
  for (const char* f : {"rkd.jsonl", "vrkd.jsonl", "test.jsonl"}) fs::copy_file(dir.file(std::string("tasks/") + f), dir.file(std::string("other/") + f));
  std::string vrkd = test::read_text(dir.file("other/vrkd.jsonl"));
  test::write_text(dir.file("other/vrkd.jsonl"), vrkd.substr(0, vrkd.rfind('\n', vrkd.size() - 2) + 1));  // one item fewer
  test::CliResult refused = test::run_cli(args("part", fast + " --resume", {{"--vrkd", dir.file("other")}, {"--episodes", "7"}}));
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_EQ(std::count(refused.err.begin(), refused.err.end(), '\n'), 1) << refused.err;
  EXPECT_NE(refused.err.find("--vrkd differs: " + dir.file("tasks/vrkd.jsonl") + " (sha256 "), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find(" vs " + dir.file("other/vrkd.jsonl") + " (sha256 "), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--episodes differs: 6 vs 7"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find("--rkd differs"), std::string::npos) << refused.err;
  // Same contents through a symlinked directory, and a factor store cut in half.
  fs::create_directory_symlink(dir.file("tasks"), dir.file("tasks-link"));
  std::string store;
  for (const auto& e : fs::directory_iterator(dir.file("part")))
    if (e.path().filename().string().rfind("factors-", 0) == 0) store = e.path().string();
  ASSERT_FALSE(store.empty());
  const std::string first = store + "/layer-000.safetensors";  // the store is one file per layer
  fs::resize_file(first, fs::file_size(first) / 2);
  test::CliResult resumed = test::run_cli(args("part", "--baselines uniform,random --methods dense,svd --resume",
                                               {{"--rkd", dir.file("tasks-link")}, {"--vrkd", dir.file("tasks-link")}}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("rankrl: warning: " + store), std::string::npos) << resumed.err;
  EXPECT_NE(resumed.err.find("recomputing the factorizations"), std::string::npos) << resumed.err;
  EXPECT_EQ(test::read_text(dir.file("whole/plan.json")), test::read_text(dir.file("part/plan.json")));
  EXPECT_EQ(test::log_without_times(dir.file("whole/log.jsonl")), test::log_without_times(dir.file("part/log.jsonl")));
}

// Every --help shows the defaults (CLI11's "=value" after the type).
TEST(CliHelp, ShowsDefaults) {
  test::CliResult r = test::run_cli("search --help");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* shown : {"--episodes INT=1000", "--methods TEXT=dense,svd,asvd,svdllm", "--promote INT=12",
                            "--surrogate TEXT=kl", "--heldout-tokens INT=16384", "--agent TEXT=ppo"})
    EXPECT_NE(r.out.find(shown), std::string::npos) << shown << "\n" << r.out;
  test::CliResult c = test::run_cli("compress --help");
  EXPECT_NE(c.out.find("--select TEXT=top"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("--heal-lr FLOAT=0.001"), std::string::npos) << c.out;
}

}  // namespace
}  // namespace rankrl
