// The search's factor store: every factorization a search uses and the few numbers it reads from
// the calibration Grams (search/env.h WeightErrors; the importance ranking's component energies),
// made one decoder layer at a time so only one layer's statistics and new factors are ever in
// memory, and kept on disk, where the cache views them in the memory map (zero-copy).
//
// On disk: `dir`/factors-<key>/layer-NNN.safetensors, one file per decoder layer, each written
// (atomically) as soon as its layer is done into `dir`/factors-<key>.partial/, which is renamed to
// factors-<key>/ once every layer is in. A resumed run, or another search of the same model with
// the same inputs (--factor-cache DIR), loads it instead of calibrating and decomposing; a
// directory whose files are truncated, corrupt or of another key is an Error (the caller
// recomputes with a warning).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "search/env.h"

namespace rankrl {

struct CalibStats;
class FactorCache;
class Transformer;

// Key of a store made by streaming the dense model's calibration (calibrate_layers): the
// statistics are a function of the model's weights, the calibration token ids, ctx and batch, so
// hashing those identifies the store without holding any Gram (the weights are hashed from the
// map, one tensor's pages at a time). "fnv1a64:<hex>".
std::string streamed_store_key(const Transformer& net, const std::vector<int32_t>& ids, int64_t ctx, int64_t batch,
                               const EnvOptions& env, const std::map<std::string, std::vector<int64_t>>& exact_ranks);
// Key of a store made from whole-model statistics (Fisher, --stats FILE): over the statistics'
// bytes, as they are all in memory anyway.
std::string factor_store_key(const Transformer& net, const CalibStats& stats, const EnvOptions& env,
                             const std::map<std::string, std::vector<int64_t>>& exact_ranks = {});
// Both keys cover `exact_ranks` (weight → the ranks WeightErrors::exact holds, e.g. svdllm2's at
// --keep): those errors need the Gram, so a store without them cannot serve the run.

// What the search reads back: the errors per weight (the cache holds the factors and energies).
using WeightErrorMap = std::map<std::string, WeightErrors>;

// Loads `dir`/factors-<key>/ into `cache` (tensors viewing the files' maps) and `errors`; returns
// the factorizations loaded, 0 when there is no such store. Error naming the file when a layer
// file is missing, truncated, corrupt, of another key, or lacks an entry `env` needs. Under
// mpirun rank 0 reads first and the others only what it read (every rank fails alike).
int64_t load_factor_store(const std::string& dir, const std::string& key, const Transformer& net,
                          const EnvOptions& env, FactorCache& cache, WeightErrorMap& errors);

// A source of per-layer statistics: calls sink(layer, stats) for every decoder layer in order.
using LayerStatsSink = std::function<void(int64_t layer, CalibStats&& stats)>;
using LayerStatsSource = std::function<void(const LayerStatsSink& sink)>;

// For every layer `source` yields: the factorizations the search needs for its projections (each
// non-dense method at full rank when importance selection is enabled, else at the largest saving
// rank; split over the MPI ranks), their errors (weight_errors) and, with importance selection,
// their component energies; rank 0 writes the layer's file and the cache then views it. The
// layer's statistics are dropped when its sink call returns. The store is complete (renamed into
// place) when this returns.
// `keep_factors` false (and no `dir`): each layer's factors are dropped once its errors are
// taken (a caller that reads only `errors`).
void build_factor_store(const std::string& dir, const std::string& key, const Transformer& net, const EnvOptions& env,
                        const LayerStatsSource& source, FactorCache& cache, WeightErrorMap& errors,
                        const std::map<std::string, std::vector<int64_t>>& exact_ranks = {}, bool keep_factors = true);

// Whole-model statistics as a LayerStatsSource (each layer's entries in turn).
LayerStatsSource whole_stats_source(const Transformer& net, const CalibStats& stats);

// --- the one way search and plan --policy get their factorizations -----------------------------

// True when a method of `methods` needs Fisher statistics (the decomposer says so: fwsvd; they
// need the whole model's backward).
bool uses_fisher(const std::vector<std::string>& methods);
// True when the store is made by streaming the calibration text one decoder layer at a time:
// --calib given, no Fisher method and no --whole-model-setup. Otherwise the caller obtains
// whole-model statistics (obtain_stats) first: Fisher needs the whole model's backward and
// --stats reads a whole file.
bool streams_factor_store(bool calib_given, const std::vector<std::string>& methods, bool whole_model_setup);

// Where the store's statistics come from: exactly one of the two.
struct FactorStoreSource {
  const std::vector<int32_t>* calib_ids = nullptr;  // streamed: these token ids in windows of ctx
  int64_t ctx = 0;
  const CalibStats* whole = nullptr;                // whole-model statistics (held by the caller)
};

// Where the store lives: `dir` ("" = nowhere: everything in memory). `shared`: other runs may
// use the same directory (a --factor-cache), so it is locked while loaded or built.
// `keep_factors` false: the caller reads only the errors (plan --policy), so a store that is
// not written drops each layer's factors once its errors are taken.
struct FactorStorePlace {
  std::string dir;
  bool shared = false;
  bool keep_factors = true;
};

// What the calibration of a built streamed store took (all 0 when loaded or whole-model: the
// statistics then say it themselves).
struct StreamedCalibration {
  int64_t tokens = 0, windows = 0, ctx = 0;
  double seconds = 0.0;  // the calibration forward passes alone
};

struct ObtainedFactors {
  std::unique_ptr<FactorCache> cache;  // on `net`; decomposes with the whole-model statistics, if any
  WeightErrorMap errors;               // per projection weight
  int64_t loaded = 0;                  // factorizations read from the store (0: computed now)
  StreamedCalibration calibration;
  ObtainedFactors();
  ObtainedFactors(ObtainedFactors&&) noexcept;
  ~ObtainedFactors();
};

// The store's key from `source`; loads the store from `place.dir` or, when there is none or it is
// truncated or corrupt (a warning), builds it (written to `place.dir` if given).
ObtainedFactors obtain_factor_store(const Transformer& net, const FactorStoreSource& source, const EnvOptions& env,
                                    const std::map<std::string, std::vector<int64_t>>& exact_ranks,
                                    const FactorStorePlace& place);

}  // namespace rankrl
