// `rankrl experiment FILE.json`: a sweep of searches (keep × agent set × seed) described by a JSON
// file, each cell run in-process by run_search (then its report) into <out_root>/<name>/<cell>/, resumable (a cell
// with results.json is skipped, one with a checkpoint is resumed), then aggregated into
// summary.csv (one row per cell × approach) and summary.md (mean and sample standard deviation
// over seeds per keep, agent set and approach).
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace rankrl {

struct ExperimentSpec {
  std::string path;  // the spec file (relative paths inside it are relative to its directory)
  std::string name, model, tokenizer, calib, data;
  std::string heldout;  // optional perplexity text (search --heldout)
  int64_t calib_tokens = 2048, ctx = 256, episodes = 24;
  std::vector<double> keeps;
  std::vector<std::vector<std::string>> agent_sets;  // "agents": ["ppo"] or [["ppo"], ["reinforce"]]
  std::vector<uint64_t> seeds;
  std::vector<std::pair<std::string, std::string>> extra_args;  // flag (without --) → value text
};

// Parses and validates a spec; Error(path, ...) on any defect (unknown extra_args key included).
ExperimentSpec read_experiment(const std::string& path);

struct ExperimentCell {
  double keep = 0;
  std::vector<std::string> agents;
  uint64_t seed = 0;
  std::string dir;
};
std::vector<ExperimentCell> experiment_cells(const ExperimentSpec& spec, const std::string& out_root);

// Runs every cell that has no results.json yet, then aggregates. Returns summarize_experiment's
// object plus {"ran", "skipped", "resumed"}.
nlohmann::json run_experiment(const ExperimentSpec& spec, const std::string& out_root);

// Aggregation only (every cell must have results.json). Writes summary.csv / summary.md and
// returns {"name", "cells", "csv", "md", "groups": [{keep, agents, approach, n, <metric>: {mean,
// std}}]} with metrics test_margin_drop, test_acc, heldout_ppl, evaluations, seconds.
nlohmann::json summarize_experiment(const ExperimentSpec& spec, const std::string& out_root);

}  // namespace rankrl
