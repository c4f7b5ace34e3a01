#include "eval/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"

namespace rankrl {

const char* verdict(const Interval& d) {
  if (d.lo > 0.0) return "better";
  if (d.hi < 0.0) return "worse";
  return "no significant difference";
}

Bootstrap::Bootstrap(uint64_t seed, int64_t resamples, double level)
    : seed_(seed), resamples_(resamples), level_(level) {
  if (resamples < 1) throw usage_error("bootstrap resamples must be at least 1");
  if (!(level > 0.0 && level < 1.0)) throw usage_error("bootstrap level must be in (0, 1)");
}

std::vector<double> Bootstrap::resample_means(const std::vector<double>& x) const {
  const uint64_t n = x.size();
  std::vector<double> means;
  if (n == 0) return means;
  means.reserve(size_t(resamples_));
  std::mt19937_64 rng(seed_);
  for (int64_t b = 0; b < resamples_; ++b) {
    double sum = 0.0;
    // Multiply-shift maps a 64-bit draw onto [0, n) (bias below n / 2⁶⁴, and unlike
    // std::uniform_int_distribution the same on every standard library).
    for (uint64_t i = 0; i < n; ++i) sum += x[size_t((unsigned __int128)rng() * n >> 64)];
    means.push_back(sum / double(n));
  }
  return means;
}

Interval Bootstrap::mean(const std::vector<double>& x) const {
  if (x.empty()) return {NAN, NAN, NAN};
  double sum = 0.0;
  for (double v : x) sum += v;
  std::vector<double> means = resample_means(x);
  const double tail = (1.0 - level_) / 2.0;
  return {sum / double(x.size()), quantile(means, tail), quantile(means, 1.0 - tail)};
}

Interval Bootstrap::paired_difference(const std::vector<double>& a, const std::vector<double>& b) const {
  check(a.size() == b.size(), "", "internal: a paired bootstrap needs both systems' values on the same items");
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return mean(d);
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const double pos = std::clamp(q, 0.0, 1.0) * double(v.size() - 1);
  const size_t below = size_t(std::floor(pos));
  if (below + 1 >= v.size()) return v.back();
  return v[below] + (pos - double(below)) * (v[below + 1] - v[below]);
}

}  // namespace rankrl
