#include "search/agent.h"

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

std::vector<std::string> known_agents() { return {names::kPpo, names::kReinforce}; }

}  // namespace rankrl
