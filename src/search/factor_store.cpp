#include "search/factor_store.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "calib/calibrate.h"
#include "compress/factor_cache.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "decompose/decomposer.h"
#include "decompose/selection.h"
#include "io/mapped.h"
#include "io/safetensors.h"
#include "model/transformer.h"
#include "plan/plan.h"

namespace rankrl {

namespace fs = std::filesystem;

namespace {

// Bumped whenever what a store holds or how it is computed changes: an old store is then simply
// not found.
constexpr const char* kStoreFormat = "rankrl-factor-store-2";

// FNV-1a, over 8-byte words for bulk bytes (the weights of a 7B model are hashed in seconds).
struct Fnv {
  uint64_t h = 1469598103934665603ULL;
  void word(uint64_t w) { h = (h ^ w) * 1099511628211ULL; }
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      word(w);
    }
    for (; i < n; ++i) word(p[i]);
    word(n);
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
  void add(int64_t v) { word(uint64_t(v)); }
  void add(const at::Tensor& t) {
    if (!t.defined()) return add(std::string("undefined"));
    add(std::string(c10::toString(t.scalar_type())));
    for (int64_t d : t.sizes()) add(d);
    at::Tensor c = t.contiguous();
    add(c.data_ptr(), size_t(c.numel() * c.element_size()));
  }
  std::string key() const {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    return std::string("fnv1a64:") + hex;
  }
};

bool wants_importance(const EnvOptions& env) {
  return std::find(env.selects.begin(), env.selects.end(), "importance") != env.selects.end();
}

// What changes the store's content besides the statistics: the methods, the factor ranks
// (importance selection asks for full rank) and whether per-rank errors are kept.
void add_env(Fnv& f, const EnvOptions& env, const std::map<std::string, std::vector<int64_t>>& exact_ranks) {
  for (const std::string& s : env.methods) f.add(s);
  f.add(int64_t(wants_importance(env)));
  f.add(int64_t(env.step_errors));
  if (env.loss_estimates) f.add(std::string("loss_estimates"));  // (absent from older keys, which stay valid)
  for (const auto& [name, ranks] : exact_ranks) {
    f.add(name);
    for (int64_t r : ranks) f.add(r);
  }
}

std::string hex_of(const std::string& key) { return key.substr(key.find(':') + 1); }
std::string store_dir(const std::string& dir, const std::string& key) { return dir + "/factors-" + hex_of(key); }
std::string layer_file(const std::string& store, int64_t layer) {
  char name[32];
  std::snprintf(name, sizeof name, "/layer-%03lld.safetensors", static_cast<long long>(layer));
  return store + name;
}

// The rank every factorization of `l` is computed at (as SearchEnv and apply_plan ask for it).
int64_t store_rank(const Linear& l, const EnvOptions& env) {
  const int64_t m = l.out_features(), n = l.in_features();
  return wants_importance(env) ? std::min(m, n) : (m * n - 1) / (m + n);
}

std::vector<double> doubles_of(const SafetensorsFile& f, const std::string& name) {
  const TensorInfo* t = f.find(name);
  check(t != nullptr, f.path(), "factor store lacks tensor '" + name + "'");
  check(t->dtype == DType::F64, f.path(), "tensor '" + name + "' is not F64");
  std::vector<double> v((t->end - t->begin) / sizeof(double));
  std::memcpy(v.data(), f.data(*t), v.size() * sizeof(double));
  return v;
}

at::Tensor f64_tensor(const std::vector<double>& v) { return at::tensor(v, at::kDouble); }

// Writes layer `layer`'s entries (every factoring method of every projection) and errors.
void write_layer(const std::string& path, const std::string& key, int64_t layer, const std::vector<const Linear*>& linears,
                 const EnvOptions& env, const FactorCache& cache, const WeightErrorMap& errors) {
  std::vector<at::Tensor> keep_alive;
  std::vector<TensorBytes> tensors;
  auto add = [&](const std::string& name, const at::Tensor& t, DType dtype) {
    keep_alive.push_back(t.contiguous());
    const at::Tensor& c = keep_alive.back();
    tensors.push_back({name, dtype, c.sizes().vec(),
                       std::string_view(static_cast<const char*>(c.data_ptr()), size_t(c.numel() * c.element_size()))});
  };
  nlohmann::json entries = nlohmann::json::array(), weights = nlohmann::json::object();
  int64_t n = 0;
  for (const Linear* l : linears) {
    for (const std::string& method : env.methods) {
      if (method == kDense) continue;
      const Factors& fac = cache.entries().at({l->name(), method});
      const std::string id = std::to_string(n++);
      add(id + ".A", fac.A.to(at::kFloat), DType::F32);
      add(id + ".B", fac.B.to(at::kFloat), DType::F32);
      add(id + ".tail", f64_tensor(fac.tail_error), DType::F64);
      if (const std::vector<double>* e = cache.component_energy(l->name(), method)) add(id + ".energy", f64_tensor(*e), DType::F64);
      entries.push_back({{"weight", l->name()}, {"spec", method}, {"metric", fac.metric}});
    }
    const WeightErrors& e = errors.at(l->name());
    // Doubles print with 17 significant digits, so they read back bit for bit.
    weights[l->name()] = {{"output_energy", e.output_energy}, {"curve", e.curve}, {"exact", e.exact}};
    for (size_t k = 0; k < e.by_rank.size(); ++k) add(l->name() + ".by_rank." + std::to_string(k), f64_tensor(e.by_rank[k]), DType::F64);
    for (size_t k = 0; k < e.loss_by_rank.size(); ++k)
      add(l->name() + ".loss_by_rank." + std::to_string(k), f64_tensor(e.loss_by_rank[k]), DType::F64);
  }
  write_safetensors(path, tensors,
                    {{"key", key}, {"layer", std::to_string(layer)}, {"entries", entries.dump()}, {"weights", weights.dump()}});
}

// Reads one layer's file into the cache (views of its map) and `errors`; returns its entries.
int64_t read_layer(const std::string& path, const std::string& key, int64_t layer, const std::vector<const Linear*>& linears,
                   const EnvOptions& env, FactorCache& cache, WeightErrorMap& errors) {
  check(fs::exists(path), path, "factor store lacks this layer's file");
  SafetensorsFile f = SafetensorsFile::open(path);
  const auto& meta = f.header().metadata;
  for (const char* field : {"key", "layer", "entries", "weights"})
    check(meta.count(field) > 0, path, std::string("not a rankrl factor store file (no '") + field + "' metadata)");
  check(meta.at("key") == key && meta.at("layer") == std::to_string(layer), path, "factor store key mismatch");
  const nlohmann::json entries = nlohmann::json::parse(meta.at("entries"), nullptr, false);
  const nlohmann::json weights = nlohmann::json::parse(meta.at("weights"), nullptr, false);
  check(entries.is_array() && weights.is_object(), path, "corrupt factor store metadata");
  int64_t n = 0;
  try {
    for (const auto& e : entries) {
      const std::string id = std::to_string(n++);
      Factors fac;
      fac.A = mapped_view(f, id + ".A");  // zero-copy: the view keeps the file mapped
      fac.B = mapped_view(f, id + ".B");
      fac.tail_error = doubles_of(f, id + ".tail");
      fac.metric = e.at("metric");
      const std::string weight = e.at("weight"), spec = e.at("spec");
      if (f.find(id + ".energy")) cache.set_component_energy(weight, spec, doubles_of(f, id + ".energy"));
      cache.replace(weight, spec, std::move(fac));
    }
    for (const Linear* l : linears) {
      check(weights.contains(l->name()), path, "factor store lacks the errors of '" + l->name() + "'");
      const nlohmann::json& w = weights.at(l->name());
      WeightErrors e;
      e.output_energy = w.at("output_energy");
      e.curve = w.at("curve").get<std::vector<std::vector<double>>>();
      e.exact = w.at("exact").get<std::map<int64_t, std::vector<double>>>();
      for (size_t k = 0; k < e.curve.size() && env.step_errors; ++k)
        e.by_rank.push_back(doubles_of(f, l->name() + ".by_rank." + std::to_string(k)));
      for (size_t k = 0; k < e.curve.size() && env.loss_estimates; ++k)
        e.loss_by_rank.push_back(doubles_of(f, l->name() + ".loss_by_rank." + std::to_string(k)));
      errors[l->name()] = std::move(e);
    }
  } catch (const nlohmann::json::exception&) {
    throw Error(path, "corrupt factor store metadata");
  }
  // Every entry the search needs is here, at the rank it asks for.
  for (const Linear* l : linears)
    for (const std::string& method : env.methods) {
      if (method == kDense) continue;
      auto it = cache.entries().find({l->name(), method});
      check(it != cache.entries().end() && it->second.rank() >= store_rank(*l, env), path,
            "factor store lacks '" + method + "' of '" + l->name() + "'");
      check(!wants_importance(env) || cache.component_energy(l->name(), method), path,
            "factor store lacks the component energies of '" + l->name() + "'");
    }
  return n;
}

std::vector<const Linear*> layer_linears(const Transformer& net, int64_t layer) {
  std::vector<Linear*> ls = const_cast<Transformer&>(net).layer_linears(layer);
  return {ls.begin(), ls.end()};
}

int64_t load_store_dir(const std::string& dir, const std::string& key, const Transformer& net, const EnvOptions& env,
                       FactorCache& cache, WeightErrorMap& errors) {
  const std::string store = store_dir(dir, key);
  if (!fs::is_directory(store)) return 0;
  int64_t n = 0;
  try {
    for (int64_t i = 0; i < net.config().n_layers; ++i)
      n += read_layer(layer_file(store, i), key, i, layer_linears(net, i), env, cache, errors);
  } catch (...) {  // nothing of a store that failed part way is used
    cache.clear();
    errors.clear();
    throw;
  }
  return n;
}

}  // namespace

std::string streamed_store_key(const Transformer& net, const std::vector<int32_t>& ids, int64_t ctx, int64_t batch,
                               const EnvOptions& env, const std::map<std::string, std::vector<int64_t>>& exact_ranks) {
  Fnv f;
  f.add(std::string(kStoreFormat) + "|streamed");
  f.add(model_identity(net.config()));
  for (const auto& [name, t] : net.weights()) {
    f.add(name);
    f.add(t);
    release_mapped_pages(t);  // hashed: its pages leave the resident set (io/mapped.h)
  }
  f.add(ids.data(), ids.size() * sizeof(int32_t));
  f.add(ctx);
  f.add(batch);
  add_env(f, env, exact_ranks);
  return f.key();
}

std::string factor_store_key(const Transformer& net, const CalibStats& stats, const EnvOptions& env,
                             const std::map<std::string, std::vector<int64_t>>& exact_ranks) {
  Fnv f;
  f.add(std::string(kStoreFormat) + "|stats");
  f.add(model_identity(net.config()));
  for (const auto& [name, s] : stats.stats) {
    f.add(name);
    f.add(s.gram);
    f.add(s.abs_mean);
    f.add(s.fisher);
    if (s.out_gram.defined()) f.add(s.out_gram);  // (older keys, without it, stay valid)
  }
  add_env(f, env, exact_ranks);
  return f.key();
}

// Under mpirun rank 0 reads first and tells the others what it found: they read the store only
// when rank 0 did (then it is complete and rank 0 will not rewrite it), never one rank 0 may be
// writing, and every rank fails or recomputes alike.
int64_t load_factor_store(const std::string& dir, const std::string& key, const Transformer& net, const EnvOptions& env,
                          FactorCache& cache, WeightErrorMap& errors) {
  if (!dist::active()) return load_store_dir(dir, key, net, env, cache, errors);
  int64_t loaded = 0;
  dist::Writer verdict;
  if (dist::is_root()) {
    try {
      loaded = load_store_dir(dir, key, net, env, cache, errors);
      verdict.put(uint8_t(loaded > 0 ? 1 : 0));
    } catch (const Error& e) {
      verdict.put(uint8_t(2));
      verdict.put_bytes(e.file());
      verdict.put_bytes(e.message());
    }
  }
  std::string bytes = verdict.take();
  dist::broadcast(bytes);
  dist::Reader r(bytes);
  const uint8_t found = r.get<uint8_t>();
  if (found == 2) {
    const std::string file = r.get_bytes();
    throw Error(file, r.get_bytes());
  }
  if (found == 1 && !dist::is_root()) loaded = load_store_dir(dir, key, net, env, cache, errors);
  return loaded;
}

void build_factor_store(const std::string& dir, const std::string& key, const Transformer& net, const EnvOptions& env,
                        const LayerStatsSource& source, FactorCache& cache, WeightErrorMap& errors,
                        const std::map<std::string, std::vector<int64_t>>& exact_ranks, bool keep_factors) {
  const bool write = !dir.empty() && dist::is_root();  // rank 0 alone writes
  const std::string store = dir.empty() ? "" : store_dir(dir, key), partial = store + ".partial";
  if (write) {
    fs::remove_all(partial);  // a run that died part way (the caller holds the store's lock)
    fs::create_directories(partial);
  }
  int64_t layers_done = 0;
  source([&](int64_t layer, CalibStats&& stats) {
    c10::InferenceMode guard;
    check(layer == layers_done, "", "internal: layer statistics out of order");
    const std::vector<const Linear*> linears = layer_linears(net, layer);
    cache.set_stats(&stats);
    std::vector<FactorCache::Request> requests;
    for (const Linear* l : linears)
      for (const std::string& method : env.methods)
        if (method != kDense) requests.push_back({l->name(), method, store_rank(*l, env)});
    cache.prefetch(requests);  // split over the MPI ranks
    for (const Linear* l : linears) {
      const LinearStats* st = stats.find(l->name());
      check(st != nullptr, l->name(), "search needs calibration statistics for every weight");
      auto ranks = exact_ranks.find(l->name());
      errors[l->name()] = weight_errors(*l, cache, *st, env, ranks == exact_ranks.end() ? std::vector<int64_t>{} : ranks->second);
      if (!wants_importance(env)) continue;
      for (const std::string& method : env.methods)
        if (method != kDense)
          cache.set_component_energy(l->name(), method, component_output_energy(cache.get(l->name(), method, 1), *st));
    }
    cache.set_stats(nullptr);
    if (write) {
      const std::string path = layer_file(partial, layer);
      write_layer(path, key, layer, linears, env, cache, errors);
      // The layer's factors leave anonymous memory: from now on the cache views the file.
      WeightErrorMap reread;
      read_layer(path, key, layer, linears, env, cache, reread);
    } else if (!keep_factors && dir.empty()) {
      cache.clear();  // only the errors are wanted: the layer's factors would only fill memory
    }
    for (const Linear* l : linears) release_mapped_pages(l->weight());
    ++layers_done;
  });
  check(layers_done == net.config().n_layers, "", "internal: statistics for only some layers");
  if (write) {
    fs::remove_all(store);  // a corrupt store the caller could not load
    fs::rename(partial, store);
  }
}

LayerStatsSource whole_stats_source(const Transformer& net, const CalibStats& stats) {
  return [&net, &stats](const LayerStatsSink& sink) {
    for (int64_t i = 0; i < net.config().n_layers; ++i) {
      CalibStats layer;  // the layer's entries (tensors shared, not copied)
      for (const Linear* l : layer_linears(net, i)) {
        const LinearStats* st = stats.find(l->name());
        if (st) layer.stats[l->name()] = *st;
      }
      sink(i, std::move(layer));
    }
  };
}

bool uses_fisher(const std::vector<std::string>& methods) {
  return std::any_of(methods.begin(), methods.end(),
                     [](const std::string& m) { return m != kDense && make_decomposer(m)->needs_fisher(); });
}

bool streams_factor_store(bool calib_given, const std::vector<std::string>& methods, bool whole_model_setup) {
  return calib_given && !uses_fisher(methods) && !whole_model_setup;
}

ObtainedFactors::ObtainedFactors() = default;
ObtainedFactors::ObtainedFactors(ObtainedFactors&&) noexcept = default;
ObtainedFactors::~ObtainedFactors() = default;

namespace {

// The dense model calibrated one decoder layer at a time into build_factor_store, timing the
// calibration passes alone (not what the sink does with each layer).
LayerStatsSource streamed_source(const Transformer& net, const std::vector<int32_t>& ids, const CalibOptions& calib,
                                 StreamedCalibration& summary) {
  return [&net, &ids, calib, &summary](const LayerStatsSink& sink) {
    double in_sink = 0.0;
    const auto start = std::chrono::steady_clock::now();
    calibrate_layers(net, ids, calib, [&](int64_t layer, CalibStats&& stats) {
      const auto t = std::chrono::steady_clock::now();
      summary.tokens = stats.tokens;
      summary.windows = stats.windows;
      sink(layer, std::move(stats));
      in_sink += seconds_since(t);
    });
    summary.ctx = calib.ctx;
    summary.seconds = seconds_since(start) - in_sink;
  };
}

}  // namespace

ObtainedFactors obtain_factor_store(const Transformer& net, const FactorStoreSource& source, const EnvOptions& env,
                                    const std::map<std::string, std::vector<int64_t>>& exact_ranks,
                                    const FactorStorePlace& place) {
  const bool stream = source.whole == nullptr;
  check(stream == (source.calib_ids != nullptr), "", "internal: a factor store from either calibration ids or statistics");
  const CalibOptions calib{int64_t(stream ? source.calib_ids->size() : 0), source.ctx, 8, false};
  // No directory, no key (hashing a 7B model's weights takes seconds).
  const std::string key = place.dir.empty() ? ""
                          : stream          ? streamed_store_key(net, *source.calib_ids, calib.ctx, calib.batch, env, exact_ranks)
                                            : factor_store_key(net, *source.whole, env, exact_ranks);
  // A shared directory: runs that need the same store wait for the one computing it, then load it.
  std::unique_ptr<FileLock> lock;
  if (place.shared && !place.dir.empty() && dist::is_root()) {
    fs::create_directories(place.dir);
    lock = FileLock::try_acquire(place.dir + "/factors.lock");
    if (!lock) {
      info("waiting for another run writing the factor store in " + place.dir);
      lock = FileLock::acquire(place.dir + "/factors.lock");
    }
  }
  ObtainedFactors out;
  out.cache = std::make_unique<FactorCache>(net, source.whole);
  if (!place.dir.empty()) {
    try {
      out.loaded = load_factor_store(place.dir, key, net, env, *out.cache, out.errors);
    } catch (const Error& e) {  // a truncated or corrupt store is only lost time: compute it again
      warn(std::string(e.what()) + "; recomputing the factorizations");
      out.cache = std::make_unique<FactorCache>(net, source.whole);
      out.errors.clear();
      out.loaded = 0;
    }
  }
  if (out.loaded > 0) {
    info("loaded " + std::to_string(out.loaded) + " factorizations from " + place.dir);
  } else if (stream) {
    build_factor_store(place.dir, key, net, env, streamed_source(net, *source.calib_ids, calib, out.calibration), *out.cache,
                       out.errors, exact_ranks, place.keep_factors);
    const StreamedCalibration& c = out.calibration;
    info("calibrated layer by layer on " + std::to_string(c.tokens) + " tokens (" + std::to_string(c.windows) +
         " windows) in " + std::to_string(c.seconds) + " s, peak RSS " + std::to_string(peak_rss_bytes() >> 20) + " MiB");
  } else {
    build_factor_store(place.dir, key, net, env, whole_stats_source(net, *source.whole), *out.cache, out.errors,
                       exact_ranks, place.keep_factors);
  }
  out.cache->set_stats(source.whole);
  return out;
}

}  // namespace rankrl
