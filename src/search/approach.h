// What every search approach (agents and baselines) shares: the candidates it found, its
// resumable state, and the context through which it evaluates plans. An approach works in
// units (an episode, an evaluation, a weight's sensitivity row); after each unit the search
// checkpoints, so an interrupted run repeats at most the unit in flight.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "search/env.h"
#include "search/evaluator.h"

namespace rankrl {

struct Candidate {
  Plan plan;
  std::vector<Action> actions;  // as applied by the env (decode(actions) == plan)
  double reward = 0.0;          // on the reward subset of RkD
  RankMetrics rkd;              // on that subset
  int64_t unit = 0;             // which unit found it
};

// A plan a surrogate-trained approach found, kept by its surrogate reward until it is promoted to
// an RkD evaluation.
struct PoolEntry {
  double reward = 0.0;
  std::string key;              // the plan's JSON: each plan enters the pool once
  std::vector<Action> actions;  // as applied
};

struct ApproachState {
  std::string name;
  bool done = false;
  int64_t units = 0;        // finished work units
  int64_t evaluations = 0;  // plan evaluations spent (on the reward subset)
  double seconds = 0.0;
  std::vector<Candidate> top{};  // best first, at most `keep_top`
  // Approach-specific resumable state (the checkpoint's "extra" object; absent ones are not written).
  // Surrogate-trained approaches (agents, evolution-kl):
  int64_t surrogate_evaluations = 0;
  std::vector<PoolEntry> pool{};    // the best distinct plans by surrogate reward, best first
  std::optional<int64_t> promoted{};  // pool plans scored on RkD so far, once promotion has begun
  // sensitivity: per weight (one unit each), its reward drop at each grid fraction.
  std::vector<std::vector<double>> sensitivity_table{};
  // evolution: the current parent (as applied; empty before the first unit) and its reward.
  std::vector<Action> parent{};
  double parent_reward = 0.0;
  // random, evolution: their own random engine (text form; empty before their first draw).
  std::string rng_state{};

  double best_reward() const;
};

nlohmann::json to_json(const ApproachState& s);
ApproachState approach_from_json(const nlohmann::json& j);
nlohmann::json actions_to_json(const std::vector<Action>& actions);
std::vector<Action> actions_from_json(const nlohmann::json& j);

// Appends one JSON object per line to OUT/log.jsonl (flushed each time).
class RunLog {
 public:
  // Keeps the first `keep_lines` lines of an existing log (resume) and appends after them.
  RunLog(std::string path, int64_t keep_lines);
  void append(const nlohmann::json& line);
  int64_t lines() const { return lines_; }

 private:
  std::string path_;
  int64_t lines_ = 0;
};

struct SearchContext {
  SearchEnv& env;
  PlanEvaluator& evaluator;
  uint64_t seed = 0;           // the run's seed: each baseline derives its own stream from it
  std::vector<size_t> subset;  // RkD items each training evaluation scores (empty = all)
  int64_t keep_top = 3;
  int64_t budget_units = 0;    // evaluations for random and evolutionary search
  RunLog& log;
  std::function<void()> checkpoint;  // saves every approach's state and the engine
  int64_t pool_size = 16;      // plans an agent keeps by surrogate reward (promoted to RkD)
  int64_t surrogate_units = 0; // surrogate evaluations of evolution-kl (an agent's episodes + 1)

  // Evaluates `actions` (decoded through the env's budget clip) on the reward subset, keeps the
  // candidate when it is among the best, logs one line and counts the evaluation.
  double score(ApproachState& st, const std::vector<Action>& actions, nlohmann::json log_extra = {});
  // A training evaluation on the surrogate (evaluator.surrogate: −KL on the calibration text; no
  // RkD item). The plan joins st.pool (the best pool_size distinct plans by surrogate
  // reward, best first, as applied actions) when it is good enough; logs one line.
  double score_surrogate(ApproachState& st, const std::vector<Action>& actions, nlohmann::json log_extra = {});
  // The same for a plan built directly (no budget clip): sensitivity probes.
  double score_plan(ApproachState& st, const Plan& plan, const std::vector<Action>& actions,
                    nlohmann::json log_extra = {});
};

// Baselines (baselines.cpp). Each runs to completion, checkpointing after every unit, and
// continues from `st` when resumed.
void run_uniform(SearchContext& ctx, ApproachState& st, int method);
void run_svdllm2(SearchContext& ctx, ApproachState& st, int method);
// kfac: SearchEnv::kfac_allocation of `method` (ranks minimising the summed K-FAC loss estimates);
// one plan, no search.
void run_kfac(SearchContext& ctx, ApproachState& st, int method);
void run_sensitivity(SearchContext& ctx, ApproachState& st, int method, int64_t grid);
void run_random(SearchContext& ctx, ApproachState& st);
// surrogate: score on the KL surrogate for ctx.surrogate_units plans (else RkD, budget_units).
void run_evolution(SearchContext& ctx, ApproachState& st, const std::vector<Action>& start, bool surrogate = false);

}  // namespace rankrl
