#include "compress/apply.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "calib/calibrate.h"
#include "compress/factor_cache.h"
#include "core/error.h"
#include "core/log.h"
#include "decompose/selection.h"
#include "model/transformer.h"

namespace rankrl {

namespace {

// Importance selection chooses among more components than it keeps; the ranking is only as good
// as the pool, so the pool is every component the method can produce.
int64_t pool_rank(const WeightDecision& d, const Linear& l) {
  if (d.select == "top") return d.rank;
  return std::min(l.out_features(), l.in_features());
}

AppliedWeight apply_one(Linear& l, const WeightDecision& d, FactorCache& cache, const CalibStats* stats) {
  AppliedWeight a{l.name(), d.method, d.select, 0, l.parameters(), l.parameters(), ""};
  const int64_t m = l.out_features(), n = l.in_features();
  if (d.method == kDense) return a;
  if (d.rank * (m + n) >= m * n) {
    a.note = "kept dense: rank " + std::to_string(d.rank) + " costs " + std::to_string(d.rank * (m + n)) +
             " >= " + std::to_string(m * n) + " dense parameters";
    return a;
  }
  const Factors& all = cache.get(l.name(), d.method, pool_rank(d, l));
  const LinearStats* st = stats ? stats->find(l.name()) : nullptr;
  // Without the Gram (the search drops it once a layer is set up), importance selection reads the
  // component energies the cache kept for these factors.
  const std::vector<double>* energy = cache.component_energy(l.name(), d.method);
  const Selection rule = parse_selection(d.select);
  const bool precomputed = st == nullptr && rule == Selection::importance && energy && int64_t(energy->size()) == all.rank();
  Factors kept = slice(all, precomputed ? select_by_energy(*energy, d.rank) : select_components(all, d.rank, rule, st));
  l.set_low_rank(kept.A.contiguous(), kept.B.contiguous());
  a.rank = d.rank;
  a.params_after = l.parameters();
  return a;
}

}  // namespace

nlohmann::json ApplyReport::to_json() const {
  nlohmann::json w = nlohmann::json::array();
  for (const AppliedWeight& a : weights) {
    nlohmann::json j = {{"name", a.name}, {"method", a.method}, {"rank", a.rank},
                        {"params_before", a.params_before}, {"params_after", a.params_after}};
    if (a.method != kDense) j["select"] = a.select;
    if (!a.note.empty()) j["note"] = a.note;
    w.push_back(j);
  }
  return {{"weights", w}, {"decompose_seconds", decompose_seconds}, {"seconds", seconds}};
}

std::vector<AppliedWeight> apply_to(const std::vector<Linear*>& linears, const Plan& plan, FactorCache& cache,
                                    const CalibStats* stats, const std::string& plan_path) {
  for (const Linear* l : linears)
    check(!l->is_low_rank(), plan_path, "cannot apply a plan to an already factored weight '" + l->name() + "'");
  std::vector<AppliedWeight> out;
  for (Linear* l : linears) out.push_back(apply_one(*l, plan.weights.at(l->name()), cache, stats));
  return out;
}

ApplyReport apply_plan(Transformer& net, const Plan& plan, FactorCache& cache, const CalibStats* stats,
                       const std::string& plan_path) {
  validate_plan(plan, net, plan_path);
  const auto start = std::chrono::steady_clock::now();
  const double cache_before = cache.seconds();
  ApplyReport r;
  r.weights = apply_to(net.linears(), plan, cache, stats, plan_path);
  r.decompose_seconds = cache.seconds() - cache_before;
  r.seconds = seconds_since(start);
  return r;
}

ApplyReport apply_plan(Transformer& net, const Plan& plan, const CalibStats* stats, const std::string& plan_path) {
  // The cache reads W from a dense twin, since `net` is swapped to low-rank weight by weight.
  Transformer dense(net.config(), net.weights());
  FactorCache cache(dense, stats);
  return apply_plan(net, plan, cache, stats, plan_path);
}

}  // namespace rankrl
