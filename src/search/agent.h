// Agents that learn a policy over SearchEnv actions. One interface; PPO (default, ppo.cpp) and
// REINFORCE with a moving baseline (reinforce.cpp) share the policy network (policy.cpp): an MLP
// over the state with a categorical head for the method, one for the selection rule and a
// Gaussian over the logit of the rank fraction (rank_frac = sigmoid(u)), plus a value head.
//
// All sampling draws from the caller's std::mt19937_64 (never from a distribution object with
// hidden state), so saving that engine's state is enough to resume a run exactly.
#pragma once
#include <nlohmann/json.hpp>

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
  // The policy as an artifact (search --save-policy): the network's weights and `info` (JSON),
  // no optimizer or episode state. Atomic write.
  virtual void save_policy(const std::string& path, const nlohmann::json& info) const = 0;
  // The network's weights from a policy file (search --init-policy, plan --policy); the optimizer
  // starts fresh. The file must have been checked by read_policy_info.
  virtual void load_policy(const std::string& path) = 0;
  // Only these methods may be chosen (plan --methods, a subset of the policy's): the others'
  // logits are masked out. Empty = all.
  virtual void restrict_methods(std::vector<bool> allowed) = 0;
};

// What a policy file says about itself (the "policy" entry; written by search --save-policy).
struct PolicyInfo {
  std::string agent;                        // ppo | reinforce
  int hidden = 0;
  int feature_version = 0;
  std::vector<std::string> features;        // the state's entries by name (SearchEnv::feature_names)
  std::vector<std::string> methods, selects;
  std::vector<std::string> roles;           // weight roles it acted on in training
  std::string rank_action = "absolute";
  std::string anchor = "svdllm2";           // the anchored rank action's allocation (svdllm2 when absent)
  double keep_min = 0.0, keep_max = 0.0;    // the keeps it was trained at
  std::vector<nlohmann::json> trained_on;   // per training run: model path, identity, keep, episodes, seed
  int64_t episodes = 0;                     // training episodes in all
};
nlohmann::json policy_info_json(const PolicyInfo& info);
// Reads and checks a policy file's description: a missing, truncated, corrupt or foreign file
// (an agent checkpoint, another format) is an Error naming it.
PolicyInfo read_policy_info(const std::string& path);
// Checks that a policy can act in an environment with these methods, selections, rank action and
// (anchored) anchor (the same lists in the same order: the network's heads and state entries are
// laid out by them); an Error naming `path` and the difference otherwise.
void check_policy_actions(const PolicyInfo& info, const std::vector<std::string>& methods,
                          const std::vector<std::string>& selects, const std::string& rank_action,
                          const std::string& anchor, const std::string& path);
// How far --keep may lie outside the keeps a policy was trained at (plan and fine-tuning refuse beyond).
inline constexpr double kPolicyKeepTolerance = 0.05;

// kind: "ppo" | "reinforce". Network initialisation draws from torch's generator seeded by `seed`.
std::unique_ptr<Agent> make_agent(const std::string& kind, size_t state_size, size_t methods, size_t selects,
                                  const AgentOptions& options, uint64_t seed);
std::vector<std::string> known_agents();

// Engine helpers with no hidden state (see above).
double uniform01(std::mt19937_64& rng);
double standard_normal(std::mt19937_64& rng);

}  // namespace rankrl
