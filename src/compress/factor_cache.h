// FactorCache: factorizations per (weight, method spec), computed once at the largest rank asked
// for so far; every smaller rank is a slice (decomposer components are ordered).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "decompose/decomposer.h"

namespace rankrl {

struct CalibStats;
class Transformer;

class FactorCache {
 public:
  // `dense` must outlive the cache and keep its dense weights (it is the source of W);
  // `stats` may be null when only data-free methods are used.
  FactorCache(const Transformer& dense, const CalibStats* stats);

  // Factors of `weight` by `spec` with at least `rank` components (recomputed at the larger rank
  // when an earlier entry has fewer).
  const Factors& get(const std::string& weight, const std::string& spec, int64_t rank);

  // get() for every request at once. Under mpirun the requests are spread over the ranks: each
  // decomposes its share and every rank receives every factor bit for bit (core/dist.h), so the
  // cache ends as computing all of them in one process would leave it.
  struct Request {
    std::string weight, spec;
    int64_t rank;
  };
  void prefetch(const std::vector<Request>& requests);
  double seconds() const { return seconds_; }

  // Every cached factorization by (weight, spec); insert() adds one computed elsewhere (a factor
  // store on disk), replacing an entry with fewer components.
  const std::map<std::pair<std::string, std::string>, Factors>& entries() const { return cache_; }
  void insert(const std::string& weight, const std::string& spec, Factors factors);
  // Forgets every entry (a factor store that failed to load part way).
  void clear() {
    cache_.clear();
    energy_.clear();
  }
  // Sets the entry whatever its rank (the same factors, now viewed in a store's memory map).
  void replace(const std::string& weight, const std::string& spec, Factors factors);

  // The statistics later get()s decompose with (the search's setup points it at one layer's at a
  // time, then at none).
  void set_stats(const CalibStats* stats) { stats_ = stats; }

  // Output energy of every component of the (weight, spec) entry (decompose/selection.h
  // component_output_energy), kept for importance selection once the Gram is gone; null if none.
  void set_component_energy(const std::string& weight, const std::string& spec, std::vector<double> energy);
  const std::vector<double>* component_energy(const std::string& weight, const std::string& spec) const;

 private:
  const Transformer& dense_;
  const CalibStats* stats_;
  std::map<std::pair<std::string, std::string>, Factors> cache_;
  std::map<std::pair<std::string, std::string>, std::vector<double>> energy_;
  double seconds_ = 0.0;
};

}  // namespace rankrl
