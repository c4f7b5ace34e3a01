// Decomposition benchmark: wall time per method on random matrices with decaying spectra
// (σ_i ∝ 1/i, random singular vectors, like trained weights' slowly decaying spectra), plus each
// result's relative Frobenius error (each data-aware method optimises its own metric instead)
// and the excess error of rsvd with default parameters over the exact SVD.
// Prints one markdown table on stdout.
//   bench_decompose [--full] [--sizes 1024x1024,1024x2816,4096x4096] [--rank-frac 0.25]
//                   [--methods svd,rsvd,...] [--threads N]
// Without --full, the slow methods (svdllm: float64 SVD; cur; nmf) are skipped on matrices
// with more than 8M entries.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "decompose/decomposer.h"

namespace {

using rankrl::Factors;
using rankrl::LinearStats;

struct Options {
  bool full = false;
  std::vector<std::pair<int64_t, int64_t>> sizes = {{1024, 1024}, {1024, 2816}, {4096, 4096}};
  double rank_frac = 0.25;
  int threads = 0;  // 0: OMP_NUM_THREADS, else every core
  std::vector<std::string> methods = {"svd", "rsvd", "asvd", "svdllm", "fwsvd", "cur", "nmf"};
};

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, sep);) out.push_back(item);
  return out;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--full") {
      o.full = true;
    } else if (arg == "--sizes" && has_value) {
      o.sizes.clear();
      for (const auto& s : split(argv[++i], ',')) {
        const auto mn = split(s, 'x');
        if (mn.size() != 2) throw rankrl::usage_error("--sizes wants MxN[,MxN...]");
        o.sizes.emplace_back(std::stoll(mn[0]), std::stoll(mn[1]));
      }
    } else if (arg == "--rank-frac" && has_value) {
      o.rank_frac = std::stod(argv[++i]);
    } else if (arg == "--threads" && has_value) {
      o.threads = std::stoi(argv[++i]);
    } else if (arg == "--methods" && has_value) {
      o.methods = split(argv[++i], ',');
    } else {
      throw rankrl::usage_error("unknown argument " + arg + " (see the comment at the top of bench_decompose.cpp)");
    }
  }
  return o;
}

at::Generator generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

at::Tensor decaying_matrix(int64_t m, int64_t n, uint64_t seed) {
  const int64_t p = std::min(m, n);
  const at::Tensor U = std::get<0>(at::linalg_qr(at::randn({m, p}, generator(seed), at::kFloat), "reduced"));
  const at::Tensor V = std::get<0>(at::linalg_qr(at::randn({n, p}, generator(seed + 1), at::kFloat), "reduced"));
  const at::Tensor sigma = 1.0 / at::arange(1, p + 1, at::kFloat);
  return at::matmul(U * sigma.unsqueeze(0), V.t()).contiguous();
}

// Synthetic calibration statistics: n+64 tokens with log-normal channel scales, random Fisher.
LinearStats synthetic_stats(int64_t m, int64_t n, uint64_t seed) {
  const at::Tensor scale = at::exp(at::randn({n}, generator(seed), at::kFloat));
  const at::Tensor X = at::randn({n + 64, n}, generator(seed + 1), at::kFloat) * scale.unsqueeze(0);
  LinearStats s;
  s.gram = at::matmul(X.t(), X).to(at::kDouble);
  s.abs_mean = X.abs().mean(0);
  s.fisher = at::rand({m, n}, generator(seed + 2), at::kFloat).square();
  s.tokens = X.size(0);
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double relative_error(const at::Tensor& W, const Factors& f) {
  return (W - at::matmul(f.A, f.B)).norm().item<double>() / W.norm().item<double>();
}

bool is_slow(const std::string& method) { return method == "svdllm" || method == "cur" || method == "nmf"; }

void bench_size(int64_t m, int64_t n, const Options& o) {
  const at::Tensor W = decaying_matrix(m, n, 42);
  const LinearStats stats = synthetic_stats(m, n, 43);
  const int64_t k = std::max<int64_t>(1, static_cast<int64_t>(o.rank_frac * std::min(m, n)));
  std::map<std::string, double> error;
  for (const auto& method : o.methods) {
    const auto d = rankrl::make_decomposer(method);
    const std::string shape = std::to_string(m) + "×" + std::to_string(n);
    if (!o.full && is_slow(d->name()) && m * n > 8'000'000) {
      std::printf("| %s | %lld | %s | skipped (--full) | |\n", shape.c_str(), (long long)k, d->spec().c_str());
      std::fflush(stdout);
      continue;
    }
    const auto start = std::chrono::steady_clock::now();
    const Factors f = d->decompose(W, &stats, k);
    const double t = seconds_since(start);
    const double rel = relative_error(W, f);
    if (d->spec() == rankrl::make_decomposer(d->name())->spec()) error[d->name()] = rel;  // defaults only
    std::printf("| %s | %lld | %s | %.2f | %.4f |\n", shape.c_str(), (long long)k, d->spec().c_str(), t, rel);
    std::fflush(stdout);
  }
  if (error.count("svd") && error.count("rsvd"))
    std::printf("| %lld×%lld | %lld | rsvd excess error vs svd | | %+.3f%% |\n", (long long)m, (long long)n,
                (long long)k, 100.0 * (error["rsvd"] / error["svd"] - 1.0));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_args(argc, argv);
    rankrl::setup_threads(o.threads);
    std::printf("decomposition benchmark: %d intra-op threads, rank k = %.2f·min(m,n), σ_i ∝ 1/i\n\n",
                at::get_num_threads(), o.rank_frac);
    std::printf("| matrix | k | method (spec) | time [s] | ‖W−AB‖_F/‖W‖_F |\n|---|---|---|---|---|\n");
    for (const auto& [m, n] : o.sizes) bench_size(m, n, o);
    return 0;
  } catch (const rankrl::Error& e) {
    std::fprintf(stderr, "bench_decompose: error: %s\n", e.what());
    return e.exit_code();
  }
}
