#include "compress/factor_cache.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstring>

#include "calib/calibrate.h"
#include "core/dist.h"
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
  energy_.erase(key);  // computed for the factors replaced
  return cache_[key] = std::move(f);
}

namespace {

void put_tensor(dist::Writer& w, const at::Tensor& t) {
  w.put(uint8_t(t.defined()));
  if (!t.defined()) return;
  const at::Tensor c = t.to(at::kFloat).contiguous();
  w.put(c.dim());
  for (int64_t d : c.sizes()) w.put(d);
  w.put_bytes(std::string(static_cast<const char*>(c.data_ptr()), size_t(c.numel()) * sizeof(float)));
}

at::Tensor get_tensor(dist::Reader& r) {
  if (r.get<uint8_t>() == 0) return {};
  std::vector<int64_t> shape(size_t(r.get<int64_t>()));
  for (int64_t& d : shape) d = r.get<int64_t>();
  const std::string bytes = r.get_bytes();
  at::Tensor t = at::empty(shape, at::kFloat);
  check(bytes.size() == size_t(t.numel()) * sizeof(float), "", "internal: factor bytes do not match their shape");
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

void put_doubles(dist::Writer& w, const std::vector<double>& v) {
  w.put(v.size());
  for (double x : v) w.put(x);
}

std::vector<double> get_doubles(dist::Reader& r) {
  std::vector<double> v(r.get<size_t>());
  for (double& x : v) x = r.get<double>();
  return v;
}

std::string pack_factors(const Factors& f) {
  dist::Writer w;
  put_tensor(w, f.A);
  put_tensor(w, f.B);
  put_tensor(w, f.bias_correction);
  put_doubles(w, f.tail_error);
  put_doubles(w, f.loss_history);
  w.put_bytes(f.metric);
  return w.take();
}

Factors unpack_factors(const std::string& bytes) {
  dist::Reader r(bytes);
  Factors f;
  f.A = get_tensor(r);
  f.B = get_tensor(r);
  f.bias_correction = get_tensor(r);
  f.tail_error = get_doubles(r);
  f.loss_history = get_doubles(r);
  f.metric = r.get_bytes();
  return f;
}

}  // namespace

void FactorCache::prefetch(const std::vector<Request>& requests) {
  if (!dist::active()) {
    for (const Request& q : requests) get(q.weight, q.spec, q.rank);
    return;
  }
  // Factors are float32 (Factors' contract), so the bytes carry them exactly.
  const std::vector<std::string> done = dist::share(requests.size(), [&](size_t i) {
    return pack_factors(get(requests[i].weight, requests[i].spec, requests[i].rank));
  });
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& q = requests[i];
    auto it = cache_.find({q.weight, q.spec});
    if (it == cache_.end() || it->second.rank() < q.rank) {
      energy_.erase({q.weight, q.spec});
      cache_[{q.weight, q.spec}] = unpack_factors(done[i]);
    }
  }
}

void FactorCache::insert(const std::string& weight, const std::string& spec, Factors factors) {
  auto key = std::make_pair(weight, spec);
  auto it = cache_.find(key);
  if (it == cache_.end() || it->second.rank() < factors.rank()) {
    energy_.erase(key);
    cache_[key] = std::move(factors);
  }
}

void FactorCache::replace(const std::string& weight, const std::string& spec, Factors factors) {
  cache_[std::make_pair(weight, spec)] = std::move(factors);
}

void FactorCache::set_component_energy(const std::string& weight, const std::string& spec, std::vector<double> energy) {
  energy_[std::make_pair(weight, spec)] = std::move(energy);
}

const std::vector<double>* FactorCache::component_energy(const std::string& weight, const std::string& spec) const {
  auto it = energy_.find(std::make_pair(weight, spec));
  return it == energy_.end() ? nullptr : &it->second;
}

}  // namespace rankrl
