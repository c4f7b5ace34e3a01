// The factor cache on disk: every factorization a search computed, in one safetensors file named
// by a key over the model's identity, the calibration statistics' bytes and the method specs, so
// a resumed run — or another search of the same model with the same statistics — slices factors
// instead of recomputing them. A file whose key does not match is simply not used.
#pragma once
#include <string>
#include <vector>

namespace rankrl {

struct CalibStats;
class FactorCache;
class Transformer;

// "fnv1a64:<hex>" over the model identity, every statistics tensor's bytes and the specs.
std::string factor_store_key(const Transformer& net, const CalibStats& stats, const std::vector<std::string>& specs);

// Loads `dir`/factors-<key>.safetensors into `cache` if it exists; returns the entries loaded.
// A corrupt file is an Error naming it.
int64_t load_factor_store(const std::string& dir, const std::string& key, FactorCache& cache);

// Computes every factorization SearchEnv asks for (each non-dense method of `methods` for every
// projection, at full rank when `full_rank` (selection by importance) or else at the largest
// rank that saves parameters), spread over the MPI ranks when under mpirun.
void prefetch_search_factors(const Transformer& net, const std::vector<std::string>& methods, bool full_rank,
                             FactorCache& cache);

// Writes every entry of `cache` to `dir`/factors-<key>.safetensors (atomic).
void save_factor_store(const std::string& dir, const std::string& key, const FactorCache& cache);

}  // namespace rankrl
