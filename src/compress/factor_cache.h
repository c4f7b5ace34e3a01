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

 private:
  const Transformer& dense_;
  const CalibStats* stats_;
  std::map<std::pair<std::string, std::string>, Factors> cache_;
  double seconds_ = 0.0;
};

}  // namespace rankrl
