#include "search/factor_store.h"

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "calib/calibrate.h"
#include "compress/factor_cache.h"
#include "core/dist.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/transformer.h"
#include "plan/plan.h"

namespace rankrl {

namespace {

struct Fnv {
  uint64_t h = 1469598103934665603ULL;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
  void add(const at::Tensor& t) {
    if (!t.defined()) return add(std::string("undefined"));
    at::Tensor c = t.contiguous();
    add(c.data_ptr(), c.numel() * c.element_size());
  }
};

std::string path_for(const std::string& dir, const std::string& key) {
  std::string k = key.substr(key.find(':') + 1);
  return dir + "/factors-" + k + ".safetensors";
}

at::Tensor from_bytes(const SafetensorsFile& f, const std::string& name, at::ScalarType type) {
  const TensorInfo* t = f.find(name);
  check(t != nullptr, f.path(), "factor store lacks tensor '" + name + "'");
  at::Tensor out = at::empty(t->shape, at::TensorOptions().dtype(type));
  check(size_t(out.numel() * out.element_size()) == t->end - t->begin, f.path(), "tensor '" + name + "' has the wrong size");
  std::memcpy(out.data_ptr(), f.data(*t), t->end - t->begin);
  return out;
}

}  // namespace

std::string factor_store_key(const Transformer& net, const CalibStats& stats, const std::vector<std::string>& specs) {
  Fnv f;
  f.add(model_identity(net.config()));
  for (const auto& [name, s] : stats.stats) {
    f.add(name);
    f.add(s.gram);
    f.add(s.abs_mean);
    f.add(s.fisher);
  }
  for (const std::string& s : specs) f.add(s);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(f.h));
  return std::string("fnv1a64:") + hex;
}

namespace {
int64_t load_store_file(const std::string& dir, const std::string& key, FactorCache& cache) {
  const std::string path = path_for(dir, key);
  if (!std::filesystem::exists(path)) return 0;
  SafetensorsFile f = SafetensorsFile::open(path);
  auto it = f.header().metadata.find("entries");
  check(it != f.header().metadata.end(), path, "not a rankrl factor store (no 'entries' metadata)");
  nlohmann::json entries = nlohmann::json::parse(it->second, nullptr, false);
  check(entries.is_array(), path, "corrupt 'entries' metadata");
  check(f.header().metadata.count("key") && f.header().metadata.at("key") == key, path, "factor store key mismatch");
  int64_t n = 0;
  for (const auto& e : entries) {
    const std::string id = std::to_string(n);
    Factors fac;
    fac.A = from_bytes(f, id + ".A", at::kFloat);
    fac.B = from_bytes(f, id + ".B", at::kFloat);
    at::Tensor tail = from_bytes(f, id + ".tail", at::kDouble);
    fac.tail_error.assign(tail.data_ptr<double>(), tail.data_ptr<double>() + tail.numel());
    fac.metric = e.at("metric");
    cache.insert(e.at("weight"), e.at("spec"), std::move(fac));
    ++n;
  }
  return n;
}

}  // namespace

// Under mpirun rank 0 reads first and tells the others what it found: they read the file only
// when rank 0 did (then it is complete and rank 0 will not rewrite it), never one rank 0 may be
// writing, and every rank fails or recomputes alike.
int64_t load_factor_store(const std::string& dir, const std::string& key, FactorCache& cache) {
  if (!dist::active()) return load_store_file(dir, key, cache);
  int64_t loaded = 0;
  dist::Writer verdict;
  if (dist::is_root()) {
    try {
      loaded = load_store_file(dir, key, cache);
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
  if (found == 1 && !dist::is_root()) loaded = load_store_file(dir, key, cache);
  return loaded;
}

void prefetch_search_factors(const Transformer& net, const std::vector<std::string>& methods, bool full_rank,
                             FactorCache& cache) {
  std::vector<FactorCache::Request> requests;
  for (const Linear* l : net.linears()) {
    const int64_t m = l->out_features(), n = l->in_features();
    const int64_t max_rank = (m * n - 1) / (m + n);  // as SearchEnv: the largest saving rank
    if (max_rank < 1) continue;                      // SearchEnv refuses it with its own error
    for (const std::string& method : methods)
      if (method != "dense") requests.push_back({l->name(), method, full_rank ? std::min(m, n) : max_rank});
  }
  cache.prefetch(requests);
}

void save_factor_store(const std::string& dir, const std::string& key, const FactorCache& cache) {
  if (!dist::is_root()) return;  // rank 0 alone writes
  std::filesystem::create_directories(dir);
  std::vector<at::Tensor> keep_alive;
  std::vector<TensorBytes> tensors;
  nlohmann::json entries = nlohmann::json::array();
  auto add = [&](const std::string& name, at::Tensor t, DType dtype) {
    keep_alive.push_back(t.contiguous());
    const at::Tensor& c = keep_alive.back();
    tensors.push_back({name, dtype, c.sizes().vec(),
                       std::string_view(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size())});
  };
  int64_t n = 0;
  for (const auto& [k, fac] : cache.entries()) {
    const std::string id = std::to_string(n++);
    add(id + ".A", fac.A.to(at::kFloat), DType::F32);
    add(id + ".B", fac.B.to(at::kFloat), DType::F32);
    add(id + ".tail", at::tensor(fac.tail_error, at::kDouble), DType::F64);
    entries.push_back({{"weight", k.first}, {"spec", k.second}, {"metric", fac.metric}});
  }
  write_safetensors(path_for(dir, key), tensors, {{"entries", entries.dump()}, {"key", key}});
}

}  // namespace rankrl
