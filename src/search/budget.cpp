#include "search/budget.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/dist.h"
#include "core/error.h"
#include "core/log.h"
#include "model/transformer.h"
#include "plan/plan.h"

namespace rankrl {

double WeightCost::factored(int64_t r) const {
  if (!tabulated()) return double(r) * per_rank;  // exact: integers below 2^53
  return by_rank[size_t(std::clamp<int64_t>(r, 1, int64_t(by_rank.size())) - 1)];
}

int64_t WeightCost::rank_at_least(double lo) const {
  if (!tabulated()) return int64_t(std::ceil(lo / per_rank));
  return int64_t(std::lower_bound(by_rank.begin(), by_rank.end(), lo) - by_rank.begin()) + 1;
}

int64_t WeightCost::rank_at_most(double hi) const {
  if (!tabulated()) return int64_t(std::floor(hi / per_rank));
  return int64_t(std::upper_bound(by_rank.begin(), by_rank.end(), hi) - by_rank.begin());
}

int64_t largest_saving_rank(int64_t m, int64_t n) { return std::max<int64_t>(1, (m * n - 1) / (m + n)); }

int64_t rank_for_fraction(const WeightCost& c, int64_t m, int64_t n, int64_t max_rank, double frac) {
  if (!c.tabulated()) {
    double r = std::floor(frac * (double(m) * double(n)) / double(m + n) + 1e-9);
    return std::clamp<int64_t>(int64_t(r), 1, max_rank);
  }
  return std::clamp<int64_t>(c.rank_at_most(frac * c.dense), 1, max_rank);
}

WeightCost linear_cost(const std::string& kind, int64_t m, int64_t n) {
  check(kind == budgets::kParams || kind == budgets::kFlops, "", "no closed-form cost for budget '" + kind + "'");
  const double scale = kind == budgets::kFlops ? 2.0 : 1.0;  // a multiply-add is 2 FLOPs
  return WeightCost{scale * (double(m) * double(n)), scale * double(m + n), {}};
}

std::vector<int64_t> latency_grid(int64_t max_rank) {
  std::vector<int64_t> g;
  for (int64_t p = 1; p <= max_rank; p *= 2) {
    g.push_back(p);
    if (p >= 2 && p + p / 2 <= max_rank) g.push_back(p + p / 2);
  }
  g.push_back(max_rank);
  std::sort(g.begin(), g.end());
  g.erase(std::unique(g.begin(), g.end()), g.end());
  return g;
}

namespace {

// Latency cost of one weight: the table at the grid ranks, linear in between, non-decreasing.
WeightCost latency_cost(LatencyTable& table, int64_t m, int64_t n) {
  const int64_t max_rank = largest_saving_rank(m, n);
  WeightCost c;
  c.dense = table.seconds({n, m, 0});
  const std::vector<int64_t> grid = latency_grid(max_rank);
  std::vector<double> at;
  for (int64_t r : grid) at.push_back(table.seconds({n, m, r}));
  c.by_rank.resize(size_t(max_rank));
  size_t k = 0;
  for (int64_t r = 1; r <= max_rank; ++r) {
    while (k + 1 < grid.size() && grid[k + 1] < r) ++k;
    const size_t hi = std::min(k + 1, grid.size() - 1);
    const double t = grid[hi] == grid[k] ? 0.0 : double(r - grid[k]) / double(grid[hi] - grid[k]);
    c.by_rank[size_t(r - 1)] = r <= grid[k] ? at[k] : at[k] + t * (at[hi] - at[k]);
  }
  // Timing noise can make a larger rank look faster; a cost must not fall as the rank grows.
  for (size_t r = 1; r < c.by_rank.size(); ++r) c.by_rank[r] = std::max(c.by_rank[r], c.by_rank[r - 1]);
  return c;
}

}  // namespace

namespace {

LatencyBudget measure_latency_budget(const Transformer& dense, const Workload& w, const std::string& cache_dir,
                                     const std::string& fixed_table) {
  LatencyBudget b;
  const std::string dtype = weight_dtype_name(dense);
  b.table = std::make_unique<LatencyTable>(machine_identity(), at::get_num_threads(), w, dtype);
  const std::string model = model_identity(dense.config());
  if (!fixed_table.empty()) {
    b.table->load_fixed(fixed_table);
    check(b.table->rest_seconds(model) != nullptr, fixed_table,
          "the latency table lacks rest_seconds for this model (" + model + ")");
  } else {
    b.cache_path = cache_dir + "/" + b.table->file_name();
    try {
      if (int64_t n = b.table->load(b.cache_path); n > 0) info("latency table: " + std::to_string(n) + " Linear times from " + b.cache_path);
    } catch (const Error& e) {  // only lost time: measure again
      warn(std::string(e.what()) + "; measuring the Linear times again");
      b.table = std::make_unique<LatencyTable>(machine_identity(), at::get_num_threads(), w, dtype);
    }
    measure_in_forward(*b.table, dense, model,
                       [](int64_t in, int64_t out) { return latency_grid(largest_saving_rank(out, in)); });
  }
  b.costs = weight_costs(dense, budgets::kLatency, &b);
  for (const WeightCost& c : b.costs) b.dense_linear_seconds += c.dense;
  b.rest_seconds = *b.table->rest_seconds(model);
  b.dense_forward_seconds = b.rest_seconds + b.dense_linear_seconds;
  return b;
}

}  // namespace

LatencyBudget make_latency_budget(const Transformer& dense, const Workload& w, const std::string& cache_dir,
                                  const std::string& fixed_table) {
  if (!dist::active()) return measure_latency_budget(dense, w, cache_dir, fixed_table);
  // Under MPI rank 0 alone measures (one clock, one table) and every rank gets its numbers, so all
  // ranks clip plans by the same costs.
  LatencyBudget b;
  std::string bytes;
  if (dist::is_root()) {
    b = measure_latency_budget(dense, w, cache_dir, fixed_table);
    nlohmann::json j = {{"rest", b.rest_seconds}, {"linear", b.dense_linear_seconds}, {"costs", nlohmann::json::array()}};
    for (const WeightCost& c : b.costs) j["costs"].push_back({c.dense, c.by_rank});
    bytes = j.dump();
  }
  dist::broadcast(bytes);
  if (dist::is_root()) return b;
  const nlohmann::json j = nlohmann::json::parse(bytes);
  b.rest_seconds = j["rest"];
  b.dense_linear_seconds = j["linear"];
  for (const auto& c : j["costs"]) b.costs.push_back(WeightCost{c[0].get<double>(), 0.0, c[1].get<std::vector<double>>()});
  b.dense_forward_seconds = b.rest_seconds + b.dense_linear_seconds;
  return b;
}

void save_latency_table(const LatencyBudget& b) {
  if (b.cache_path.empty() || !b.table || !dist::is_root()) return;
  std::filesystem::create_directories(std::filesystem::path(b.cache_path).parent_path());
  b.table->save(b.cache_path);
}

std::vector<WeightCost> weight_costs(const Transformer& dense, const std::string& kind, const LatencyBudget* latency) {
  std::vector<WeightCost> costs;
  for (const Linear* l : dense.linears()) {
    const int64_t m = l->out_features(), n = l->in_features();
    if (kind == budgets::kLatency) {
      check(latency != nullptr && latency->table, "", "a latency budget needs a latency table");
      costs.push_back(latency_cost(*latency->table, m, n));
    } else {
      costs.push_back(linear_cost(kind, m, n));
    }
  }
  return costs;
}

double smallest_keep(const Transformer& dense, const std::vector<WeightCost>& costs, double min_rank_frac) {
  double cheapest = 0.0, total = 0.0;
  const std::vector<const Linear*> linears = dense.linears();
  for (size_t i = 0; i < linears.size(); ++i) {
    const int64_t m = linears[i]->out_features(), n = linears[i]->in_features();
    const int64_t r = rank_for_fraction(costs[i], m, n, largest_saving_rank(m, n), min_rank_frac);
    cheapest += costs[i].factored(r);
    total += costs[i].dense;
  }
  return total > 0 ? cheapest / total / 1.01 : 0.0;  // the clip's 1% tolerance
}

double plan_cost(const Transformer& dense, const std::vector<WeightCost>& costs, const Plan& plan) {
  double cost = 0.0;
  const std::vector<const Linear*> linears = dense.linears();
  for (size_t i = 0; i < linears.size(); ++i) {
    const int64_t m = linears[i]->out_features(), n = linears[i]->in_features();
    auto it = plan.weights.find(linears[i]->name());
    const bool factored = it != plan.weights.end() && it->second.method != kDense && it->second.rank * (m + n) < m * n;
    cost += factored ? costs[i].factored(it->second.rank) : costs[i].dense;
  }
  return cost;
}

}  // namespace rankrl
