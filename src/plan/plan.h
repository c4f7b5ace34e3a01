// Plan: the central decision document (DESIGN.md). For every decomposable linear weight (by its
// checkpoint name) a method — "dense" or a decomposer spec such as "svd", "asvd:alpha=0.5" — a
// rank and a component selection rule; plus the keep budget, the seed and the identity of the
// model it was made for. Search emits plans, compress applies them, users may edit them by hand;
// everything that consumes a plan validates it first.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <string>

#include "model/config.h"

namespace rankrl {

class Transformer;

// The method of a weight kept as it is (no factoring).
inline constexpr const char* kDense = "dense";

struct WeightDecision {
  std::string method = kDense;  // kDense or a decomposer spec
  int64_t rank = 0;             // ignored for kDense
  std::string select = "top";    // "top" | "importance"
};

struct Plan {
  std::map<std::string, WeightDecision> weights;
  double keep = 1.0;             // the budget the plan was made for (fraction of linear params)
  uint64_t seed = 0;
  std::string model_identity;    // model_identity() of the model it is for
};

nlohmann::json plan_to_json(const Plan& plan);
// `path` names the source in errors (Error(path, ...)).
Plan plan_from_json(const nlohmann::json& j, const std::string& path);
Plan read_plan(const std::string& path);
void write_plan(const std::string& path, const Plan& plan);  // atomic

// Throws Error(path, ...) unless the plan is for this model (identity), names exactly the model's
// projection weights, uses known methods/selections and ranks 1 ≤ r ≤ min(m, n).
void validate_plan(const Plan& plan, const Transformer& net, const std::string& path);

// Every projection gets `method` at rank ⌊keep·m·n/(m+n)⌋ (at least 1), i.e. the rank whose
// factored cost is `keep` of the dense cost. keep outside (0, 1] → usage error.
Plan uniform_plan(const Transformer& net, double keep, const std::string& method,
                  const std::string& select = "top", uint64_t seed = 0);

}  // namespace rankrl
