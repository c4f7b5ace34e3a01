#include "search/agent.h"

#include "core/error.h"

namespace rankrl {

std::unique_ptr<Agent> make_ppo_agent(size_t, size_t, size_t, const AgentOptions&, uint64_t);        // ppo.cpp
std::unique_ptr<Agent> make_reinforce_agent(size_t, size_t, size_t, const AgentOptions&, uint64_t);  // reinforce.cpp

std::unique_ptr<Agent> make_agent(const std::string& kind, size_t state_size, size_t methods, size_t selects,
                                  const AgentOptions& options, uint64_t seed) {
  if (kind == "ppo") return make_ppo_agent(state_size, methods, selects, options, seed);
  if (kind == "reinforce") return make_reinforce_agent(state_size, methods, selects, options, seed);
  throw usage_error("unknown agent '" + kind + "' (known: ppo, reinforce)");
}

std::vector<std::string> known_agents() { return {"ppo", "reinforce"}; }

}  // namespace rankrl
