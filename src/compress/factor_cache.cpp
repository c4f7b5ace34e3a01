#include "compress/factor_cache.h"

#include <chrono>

#include "calib/calibrate.h"
#include "core/error.h"
#include "core/log.h"
#include "model/transformer.h"

namespace rankrl {

FactorCache::FactorCache(const Transformer& dense, const CalibStats* stats) : dense_(dense), stats_(stats) {}

const Factors& FactorCache::get(const std::string& weight, const std::string& spec, int64_t rank) {
  auto key = std::make_pair(weight, spec);
  auto it = cache_.find(key);
  if (it != cache_.end() && it->second.rank() >= rank) return it->second;
  const Linear* l = const_cast<Transformer&>(dense_).find_linear(weight);
  check(l != nullptr, weight, "no such projection weight");
  auto decomposer = make_decomposer(spec);
  const LinearStats* st = stats_ ? stats_->find(weight) : nullptr;
  if ((decomposer->needs_stats() || decomposer->needs_fisher()) && !st)
    throw Error(weight, "method '" + spec + "' needs calibration statistics (pass --calib or --stats)");
  if (st) validate_stats(*st, st->fisher.defined() ? l->out_features() : -1, l->in_features(), weight);
  const auto start = std::chrono::steady_clock::now();
  Factors f = decomposer->decompose(l->dense_weight(), st, rank);
  seconds_ += seconds_since(start);
  return cache_[key] = std::move(f);
}

void FactorCache::insert(const std::string& weight, const std::string& spec, Factors factors) {
  auto key = std::make_pair(weight, spec);
  auto it = cache_.find(key);
  if (it == cache_.end() || it->second.rank() < factors.rank()) cache_[key] = std::move(factors);
}

}  // namespace rankrl
