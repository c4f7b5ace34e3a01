// Applying a Plan: every planned projection is factored (through a FactorCache), its components
// selected, and the Linear swapped to the low-rank form.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "plan/plan.h"

namespace rankrl {

struct CalibStats;
class FactorCache;
class Linear;
class Transformer;

struct AppliedWeight {
  std::string name, method, select;
  int64_t rank = 0;        // rank used (0 = left dense)
  int64_t params_before = 0, params_after = 0;
  std::string note;        // why a weight stayed dense, if it did
};

struct ApplyReport {
  std::vector<AppliedWeight> weights;
  double decompose_seconds = 0.0;
  double seconds = 0.0;
  nlohmann::json to_json() const;
};

// Validates the plan against `net` (Error(plan_path, ...)), then replaces each weight's Linear by
// its factors at the planned rank. `net` must still be dense (the plan is relative to the dense
// weights). A weight whose factored cost r·(m+n) is ≥ m·n stays dense (noted in the report): the
// factors could not save anything. NaN/Inf in the stats → Error.
ApplyReport apply_plan(Transformer& net, const Plan& plan, const CalibStats* stats,
                       const std::string& plan_path = "plan");

// The same with a caller-owned cache whose source is a dense copy of `net` (search reuses it).
ApplyReport apply_plan(Transformer& net, const Plan& plan, FactorCache& cache, const CalibStats* stats,
                       const std::string& plan_path = "plan");

// Applies the plan's decisions to `linears` only (layer-streamed compression: one decoder layer at
// a time; the caller validated the plan). Every one must still be dense.
std::vector<AppliedWeight> apply_to(const std::vector<Linear*>& linears, const Plan& plan, FactorCache& cache,
                                    const CalibStats* stats, const std::string& plan_path = "plan");

}  // namespace rankrl
