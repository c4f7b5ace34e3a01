// The search environment (DESIGN.md search::Env). An episode builds one Plan by deciding the
// decomposable weights in canonical order (layer by layer; q, k, v, o, gate, up, down).
//
// Action per weight: a method (an index into EnvOptions::methods, which may include "dense"), a
// rank fraction ρ ∈ (0, 1] (the factored cost r·(m+n) as a fraction of the dense cost m·n, so
// rank r = ⌊ρ·m·n/(m+n)⌋) and a selection rule (an index into EnvOptions::selects).
//
// Budget, as in AMC (He et al. 2018): before weight i is decided, with S the cost already
// spent, B = keep·Σ dense cost the budget, and the weights after i at their cheapest (rank fraction
// min_rank_frac) or dearest (dense), weight i's cost is clipped into
//     [B − S − Σ_{j>i} dense_j,  B − S − Σ_{j>i} cheapest_j],
// raising or lowering the rank, factoring a "dense" choice with the fallback method when dense
// does not fit, or keeping a weight dense when no factored rank is expensive enough. So every
// finished plan spends between B − (m+n) of the last weight and B: within 1% of --keep.
// The cost is that of EnvOptions::budget (search/budget.h): parameters m·n vs r·(m+n) (default),
// FLOPs per token (2·m·n vs 2·r·(m+n): the same fractions) or measured Linear seconds (latency;
// then a rank fraction ρ is a fraction of the weight's dense time, and the cost of a rank is the
// table's, so "two thin products slower than one" is a cost the clip sees).
//
// State, feature version 3 (all entries roughly in [−1, 1] or [0, 1], and size-free: the same
// meaning on every model, so a saved policy transfers): relative depth layer/(L−1), position in
// the episode, a one-hot weight role over the fixed role list (policy_roles()), log(m/n), log of
// the weight's dense cost over the mean projection's, for every enabled factoring method its
// relative output error ‖(W − Ŵ_r)X‖²/‖WX‖² on the calibration data at 25/50/75% of the largest
// saving rank (the closed-form truncation curve samples), log of its output energy over the mean
// of its role's, the fraction of the budget spent, the average keep the remaining weights must
// meet, the keep, and the previous action (method one-hot, rank fraction, selection); with the
// anchored rank action also anchor_shift, logit(anchor fraction) − logit(keep) (what the anchor
// does to this weight, on the action's own scale), and, anchored at kfac,
// log_relative_anchor_loss, log of the K-FAC estimated loss the anchor leaves at this weight over
// the mean over weights (both clamped to [−3, 3]).
// (Version 2 had neither anchor entry: a policy correcting an anchor could not see it.)
// (Version 1 had the one-hot over the roles present, log m / log of the largest dimension, the
// share of its role's energy and its cost over the total: all of these change with width, depth
// or role set.)
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "plan/plan.h"
#include "search/budget.h"

namespace rankrl {

struct CalibStats;
struct LinearStats;
class FactorCache;
class Linear;
class Transformer;

// The version of the state features (state()); a saved policy records it.
inline constexpr int kFeatureVersion = 3;

// The weight roles the state's one-hot covers, from the weight-role table (io/weight_roles.h):
// q, k, v, qkv, o, gate, up, down — the same columns on every architecture.
const std::vector<std::string>& policy_roles();

struct Action {
  int method = 0;          // index into EnvOptions::methods
  double rank_frac = 0.5;  // factored cost / dense cost, in (0, 1]
  int select = 0;          // index into EnvOptions::selects
};

struct EnvOptions {
  std::vector<std::string> methods = {kDense, "svd", "asvd", "svdllm"};
  std::vector<std::string> selects = {"top", "importance"};
  double keep = 0.6;
  std::string budget = budgets::kParams;  // what keep is a fraction of: params | flops | latency
  double min_rank_frac = 0.02;  // cheapest factored choice the clip may assume
  bool step_errors = false;     // compute last_error() every step (reward shaping)
  uint64_t seed = 0;
  // How an agent's rank fraction is read (read_rank_action): one of rank_actions().
  std::string rank_action = "absolute";
  // The anchored rank action's anchor: one of anchors() (svdllm2: loss_allocation; kfac:
  // kfac_allocation, which needs loss_estimates).
  std::string anchor = "svdllm2";
  // Keep WeightErrors::loss_by_rank (the statistics must hold LinearStats::out_gram).
  bool loss_estimates = false;
};

// The anchors of the anchored rank action: svdllm2, kfac.
const std::vector<std::string>& anchors();
// True when the env's rank action is anchored at the kfac allocation (it then needs
// EnvOptions::loss_estimates); --anchor alone, with another rank action, is not read.
bool anchored_at_kfac(const EnvOptions& opts);

// The rank-action modes, in the order help texts list them: absolute, relative, anchored.
const std::vector<std::string>& rank_actions();

struct WeightInfo {
  std::string name, type;
  int64_t layer = 0, m = 0, n = 0;
  int64_t max_rank = 0;                      // largest rank with r·(m+n) < m·n
  std::vector<std::vector<double>> curve;    // [factoring method][3]: relative output error
  double output_energy = 0.0;                // ‖WX‖² over the calibration tokens
  double energy_share = 0.0;                 // ‖WX‖² / Σ over weights of the same type
  WeightCost cost;                           // in the budget's quantity (search/budget.h)
  // The rank a rank fraction means (what every plan decodes to): params/flops ⌊ρ·m·n/(m+n)⌋ in
  // [1, max_rank]; latency the largest rank whose time is at most ρ of the dense time.
  int64_t rank_for(double rank_frac) const;
};

// What the search reads from a weight's calibration Gram G = XᵀX, computed while the weight's
// statistics exist: the search's setup streams them one decoder layer at a time and drops each
// layer's Grams once these few numbers are taken (search/factor_store.h).
struct WeightErrors {
  double output_energy = 0.0;               // ‖WX‖²
  std::vector<std::vector<double>> curve;   // [factoring method][3]: relative output error
  // [factoring method][r], r = 0..max_rank: relative output error at rank r (top selection), for
  // step_errors only (empty otherwise).
  std::vector<std::vector<double>> by_rank;
  // rank → [factoring method]: relative output error multiplied out through the Gram, bit for bit
  // what an env holding the statistics computes (the ranks a baseline asks for: svdllm2's).
  std::map<int64_t, std::vector<double>> exact;
  // [factoring method][r], r = 0..max_rank: the K-FAC estimate of the calibration text's mean NLL
  // increase (nats) at rank r (top selection), ½·tr(Eᵀ·G_out·E·G_in) with E = W − Ŵ_r
  // (LinearStats::out_gram and gram); only with EnvOptions::loss_estimates.
  std::vector<std::vector<double>> loss_by_rank;
};

// The errors of `l` for every factoring method of opts.methods, from `st`'s Gram and the cache's
// factors (asked for at the rank prefetch computes, so nothing is recomputed).
// `exact_ranks`: the ranks to fill WeightErrors::exact at.
WeightErrors weight_errors(const Linear& l, FactorCache& cache, const LinearStats& st, const EnvOptions& opts,
                           const std::vector<int64_t>& exact_ranks = {});

// A closed-form allocation: per weight a rank fraction, and (kfac, when dense is among the
// methods) whether the weight stays dense instead; a dense weight's fraction is that of its
// largest saving rank, capped below 1 (the anchor's logit stays finite).
struct RankAllocation {
  std::vector<double> fractions;
  std::vector<char> dense;  // empty: none dense
  bool is_dense(size_t i) const { return i < dense.size() && dense[i] != 0; }
};

class SearchEnv {
 public:
  // `cache` must be built on `dense` (it supplies every factorization); `stats` holds the Gram
  // matrices for the features (required).
  // `costs` (dense.linears() order) is required for a latency budget (search/budget.h
  // make_latency_budget); params and flops costs are closed forms built here when it is empty.
  SearchEnv(const Transformer& dense, FactorCache& cache, const CalibStats& stats, EnvOptions opts,
            std::vector<WeightCost> costs = {});
  // The same from errors computed beforehand (weight_errors per weight name, every projection):
  // no statistics are held; relative_error() reads WeightErrors::by_rank.
  SearchEnv(const Transformer& dense, FactorCache& cache, const std::map<std::string, WeightErrors>& errors,
            EnvOptions opts, std::vector<WeightCost> costs = {});
  // The smallest --keep the params budget clip can meet on `dense` (every weight factored at the rank
  // `min_rank_frac` means): from the shapes alone, so a search can refuse it before any work.
  // Other budgets: rankrl::smallest_keep (search/budget.h).
  static double smallest_keep(const Transformer& dense, double min_rank_frac);

  size_t steps() const { return weights_.size(); }
  size_t state_size() const;
  // The state's entries by name, in order (feature version kFeatureVersion): what a saved policy
  // records, so a policy meets only states that mean what they meant in training.
  std::vector<std::string> feature_names() const;
  const std::vector<WeightInfo>& weights() const { return weights_; }
  const EnvOptions& options() const { return opts_; }
  double budget() const { return budget_; }
  double dense_params() const { return dense_params_; }  // Σ dense cost (parameters with --budget params)

  std::vector<float> reset();
  // Decides the current weight; returns the next state (empty after the last weight).
  std::vector<float> step(const Action& requested);
  bool done() const { return pos_ == weights_.size(); }
  const Plan& plan() const { return plan_; }
  // The actions as applied (after the budget clip), one per decided weight.
  const std::vector<Action>& applied() const { return applied_; }
  // Relative output error of the decision just taken (for per-step reward shaping).
  double last_error() const { return last_error_; }

  // Budget-relative rank action (opt-in, search --rank-action relative; default absolute): `frac`
  // rescaled by need/keep, where need = (budget − spent) / Σ dense cost of the weights from the
  // current one on is the average keep they must still meet. A policy asking for `keep`
  // everywhere then spreads an earlier overspend (say a weight kept dense) over all later weights
  // instead of the budget clip dumping it on the last ones (rank 1 for the last layer).
  double relative_rank_frac(double frac) const;
  // The rank fraction the env takes for an agent's `frac` at the current weight, by
  // options().rank_action: absolute → frac; relative → relative_rank_frac(frac); anchored
  // (search --rank-action anchored) → `frac` read as a shift of the weight's anchor fraction in
  // logit space, logit(anchor_i) + logit(frac) − logit(keep), times (budget − cost asked for so
  // far) / (what the anchor spends on the weights from i on), so a policy asking for `keep`
  // everywhere reproduces the anchor plan, what it learns is where to deviate from it, and a
  // deviation is paid for by all later weights. The anchor, set when the env is built, is
  // loss_allocation() (options().anchor svdllm2) or kfac_allocation() (kfac) of the lowest-error
  // method: a closed-form allocation computed the same way
  // on every model, so a transferred policy starts from a strong plan rather than from uniform
  // ranks. (Random and evolutionary search decode absolute fractions: decode() reads none.)
  double read_rank_action(double frac) const;
  // The agent's action as the env takes it: rank_frac through read_rank_action, and, anchored at an
  // allocation that keeps the current weight dense, a factoring action that does not ask for less
  // (rank_frac ≥ keep: a shift ≥ 0) made dense, so following the anchor reproduces its plan; its
  // largest rank would cost about as much and lose something. Search and plan call this.
  void read_action(Action& a) const;
  // SVD-LLM v2-style allocation (Wang et al. 2025) of `method` (an index into methods): within
  // each weight role the removed fraction R_i = |G|·(1 − keep)·(1/log L_i) / Σ_j (1/log L_j), with
  // L_i the weight's closed-form truncation loss ‖(W − Ŵ)X‖² at the rank `keep` means (larger loss
  // → less removed); a role whose losses are ≤ 1 stays at `keep`. One rank fraction per weight.
  std::vector<double> loss_allocation(int method);
  // The allocation that minimises the summed K-FAC loss estimates (WeightErrors::loss_by_rank) of
  // `method` within the budget: every weight starts at rank 1, then one step at a time goes to
  // the weight whose step lowers its estimated loss most per unit of budget cost, while it fits.
  // A step is the next rank or, when dense is among the methods, keeping the weight dense (no
  // loss, at the dense cost): near the largest saving rank the factors cost about what the dense
  // weight does and still lose something, and under a latency budget a factored pair can be
  // slower than the dense product (README "Budget"). The estimate weights each truncation's
  // output error by the loss gradient at that output (K-FAC, as EigenDamage, Wang et al. 2019,
  // prunes with it), so it sees what the output error alone cannot: which weights the loss is
  // sensitive to. Returned as the budget clip applies it in weight order (which spends what the
  // greedy leaves, less than one rank step, on an earlier weight, and may so factor a last dense
  // weight at its largest rank), so that a plan decoded from it keeps its ranks.
  RankAllocation kfac_allocation(int method);
  // A whole action sequence → plan (random and evolutionary search), with the same clip.
  Plan decode(const std::vector<Action>& actions);
  // Every weight dense (no budget clip): the start of single-weight probes.
  Plan dense_plan() const;
  // Cost of the projection weights under a plan in the budget's quantity (dense weights at their
  // dense cost; parameters with --budget params).
  double plan_cost(const Plan& plan) const;
  // Relative output error of weight i factored by `method` at `rank` (top selection).
  double relative_error(size_t i, const std::string& method, int64_t rank);
  // The factoring method (index into methods) with the lowest mean relative output error at half
  // the largest saving rank, −1 if none: the agent's default prior, because a uniform first
  // policy spends most early episodes on methods that are plainly worse (no RkD evaluation).
  int lowest_error_method() const;
  // Index of dense among the methods, −1 when it is not one.
  int dense_method() const;
  // The actions that decode to an allocation: `method` (a factoring one) at its fractions, dense
  // where it keeps a weight dense.
  std::vector<Action> actions_of(const RankAllocation& a, int method) const;

 private:
  void init(const std::map<std::string, WeightErrors>& errors, std::vector<WeightCost> costs);
  void anchor_to_loss_allocation();  // --rank-action anchored: anchor_ and anchor_after_
  void anchor_features(int method);  // anchor_shift_ and anchor_loss_
  double fraction_of_rank(size_t i, int64_t rank) const;
  // Replays an allocation (per weight a rank of `method`, or dense) through the budget clip in
  // weight order and leaves in `rank` and `dense` what it applies; returns whether it changed any.
  bool clip_allocation(int method, std::vector<int64_t>& rank, std::vector<char>& dense) const;
  // Index of methods[method] among the factoring methods (the methods without dense): how
  // WeightErrors' per-method vectors are laid out.
  size_t factoring_index(int method) const;
  std::vector<float> state() const;
  // Weight i's decision for action `a` after `spent` of the budget went to the weights before it.
  WeightDecision clip(size_t i, const Action& a, double spent, Action& applied) const;

  const Transformer& dense_;
  FactorCache& cache_;
  const CalibStats* stats_ = nullptr;  // the first constructor's: relative_error() exact from the Gram
  EnvOptions opts_;
  std::vector<WeightInfo> weights_;
  std::vector<std::vector<std::vector<double>>> by_rank_;  // per weight: WeightErrors::by_rank
  std::vector<std::map<int64_t, std::vector<double>>> exact_;  // per weight: WeightErrors::exact
  std::vector<std::vector<std::vector<double>>> loss_by_rank_;  // per weight: WeightErrors::loss_by_rank
  std::map<std::string, double> type_count_;  // weights per role
  std::vector<double> cheapest_after_, dense_after_;  // suffix sums over weights > i
  std::vector<double> anchor_;                        // per weight (anchored rank action only)
  std::vector<char> anchor_dense_;                    // per weight: the anchor keeps it dense
  std::vector<double> anchor_after_;                  // Σ_{j ≥ i} anchor cost_j (dense ones at 1)
  std::vector<double> anchor_shift_, anchor_loss_;    // per weight: the anchored states' last entries
  double budget_ = 0.0, dense_params_ = 0.0, spent_ = 0.0, last_error_ = 0.0;
  double requested_ = 0.0;  // Σ cost of the fractions asked for (before clip and floor): read by anchored
  size_t pos_ = 0;
  Plan plan_;
  std::vector<Action> applied_;
  Action previous_;
};

}  // namespace rankrl
