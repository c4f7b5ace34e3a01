// Agents that learn a policy over SearchEnv actions. One interface; PPO (default, ppo.cpp) and
// REINFORCE with a moving baseline (reinforce.cpp) share the policy network (policy.cpp): an MLP
// over the state with a categorical head for the method, one for the selection rule and a
// Gaussian over the logit of the rank fraction (rank_frac = sigmoid(u)), plus a value head.
//
// All sampling draws from the caller's std::mt19937_64 (never from a distribution object with
// hidden state), so saving that engine's state is enough to resume a run exactly.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "search/env.h"

namespace rankrl {

struct StepRecord {
  std::vector<float> state;
  Action action;
  double raw_rank = 0.0;  // the Gaussian sample u with rank_frac = sigmoid(u)
  double logp = 0.0, value = 0.0;
  double reward = 0.0;    // shaping for this step, plus the terminal reward on the last step
};

struct AgentOptions {
  double lr = 5e-3;
  int hidden = 64;
  double gamma = 1.0, lambda = 0.95;   // GAE (PPO)
  double clip = 0.2;                   // PPO clipped objective
  double entropy = 0.01;               // entropy bonus
  double value_coef = 0.5;
  int epochs = 4, minibatch = 64;      // PPO passes over each batch of episodes
  int episodes_per_update = 4;
  double max_grad_norm = 0.5;
  double init_std = 0.35;              // of the rank-fraction logit
  double init_rank = 0.6;              // initial mean rank fraction (set to --keep)
  int prior_method = -1;               // method index the initial policy prefers (−1: none)
  double prior_strength = 1.5;         // its extra logit
  double baseline_decay = 0.9;         // REINFORCE moving baseline
};

class Agent {
 public:
  virtual ~Agent();
  virtual std::string name() const = 0;
  // Samples (or, greedy, takes the most likely) action for `state` and fills `record`.
  virtual Action act(const std::vector<float>& state, std::mt19937_64& rng, StepRecord& record,
                     bool greedy = false) = 0;
  // A finished episode (rewards filled in). The agent updates when it has enough episodes.
  virtual void finish_episode(std::vector<StepRecord> episode) = 0;
  // Statistics of the latest update: policy entropy, value loss, clip fraction, ...
  virtual nlohmann::json last_update() const = 0;
  // Networks, optimizer state, pending episodes and running statistics (atomic write).
  virtual void save(const std::string& path) const = 0;
  virtual void load(const std::string& path) = 0;
};

// kind: "ppo" | "reinforce". Network initialisation draws from torch's generator seeded by `seed`.
std::unique_ptr<Agent> make_agent(const std::string& kind, size_t state_size, size_t methods, size_t selects,
                                  const AgentOptions& options, uint64_t seed);
std::vector<std::string> known_agents();

// Engine helpers with no hidden state (see above).
double uniform01(std::mt19937_64& rng);
double standard_normal(std::mt19937_64& rng);

}  // namespace rankrl
