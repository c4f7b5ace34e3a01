// The policy network and the machinery PPO and REINFORCE share (internal to search/; includes
// libtorch). PolicyAgent implements acting, the episode buffer, running reward statistics and
// checkpointing; subclasses implement update() on a batch of finished episodes.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "search/agent.h"

namespace rankrl {

struct PolicyOutput {
  torch::Tensor method_logits, select_logits, rank_mean, log_std, value;  // [N, ·]
};

struct PolicyNetImpl : torch::nn::Module {
  PolicyNetImpl(int64_t state_size, int64_t hidden, int64_t methods, int64_t selects, const AgentOptions& o);
  PolicyOutput forward(const torch::Tensor& states);

  torch::nn::Sequential body{nullptr}, critic{nullptr};
  torch::nn::Linear method_head{nullptr}, select_head{nullptr}, rank_head{nullptr};
  torch::Tensor log_std;
};
TORCH_MODULE(PolicyNet);

// Log-probability and entropy of recorded actions under the current policy: [N] each.
struct ActionTerms {
  torch::Tensor logp, entropy;
};
ActionTerms action_terms(const PolicyOutput& out, const std::vector<StepRecord>& steps);

// Running mean and variance (Welford) of terminal rewards, to normalise their scale.
struct RunningStats {
  double count = 0.0, mean = 0.0, m2 = 0.0;
  void add(double x);
  double stddev() const;
};

class PolicyAgent : public Agent {
 public:
  PolicyAgent(size_t state_size, size_t methods, size_t selects, const AgentOptions& o, uint64_t seed);
  Action act(const std::vector<float>& state, std::mt19937_64& rng, StepRecord& record, bool greedy) override;
  void finish_episode(std::vector<StepRecord> episode) override;
  nlohmann::json last_update() const override { return last_; }
  void save(const std::string& path) const override;
  void load(const std::string& path) override;
  void save_policy(const std::string& path, const nlohmann::json& info) const override;
  void load_policy(const std::string& path) override;
  void restrict_methods(std::vector<bool> allowed) override { method_mask_ = std::move(allowed); }

 protected:
  virtual void update(std::vector<std::vector<StepRecord>>& episodes) = 0;
  // Clips the gradient norm and takes one optimizer step on `loss`.
  void optimise(const torch::Tensor& loss);
  torch::Tensor states_of(const std::vector<StepRecord>& steps) const;
  // Terminal rewards centred and scaled by the running statistics: the scale and the level of
  // rewards vary by data and model (a surrogate KL of 0.06 is −12 in units of its spread), and an
  // uncentred return leaves the critic, which starts near 0 — or, fine-tuning, at another
  // model's returns — tens of episodes of wrong advantages before it catches up. Centred, returns
  // are O(1) on every model, so a transferred critic is roughly right from the first update.
  void normalise_rewards(std::vector<std::vector<StepRecord>>& episodes);

  AgentOptions opts_;
  PolicyNet net_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  std::vector<std::vector<StepRecord>> pending_;
  RunningStats reward_stats_;
  uint64_t seed_ = 0;
  int64_t updates_ = 0;    // updates so far; with seed_ it seeds each update's shuffling
  double baseline_ = 0.0;  // REINFORCE's moving baseline (saved with the agent)
  bool baseline_set_ = false;
  nlohmann::json last_ = nlohmann::json::object();
  std::vector<bool> method_mask_;  // restrict_methods (not saved: a property of the caller)
};

}  // namespace rankrl
