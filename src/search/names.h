// The names of the search's approaches, as --agent/--baselines take them and as results.json,
// log.jsonl, plans/<approach>.json and the report show them. The method name "dense" (no
// factoring) is plan/plan.h's kDense.
#pragma once
#include <string>
#include <vector>

namespace rankrl::names {

// Baselines (--baselines). "uniform" runs one approach per factoring method, "uniform:<method>".
inline constexpr const char* kUniform = "uniform";
inline constexpr const char* kSvdllm2 = "svdllm2";
inline constexpr const char* kKfac = "kfac";  // opt-in: needs the whole model's backward in calibration
inline constexpr const char* kSensitivity = "sensitivity";
inline constexpr const char* kRandom = "random";
inline constexpr const char* kEvolution = "evolution";
inline constexpr const char* kEvolutionKl = "evolution-kl";  // opt-in ablation: evolution on the surrogate
// Agents (--agent).
inline constexpr const char* kPpo = "ppo";
inline constexpr const char* kReinforce = "reinforce";

// Every baseline --baselines accepts, in the order they run (uniform first; then the agents run
// between sensitivity and random).
inline const std::vector<std::string>& all_baselines() {
  static const std::vector<std::string> all = {kUniform, kSvdllm2, kKfac, kSensitivity, kRandom, kEvolution, kEvolutionKl};
  return all;
}

// "uniform:<method>": the approach that factors every weight with `method`.
inline std::string uniform_approach(const std::string& method) { return std::string(kUniform) + ":" + method; }
inline bool is_uniform_approach(const std::string& name) { return name.rfind(std::string(kUniform) + ":", 0) == 0; }

}  // namespace rankrl::names
