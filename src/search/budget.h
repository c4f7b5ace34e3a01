// What --keep is a fraction of (search --budget params|flops|latency), as the cost of each
// decision on one weight:
// - params:  dense m·n, factored r·(m+n) (linear-weight parameters; the default, as before);
// - flops:   dense 2·m·n, factored 2·r·(m+n) multiply-add FLOPs per token of the weight's product;
// - latency: this machine's measured seconds of the Linear (dense, or its two thin products at
//            rank r) for the --latency-workload, from a LatencyTable (eval/latency.h) measured at a
//            grid of ranks, interpolated linearly between them and made non-decreasing in r.
// The budget clip (search/env.h) only needs, per weight, the cost of keeping it dense, the cost of
// a rank, and the smallest/largest rank whose cost reaches/stays within a bound.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eval/latency.h"

namespace rankrl {

class Transformer;
struct Plan;

namespace budgets {
inline constexpr const char* kParams = "params";
inline constexpr const char* kFlops = "flops";
inline constexpr const char* kLatency = "latency";
}  // namespace budgets

struct WeightCost {
  double dense = 0.0;
  double per_rank = 0.0;        // params/flops: a rank costs r·per_rank
  std::vector<double> by_rank;  // latency: [r − 1] = cost at rank r (non-decreasing)

  bool tabulated() const { return !by_rank.empty(); }
  double factored(int64_t r) const;
  // Smallest rank whose cost is at least `lo` (≤ 0 or past the table when any/none is; callers clamp).
  int64_t rank_at_least(double lo) const;
  // Largest rank whose cost is at most `hi` (0 when none).
  int64_t rank_at_most(double hi) const;
};

// The rank a rank fraction ρ means, in [1, max_rank]: params/flops ⌊ρ·m·n/(m+n)⌋ (the fraction of
// the dense parameters, as before), latency the largest rank whose time is at most ρ·dense time.
int64_t rank_for_fraction(const WeightCost& c, int64_t m, int64_t n, int64_t max_rank, double frac);
// The largest rank whose factored parameters are below the dense ones (at least 1).
int64_t largest_saving_rank(int64_t m, int64_t n);

// params or flops cost of an m×n weight (m = out, n = in).
WeightCost linear_cost(const std::string& kind, int64_t m, int64_t n);

// The ranks a latency table measures for a weight whose largest saving rank is `max_rank`:
// 1, 2, 3, 4, 6, 8, 12, 16, ... (powers of two and their 1.5×) and max_rank itself.
std::vector<int64_t> latency_grid(int64_t max_rank);

// The latency budget's measurements for one model: per weight (in dense.linears() order) its
// latency cost, the dense Linear total, and the rest of a dense forward pass (measured forward
// minus the Linears' table times), so that a plan's predicted forward time is rest + Σ costs.
struct LatencyBudget {
  std::unique_ptr<LatencyTable> table;
  std::vector<WeightCost> costs;
  double dense_linear_seconds = 0.0, rest_seconds = 0.0, dense_forward_seconds = 0.0;
  std::string cache_path;  // where the table is kept (empty with an injected table)
};

// Builds the table (loaded from `cache_dir`'s latency file when present and valid — a corrupt one
// is measured again with a warning —, or the injected `fixed_table` file) and measures what it
// lacks. Writes nothing: save_latency_table() after the output directory exists.
LatencyBudget make_latency_budget(const Transformer& dense, const Workload& w, const std::string& cache_dir,
                                  const std::string& fixed_table);
void save_latency_table(const LatencyBudget& b);

// The costs of every weight under `kind` (latency: `latency` must be given), dense.linears() order.
std::vector<WeightCost> weight_costs(const Transformer& dense, const std::string& kind, const LatencyBudget* latency);

// The smallest --keep the budget clip can meet: every weight at the rank min_rank_frac means.
double smallest_keep(const Transformer& dense, const std::vector<WeightCost>& costs, double min_rank_frac);

// Σ of a plan's weight costs (dense weights at their dense cost).
double plan_cost(const Transformer& dense, const std::vector<WeightCost>& costs, const Plan& plan);

}  // namespace rankrl
