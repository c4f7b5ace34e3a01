// PPO (Schulman et al. 2017): actor-critic with generalised advantage estimation (GAE, Schulman
// et al. 2016), the clipped surrogate objective, an entropy bonus and several minibatch epochs
// over each batch of episodes. An episode is one plan; its reward arrives at the last step
// (plus optional per-step shaping), so γ = 1 by default and the critic learns the expected
// outcome from each partial plan.
#include <algorithm>
#include <numeric>

#include "search/names.h"
#include "search/policy.h"

namespace rankrl {

namespace {

class PpoAgent : public PolicyAgent {
 public:
  using PolicyAgent::PolicyAgent;
  std::string name() const override { return names::kPpo; }

 protected:
  void update(std::vector<std::vector<StepRecord>>& episodes) override {
    std::vector<StepRecord> steps;
    std::vector<float> adv, ret;
    for (const auto& e : episodes) {
      std::vector<float> a(e.size());
      double gae = 0.0;
      for (size_t t = e.size(); t-- > 0;) {
        double next = t + 1 < e.size() ? e[t + 1].value : 0.0;
        double delta = e[t].reward + opts_.gamma * next - e[t].value;
        gae = delta + opts_.gamma * opts_.lambda * gae;
        a[t] = float(gae);
      }
      for (size_t t = 0; t < e.size(); ++t) {
        steps.push_back(e[t]);
        adv.push_back(a[t]);
        ret.push_back(float(a[t] + e[t].value));
      }
    }
    const int64_t N = steps.size();
    torch::Tensor advantages = torch::tensor(adv), returns = torch::tensor(ret);
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8);
    torch::Tensor old_logp = torch::empty({N}, torch::kFloat);
    for (int64_t i = 0; i < N; ++i) old_logp[i] = float(steps[i].logp);
    std::mt19937_64 shuffle(seed_ * 0x9E3779B97F4A7C15ULL + uint64_t(updates_));
    std::vector<int64_t> order(N);
    double clipped = 0.0, entropy = 0.0, value_loss = 0.0, kl = 0.0;
    int64_t batches = 0;
    for (int epoch = 0; epoch < opts_.epochs; ++epoch) {
      std::iota(order.begin(), order.end(), 0);
      for (int64_t i = N - 1; i > 0; --i) std::swap(order[i], order[int64_t(uniform01(shuffle) * double(i + 1))]);
      for (int64_t b = 0; b < N; b += opts_.minibatch) {
        std::vector<int64_t> idx(order.begin() + b, order.begin() + std::min(N, b + opts_.minibatch));
        std::vector<StepRecord> mb;
        for (int64_t i : idx) mb.push_back(steps[i]);
        torch::Tensor index = torch::tensor(idx);
        PolicyOutput out = net_->forward(states_of(mb));
        ActionTerms terms = action_terms(out, mb);
        torch::Tensor ratio = (terms.logp - old_logp.index_select(0, index)).exp();
        torch::Tensor a = advantages.index_select(0, index);
        torch::Tensor policy_loss = -torch::min(ratio * a, ratio.clamp(1 - opts_.clip, 1 + opts_.clip) * a).mean();
        torch::Tensor v_loss = (out.value - returns.index_select(0, index)).pow(2).mean();
        torch::Tensor ent = terms.entropy.mean();
        optimise(policy_loss + opts_.value_coef * v_loss - opts_.entropy * ent);
        torch::NoGradGuard no_grad;
        clipped += ((ratio - 1).abs() > opts_.clip).to(torch::kFloat).mean().item<double>();
        kl += (old_logp.index_select(0, index) - terms.logp).mean().item<double>();
        entropy += ent.item<double>();
        value_loss += v_loss.item<double>();
        ++batches;
      }
    }
    last_ = {{"entropy", entropy / batches}, {"value_loss", value_loss / batches},
             {"clip_fraction", clipped / batches}, {"approx_kl", kl / batches}, {"steps", N},
             {"rank_std", std::exp(net_->log_std.item<double>())}};
  }
};

}  // namespace

std::unique_ptr<Agent> make_ppo_agent(size_t state_size, size_t methods, size_t selects, const AgentOptions& o,
                                      uint64_t seed) {
  return std::make_unique<PpoAgent>(state_size, methods, selects, o, seed);
}

}  // namespace rankrl
