#include "search/agent.h"

#include <algorithm>

#include "core/error.h"
#include "search/names.h"

namespace rankrl {

std::unique_ptr<Agent> make_ppo_agent(size_t, size_t, size_t, const AgentOptions&, uint64_t);        // ppo.cpp
std::unique_ptr<Agent> make_reinforce_agent(size_t, size_t, size_t, const AgentOptions&, uint64_t);  // reinforce.cpp

std::unique_ptr<Agent> make_agent(const std::string& kind, size_t state_size, size_t methods, size_t selects,
                                  const AgentOptions& options, uint64_t seed) {
  if (kind == names::kPpo) return make_ppo_agent(state_size, methods, selects, options, seed);
  if (kind == names::kReinforce) return make_reinforce_agent(state_size, methods, selects, options, seed);
  throw usage_error("unknown agent '" + kind + "' (known: ppo, reinforce)");
}

namespace {
std::string listed(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& x : v) out += (out.empty() ? "" : ",") + x;
  return out;
}
}  // namespace

void check_policy_actions(const PolicyInfo& info, const std::vector<std::string>& methods,
                          const std::vector<std::string>& selects, const std::string& rank_action,
                          const std::string& anchor, const std::string& path) {
  for (const std::string& m : methods)
    check(std::find(info.methods.begin(), info.methods.end(), m) != info.methods.end(), path,
          "the policy does not know method '" + m + "' (it was trained on --methods " + listed(info.methods) + ")");
  check(methods == info.methods, path, "the policy was trained on --methods " + listed(info.methods) + ", not " + listed(methods));
  check(selects == info.selects, path, "the policy was trained on --selects " + listed(info.selects) + ", not " + listed(selects));
  check(rank_action == info.rank_action, path, "the policy was trained with --rank-action " + info.rank_action);
  check(rank_action != "anchored" || anchor == info.anchor, path, "the policy was trained with --anchor " + info.anchor);
  check(std::find(known_agents().begin(), known_agents().end(), info.agent) != known_agents().end(), path,
        "unknown agent '" + info.agent + "'");
}

std::vector<std::string> known_agents() { return {names::kPpo, names::kReinforce}; }

}  // namespace rankrl
