// bench_reward_proxy: how well cheap reward signals predict what the search is judged on. Samples
// plans at one budget (half uniformly random, as the random baseline draws them; half small
// perturbations of the uniform svdllm plan, the region a good search ends in), and for each plan
// measures the RkD margin change on a reward subset and on all of RkD, the VRkD and test margin
// change, the held-out perplexity, the calibration-text NLL change and KL(dense ‖ plan) on the
// calibration text. Prints Spearman rank correlations of every signal with the test margin change
// and with held-out perplexity, over all plans and over the perturbed (good) plans only, plus the
// cost of one evaluation of each signal.
// --candidates OUT/checkpoint/state.json instead scores the plans a search kept (every approach's
// best plans and the agents' surrogate pools) and prints one row per plan: what each signal says
// and where the plan lands on test. That is an after-the-fact analysis of the search's choice
// (could a better selector among its own candidates have won?), never an input to it.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>

#include "calib/calibrate.h"
#include "compress/factor_cache.h"
#include "compress/pipeline.h"
#include "compress/heal.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "eval/divergence.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "search/agent.h"
#include "search/approach.h"
#include "search/env.h"
#include "search/evaluator.h"

using namespace rankrl;

namespace {

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> o(v.size());
  std::iota(o.begin(), o.end(), 0);
  std::sort(o.begin(), o.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < o.size(); ++i) r[o[i]] = double(i);
  return r;
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> x = ranks(a), y = ranks(b);
  double mx = std::accumulate(x.begin(), x.end(), 0.0) / x.size(), my = std::accumulate(y.begin(), y.end(), 0.0) / y.size();
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) sxy += (x[i] - mx) * (y[i] - my), sxx += (x[i] - mx) * (x[i] - mx), syy += (y[i] - my) * (y[i] - my);
  return sxy / std::sqrt(sxx * syy);
}

struct SourcedPlan {
  std::string source;  // "<approach> top" or "<approach> pool"
  Plan plan;
};

// The plans a search checkpoint holds: every approach's top plans and the agents' surrogate pools.
std::vector<SourcedPlan> read_candidates(const std::string& path, SearchEnv& env) {
  std::ifstream in(path);
  if (!in) throw Error(path, "cannot open");
  nlohmann::json state = nlohmann::json::parse(in);
  std::vector<SourcedPlan> out;
  for (const auto& a : state.at("approaches")) {
    const std::string name = a.at("name");
    for (const auto& t : a.at("top")) out.push_back({name + " top", plan_from_json(t.at("plan"), path)});
    if (a.at("extra").contains("pool"))
      for (const auto& p : a.at("extra").at("pool"))
        out.push_back({name + " pool", env.decode(actions_from_json(p.at("actions")))});
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"correlation of cheap reward signals with test margin and held-out perplexity"};
  std::string model, calib, tasks, candidates_file;
  int64_t calib_tokens = 4096, heldout_tokens = 16384, ctx = 256, plans = 40, reward_items = 32;
  double keep = 0.6;
  uint64_t seed = 1;
  int threads = 0;
  bool heal_compensate = false;
  app.add_option("--model", model)->required();
  app.add_option("--calib", calib)->required();
  app.add_option("--tasks", tasks, "directory with rkd/vrkd/test.jsonl")->required();
  app.add_option("--calib-tokens", calib_tokens);
  app.add_option("--heldout-tokens", heldout_tokens);
  app.add_option("--ctx", ctx);
  app.add_option("--keep", keep);
  app.add_option("--plans", plans);
  app.add_option("--candidates", candidates_file, "score the plans in a search's checkpoint/state.json instead of sampling");
  app.add_option("--reward-items", reward_items);
  app.add_option("--seed", seed);
  app.add_option("--threads", threads);
  app.add_flag("--heal-compensate", heal_compensate, "first heal every plan's factors with the compensating closed form (compress/heal.h)");
  CLI11_PARSE(app, argc, argv);
  try {
    setup_threads(threads);
    set_quiet(true);
    Model m = load_model(model, "");
    StatsSource src;
    src.calib_file = calib, src.calib_tokens = calib_tokens, src.ctx = ctx;
    CalibStats stats = obtain_stats(m, src, false);
    std::vector<int32_t> ids = calibration_ids(*m.tokenizer, calib, calib_tokens + heldout_tokens);
    std::vector<int32_t> reward_text(ids.begin(), ids.begin() + calib_tokens), heldout(ids.begin() + calib_tokens, ids.end());
    FactorCache cache(*m.net, &stats);
    EnvOptions eo;
    eo.keep = keep;
    SearchEnv env(*m.net, cache, stats, eo);
    RewardOptions ro;
    ro.kind = "nll";
    PlanEvaluator ev(*m.net, cache, stats, *m.tokenizer, read_tasks(tasks + "/rkd.jsonl", "", 0),
                     read_tasks(tasks + "/vrkd.jsonl", "", 0), read_tasks(tasks + "/test.jsonl", "", 0), ro,
                     reward_text, ctx);
    // The compensating heal runs its reference through observers, so it gets a dense copy of its own.
    std::unique_ptr<Transformer> heal_dense = heal_compensate ? std::make_unique<Transformer>(m.net->config(), m.net->weights()) : nullptr;
    HealOptions heal_opts;
    heal_opts.ctx = ctx, heal_opts.compensate = true;
    DivergenceScorer div(*m.net, reward_text, ctx);
    std::mt19937_64 rng(seed);
    std::vector<size_t> subset(ev.size(Split::rkd));
    std::iota(subset.begin(), subset.end(), 0);
    std::shuffle(subset.begin(), subset.end(), rng);
    subset.resize(std::min<size_t>(subset.size(), size_t(reward_items)));
    std::sort(subset.begin(), subset.end());
    const int M = int(eo.methods.size()), S = int(eo.selects.size());
    const int svdllm = int(std::find(eo.methods.begin(), eo.methods.end(), "svdllm") - eo.methods.begin());
    RankMetrics d_sub = ev.dense_metrics(Split::rkd, subset), d_rkd = ev.dense_metrics(Split::rkd),
                d_vrkd = ev.dense_metrics(Split::vrkd), d_test = ev.dense_metrics(Split::test);
    std::vector<SourcedPlan> candidates;
    std::vector<int> perturbed;
    // (perturbed stays empty with --candidates: only the all-plans correlation is printed then.)
    if (!candidates_file.empty()) candidates = read_candidates(candidates_file, env);
    for (int64_t p = 0; candidates_file.empty() && p < plans; ++p) {
      std::vector<Action> a(env.steps(), Action{svdllm, keep, 0});
      const bool near = p % 2 == 1;
      if (near) {
        int changes = 2 + int(uniform01(rng) * 6);
        for (int c = 0; c < changes; ++c) {
          Action& x = a[size_t(uniform01(rng) * double(a.size()))];
          x.rank_frac = std::clamp(x.rank_frac * std::exp(0.4 * standard_normal(rng)), eo.min_rank_frac, 1.0);
          if (uniform01(rng) < 0.2) x.method = std::min(M - 1, int(uniform01(rng) * M));
          if (uniform01(rng) < 0.3) x.select = std::min(S - 1, int(uniform01(rng) * S));
        }
      } else {
        for (Action& x : a) {
          x.method = std::min(M - 1, int(uniform01(rng) * M));
          x.rank_frac = eo.min_rank_frac + (1 - eo.min_rank_frac) * uniform01(rng);
          x.select = std::min(S - 1, int(uniform01(rng) * S));
        }
      }
      candidates.push_back({near ? "perturbed" : "random", env.decode(a)});
      perturbed.push_back(near);
    }
    std::map<std::string, std::vector<double>> sig;
    double t_sub = 0, t_kl = 0;
    nlohmann::json rows = nlohmann::json::array();
    Progress progress("plans", int64_t(candidates.size()), "plans");
    for (const SourcedPlan& c : candidates) {
      const Plan& plan = c.plan;
      // The evaluator keeps its working model while the plan stays the same, so every signal
      // below sees the healed weights.
      if (heal_dense) heal(ev.apply(plan), *heal_dense, reward_text, heal_opts);
      auto t0 = std::chrono::steady_clock::now();
      RankMetrics sub = ev.evaluate(plan, Split::rkd, subset);
      t_sub += seconds_since(t0);
      sig["rkd_subset_margin"].push_back(sub.margin - d_sub.margin);
      sig["calib_nll"].push_back(-(sub.nll - d_sub.nll));
      sig["rkd_margin"].push_back(ev.evaluate(plan, Split::rkd).margin - d_rkd.margin);
      sig["vrkd_margin"].push_back(ev.evaluate(plan, Split::vrkd).margin - d_vrkd.margin);
      sig["test_margin"].push_back(ev.evaluate(plan, Split::test).margin - d_test.margin);
      Transformer& net = ev.apply(plan);
      t0 = std::chrono::steady_clock::now();
      sig["calib_kl"].push_back(-div.kl(net));
      t_kl += seconds_since(t0);
      sig["heldout_ppl"].push_back(-perplexity(net, heldout, ctx, 8, false).ppl);
      nlohmann::json row = {{"source", c.source}};
      for (const auto& [name, v] : sig) row[name] = v.back();
      rows.push_back(row);
      progress.advance();
    }
    progress.finish();
    const int64_t n_plans = int64_t(candidates.size());
    nlohmann::json out = {{"plans", n_plans}, {"keep", keep}, {"seed", seed}, {"reward_items", subset.size()},
                          {"seconds_per_subset_eval", t_sub / double(n_plans)}, {"seconds_per_kl_eval", t_kl / double(n_plans)}};
    if (!candidates_file.empty()) out["candidates"] = rows;
    for (int only_near = 0; only_near < (candidates_file.empty() ? 2 : 1); ++only_near) {
      auto pick = [&](const std::vector<double>& v) {
        std::vector<double> r;
        for (size_t i = 0; i < v.size(); ++i)
          if (!only_near || perturbed[i]) r.push_back(v[i]);
        return r;
      };
      nlohmann::json c;
      for (const auto& [name, v] : sig)
        c[name] = {{"vs_test_margin", spearman(pick(v), pick(sig["test_margin"]))},
                   {"vs_heldout_ppl", spearman(pick(v), pick(sig["heldout_ppl"]))}};
      out[only_near ? "spearman_perturbed_plans" : "spearman_all_plans"] = c;
    }
    std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "bench_reward_proxy: " << e.what() << "\n";
    return 1;
  }
}
