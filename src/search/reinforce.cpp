// REINFORCE (Williams 1992) with a moving-average baseline: every step of an episode is pushed
// along the episode's return minus the baseline; an entropy bonus keeps exploration alive. The
// simplest policy gradient, kept as the baseline agent PPO must beat.
#include <cmath>

#include "search/names.h"
#include "search/policy.h"

namespace rankrl {

namespace {

class ReinforceAgent : public PolicyAgent {
 public:
  using PolicyAgent::PolicyAgent;
  std::string name() const override { return names::kReinforce; }

 protected:
  void update(std::vector<std::vector<StepRecord>>& episodes) override {
    std::vector<StepRecord> steps;
    std::vector<float> adv;
    for (const auto& e : episodes) {
      double ret = 0.0;
      for (const StepRecord& s : e) ret += s.reward;
      if (!baseline_set_) baseline_ = ret, baseline_set_ = true;
      for (const StepRecord& s : e) {
        steps.push_back(s);
        adv.push_back(float(ret - baseline_));
      }
      baseline_ = opts_.baseline_decay * baseline_ + (1.0 - opts_.baseline_decay) * ret;
    }
    PolicyOutput out = net_->forward(states_of(steps));
    ActionTerms terms = action_terms(out, steps);
    torch::Tensor a = torch::tensor(adv);
    torch::Tensor ent = terms.entropy.mean();
    optimise(-(terms.logp * a).sum() / double(episodes.size()) - opts_.entropy * ent);
    last_ = {{"entropy", ent.item<double>()}, {"baseline", baseline_}, {"steps", int64_t(steps.size())},
             {"rank_std", std::exp(net_->log_std.item<double>())}};
  }
};

}  // namespace

std::unique_ptr<Agent> make_reinforce_agent(size_t state_size, size_t methods, size_t selects,
                                            const AgentOptions& o, uint64_t seed) {
  return std::make_unique<ReinforceAgent>(state_size, methods, selects, o, seed);
}

}  // namespace rankrl
