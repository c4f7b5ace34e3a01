// `rankrl search` as a library call: load → calibrate → factor cache → environment → baselines
// and agents (each checkpointed after every unit of work) → final choice on VRkD → test report,
// compressed model, results.
//
// OUT holds: plan.json (the chosen plan), model/ (the compressed model directory), plans/<approach>.json,
// log.jsonl (one line per evaluation: approach, unit, reward, RkD metrics, parameters, actions,
// time; agents add their update statistics), checkpoint/ (state.json + agent files, atomic,
// after every unit) and results.json (every approach × {rkd, vrkd, test} × {margin, acc,
// acc_norm}, held-out perplexity, parameters, bytes, evaluations and time; each approach's and
// dense's test margin and acc minus dense's and minus the best uniform plan's (the uniform one
// best on VRkD) with paired bootstrap 95% intervals, eval/bootstrap.h; the command, versions and
// seed). With --final-heal compensate every finalist is also scored after the compensating heal
// (compress/layer_stream.h), the choice is by the healed VRkD scores, and model/ is healed.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "compress/pipeline.h"
#include "search/agent.h"
#include "search/env.h"
#include "search/evaluator.h"
#include "search/names.h"
#include "search/results.h"

namespace rankrl {

struct SearchOptions {
  std::string model, tokenizer, out;
  StatsSource stats;              // calibration text (or a stats file)
  std::string rkd, vrkd, test;    // task files (uniform schema) or split directories
  int64_t limit = 0;              // items per split (0 = all)
  std::vector<std::string> agents = {names::kPpo};
  int64_t episodes = 1000;        // per agent (cheap with the surrogate)
  uint64_t seed = 0;
  bool resume = false, replace = false;
  EnvOptions env;
  AgentOptions agent;
  RewardOptions reward;
  double shaping = 0.0;           // per-step reward −shaping·(relative output error)
  // The method the initial policy prefers: "auto" = the factoring method with the lowest mean
  // closed-form output error over the weights (no RkD evaluation), "none", or a --methods name.
  std::string prior_method = "auto";
  // What agents train on: "kl" = the surrogate −KL(dense ‖ plan) on the first surrogate_tokens of
  // the calibration text (no RkD item; then their best `promote` plans by surrogate are scored on
  // the RkD reward), or "none" = the RkD reward every episode.
  std::string surrogate = "kl";
  int64_t surrogate_tokens = 2048;
  int64_t promote = 12;
  // RkD evaluations of random and evolutionary search: the agents' RkD evaluations, at least this.
  int64_t baseline_evaluations = 0;
  int64_t reward_items = 0;       // RkD items per training evaluation (0 = all)
  int64_t finalists = 3;          // candidates per approach re-scored on all of RkD, then VRkD
  // "compensate": every finalist is also scored after compress's --heal-compensate refit (on the
  // calibration text), the choice compares the healed scores and model/ is the healed model;
  // "none": the plans as factored.
  std::string final_heal = "none";
  std::vector<std::string> baselines = {names::kUniform, names::kSvdllm2, names::kSensitivity, names::kRandom,
                                       names::kEvolution};
  int64_t sensitivity_grid = 4;
  int64_t heldout_tokens = 16384; // perplexity tokens (at most)
  std::string heldout_file;        // perplexity text; empty = the calibration file after its calibration part
  std::string factor_cache;        // directory of the on-disk factor store (default: OUT)
  // Testing aid (--whole-model-setup, hidden): calibrate the whole model before setup, as Fisher methods do, instead
  // of streaming it layer by layer; the results are the same.
  bool whole_model_setup = false;
  // --budget latency: the workload whose Linear times the table holds (eval/latency.h), and a
  // table file to use instead of measuring (testing aid; the cache lives beside the factor store).
  std::string latency_workload = "prefill:8x256";
  std::string latency_table;
  // Policies as artifacts: the first agent's trained policy is written to save_policy (network,
  // feature definitions, methods, keep range, the model; agent.h PolicyInfo); every agent starts
  // from init_policy's network (fine-tuning) instead of a fresh one.
  std::string save_policy, init_policy;
  std::string command_line;
  // Testing aid: exit(3) right after the N-th checkpoint of this run, as if killed (0 = never).
  int64_t abort_after_checkpoints = 0;
};

// True when the search needs the K-FAC loss estimates (the kfac baseline, or --rank-action
// anchored with --anchor kfac): output-gradient statistics from a whole-model backward.
bool needs_loss_estimates(const SearchOptions& o);

// Every check of the flags alone (usage errors, exit code 2). run_search calls it first and then
// reads and checks every input file before it writes anything, so a bad run leaves no OUT.
void validate_search_options(const SearchOptions& opts);

SearchResults run_search(const SearchOptions& opts);

// "a,b,,c" → {"a", "b", "c"}: the comma-separated lists of --agent, --methods, --selects, --baselines.
std::vector<std::string> split_list(const std::string& s);

}  // namespace rankrl
