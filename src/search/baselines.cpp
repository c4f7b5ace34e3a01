// Baselines that run in the same `rankrl search` command as the agents, on the same RkD items,
// budget and factor cache:
// - uniform:<method>  every weight at the rank that keeps `keep` of its parameters (1 evaluation);
// - svdllm2           SVD-LLM v2-style allocation (Wang et al. 2025; SearchEnv::loss_allocation):
//                     within each weight type, less removed from a weight with a larger
//                     truncation loss at the uniform rank; 1 evaluation;
// - kfac              (opt-in) ranks, or dense, that minimise the summed K-FAC estimates of
//                     each truncation's loss increase (SearchEnv::kfac_allocation); 1 evaluation;
// - sensitivity       ASVD-style search (Yuan et al. 2023): the reward with one weight factored
//                     at each of `grid` rank fractions and the rest dense (a sensitivity table),
//                     then a binary search for the smallest tolerated reward drop τ whose
//                     allocation (each weight at the smallest fraction with drop ≤ τ) fits the
//                     budget; weights·grid + 1 evaluations;
// - random            uniformly random methods, rank fractions and selections, clipped to the
//                     budget, as many evaluations as the agents used;
// - evolution         a (1+1) evolutionary local search from the best uniform plan: mutate one to
//                     three weights (rank fraction ×e^N(0,0.3), method or selection resampled
//                     with probability 0.2), keep the child when its reward is not worse;
// - evolution-kl      the same local search on the agents' KL surrogate, as many surrogate
//                     evaluations as an agent's episodes, then its best plans promoted to RkD as
//                     the agents' are: the ablation that says what the surrogate alone buys.
#include <cmath>
#include <functional>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "search/agent.h"
#include "search/approach.h"
#include "search/names.h"

namespace rankrl {

namespace {

std::vector<Action> uniform_actions(const SearchEnv& env, int method) {
  return std::vector<Action>(env.steps(), Action{method, env.options().keep, 0});
}

void finish(SearchContext& ctx, ApproachState& st) {
  st.done = true;
  ctx.checkpoint();
}

double elapsed_into(ApproachState& st, std::chrono::steady_clock::time_point start) {
  return st.seconds += seconds_since(start);
}

// Ends one unit of an evaluation loop: counts and times it, shows the best so far, checkpoints.
void end_unit(SearchContext& ctx, ApproachState& st, std::chrono::steady_clock::time_point start, Progress& progress) {
  st.units++;
  elapsed_into(st, start);
  progress.set_note(st.top.empty() ? std::string("best –") : "best " + std::to_string(st.best_reward()));
  progress.advance();
  ctx.checkpoint();
}

// The approach's own random stream, seeded from the run's seed and the approach's name (FNV-1a),
// so its draws do not depend on how many draws the agents took (--episodes) or on which other
// approaches ran; resumed from the state saved after its last unit.
std::mt19937_64 own_stream(const SearchContext& ctx, const ApproachState& st) {
  std::mt19937_64 rng;
  if (!st.rng_state.empty()) {
    std::istringstream(st.rng_state) >> rng;
    return rng;
  }
  uint64_t name_hash = 1469598103934665603ull;
  for (unsigned char ch : st.name) name_hash = (name_hash ^ ch) * 1099511628211ull;
  std::seed_seq seq{uint32_t(ctx.seed), uint32_t(ctx.seed >> 32), uint32_t(name_hash), uint32_t(name_hash >> 32)};
  rng.seed(seq);
  return rng;
}

void save_stream(ApproachState& st, const std::mt19937_64& rng) {
  std::ostringstream s;
  s << rng;
  st.rng_state = s.str();
}

// A uniformly random index in [0, n).
int pick(std::mt19937_64& rng, int n) { return std::min(n - 1, int(uniform01(rng) * n)); }

}  // namespace

void run_uniform(SearchContext& ctx, ApproachState& st, int method) {
  if (st.done) return;
  auto start = std::chrono::steady_clock::now();
  ctx.score(st, uniform_actions(ctx.env, method));
  st.units = 1;
  elapsed_into(st, start);
  finish(ctx, st);
}

namespace {

// One plan from a closed-form allocation of `method`'s ranks (rank fractions per weight), scored
// once: the svdllm2 and kfac baselines.
void run_allocation(SearchContext& ctx, ApproachState& st, int method, const std::function<RankAllocation()>& allocate) {
  if (st.done) return;
  auto start = std::chrono::steady_clock::now();
  ctx.score(st, ctx.env.actions_of(allocate(), method));
  st.units = 1;
  elapsed_into(st, start);
  finish(ctx, st);
}

}  // namespace

void run_svdllm2(SearchContext& ctx, ApproachState& st, int method) {
  run_allocation(ctx, st, method, [&] { return RankAllocation{ctx.env.loss_allocation(method), {}}; });
}

void run_kfac(SearchContext& ctx, ApproachState& st, int method) {
  run_allocation(ctx, st, method, [&] { return ctx.env.kfac_allocation(method); });
}

void run_sensitivity(SearchContext& ctx, ApproachState& st, int method, int64_t grid) {
  if (st.done) return;
  SearchEnv& env = ctx.env;
  const size_t N = env.steps();
  const int dense = env.dense_method();
  check(dense >= 0, "", "the sensitivity baseline needs 'dense' among --methods");
  Progress progress(names::kSensitivity, int64_t(N), "weights");
  progress.advance(st.units);
  // One unit = one weight's row of the table: its reward drop at each grid fraction.
  while (st.units < int64_t(N)) {
    auto start = std::chrono::steady_clock::now();
    std::vector<double> drops;
    for (int64_t g = 0; g < grid; ++g) {
      // One weight factored, every other dense: built directly, since the budget clip would
      // factor the rest. Probes say nothing about a full plan: logged, kept out of `top`.
      std::vector<Action> actions(N, Action{dense, 1.0, 0});
      actions[st.units] = Action{method, double(g + 1) / double(grid + 1), 0};
      Plan plan = env.dense_plan();
      const WeightInfo& w = env.weights()[st.units];
      plan.weights[w.name] = {env.options().methods[method], w.rank_for(actions[st.units].rank_frac), "top"};
      ApproachState probe{st.name};
      drops.push_back(-ctx.score_plan(probe, plan, actions, {{"probe_weight", st.units}}));
      st.evaluations++;
    }
    st.sensitivity_table.push_back(drops);
    st.units++;
    elapsed_into(st, start);
    progress.advance();
    ctx.checkpoint();
  }
  progress.finish();
  // Threshold search: allocation(τ) gives each weight the smallest grid fraction whose drop ≤ τ.
  auto start = std::chrono::steady_clock::now();
  const std::vector<std::vector<double>>& table = st.sensitivity_table;
  auto allocation = [&](double tau) {
    std::vector<Action> a(N, Action{method, 1.0, 0});
    for (size_t i = 0; i < N; ++i)
      for (int64_t g = 0; g < grid; ++g)
        if (table[i][size_t(g)] <= tau) {
          a[i].rank_frac = double(g + 1) / double(grid + 1);
          break;
        }
    return a;
  };
  auto cost = [&](const std::vector<Action>& a) {
    double c = 0.0;
    for (size_t i = 0; i < N; ++i) c += a[i].rank_frac * env.weights()[i].cost.dense;
    return c;
  };
  double lo = 1e300, hi = -1e300;
  for (const auto& row : table)
    for (double d : row) hi = std::max(hi, d), lo = std::min(lo, d);
  lo -= 1.0;
  hi += 1.0;
  for (int it = 0; it < 100; ++it) {
    double mid = 0.5 * (lo + hi);
    (cost(allocation(mid)) <= env.budget() ? hi : lo) = mid;
  }
  ctx.score(st, allocation(hi), {{"threshold", hi}});
  elapsed_into(st, start);
  finish(ctx, st);
}

void run_random(SearchContext& ctx, ApproachState& st) {
  if (st.done) return;
  SearchEnv& env = ctx.env;
  const int M = int(env.options().methods.size()), S = int(env.options().selects.size());
  Progress progress(names::kRandom, ctx.budget_units, "plans");
  progress.advance(st.units);
  std::mt19937_64 rng = own_stream(ctx, st);
  while (st.units < ctx.budget_units) {
    auto start = std::chrono::steady_clock::now();
    std::vector<Action> actions(env.steps());
    for (Action& a : actions) {
      a.method = pick(rng, M);
      a.rank_frac = env.options().min_rank_frac + (1.0 - env.options().min_rank_frac) * uniform01(rng);
      a.select = pick(rng, S);
    }
    ctx.score(st, actions);
    save_stream(st, rng);
    end_unit(ctx, st, start, progress);
  }
  progress.finish();
  finish(ctx, st);
}

void run_evolution(SearchContext& ctx, ApproachState& st, const std::vector<Action>& start_actions, bool surrogate) {
  auto score = [&](const std::vector<Action>& a) { return surrogate ? ctx.score_surrogate(st, a) : ctx.score(st, a); };
  if (st.done) return;
  SearchEnv& env = ctx.env;
  const int M = int(env.options().methods.size()), S = int(env.options().selects.size());
  if (st.parent.empty()) {
    auto start = std::chrono::steady_clock::now();
    st.parent_reward = score(start_actions);
    st.parent = env.applied();
    st.units = 1;
    elapsed_into(st, start);
    ctx.checkpoint();
  }
  const int64_t units = surrogate ? ctx.surrogate_units : ctx.budget_units;
  Progress progress(st.name, units, "plans");
  progress.advance(st.units);
  std::mt19937_64 rng = own_stream(ctx, st);
  while (st.units < units) {
    auto start = std::chrono::steady_clock::now();
    std::vector<Action> child = st.parent;
    const int changes = 1 + pick(rng, 3);
    for (int c = 0; c < changes; ++c) {
      Action& a = child[pick(rng, int(child.size()))];
      a.rank_frac = std::clamp(a.rank_frac * std::exp(0.3 * standard_normal(rng)), env.options().min_rank_frac, 1.0);
      if (uniform01(rng) < 0.2) a.method = pick(rng, M);
      if (uniform01(rng) < 0.2) a.select = pick(rng, S);
    }
    double r = score(child);
    if (r >= st.parent_reward) {
      st.parent_reward = r;
      st.parent = env.applied();
    }
    save_stream(st, rng);
    end_unit(ctx, st, start, progress);
  }
  progress.finish();
  finish(ctx, st);
}

}  // namespace rankrl
