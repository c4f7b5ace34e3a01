// Decomposition benchmark: wall time per method on random matrices with decaying spectra
// (σ_i ∝ 1/i, random singular vectors, like trained weights' slowly decaying spectra), plus each
// result's relative Frobenius error (each data-aware method optimises its own metric instead)
// and the excess error of rsvd with default parameters over the exact SVD.
// Prints one markdown table on stdout.
//   bench_decompose [--full] [--sizes 1024x1024,1024x2816,4096x4096] [--rank-frac 0.25]
//                   [--methods svd;rsvd;cur:select=leverage;...] [--threads N]
//   bench_decompose --rsvd-sweep [--sizes ...] [--model stories260K.bin]
//     rsvd accuracy/speed for iters 0/1/2/4 × oversample 5/10/20 against svd: relative excess
//     Frobenius error ‖W−Ŵ_rsvd‖/‖W−Ŵ_svd‖ − 1 and time, on σᵢ ∝ i^-1 and i^-0.5 spectra and,
//     with --model, summed over a real model's projection weights at keep 0.6 ranks.
// (--methods takes ';' between specs because specs themselves contain ',')
// Without --full, the slow methods (svdllm: float64 SVD; cur; nmf) are skipped on matrices
// with more than 8M entries.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "decompose/decomposer.h"
#include "model/model.h"
#include "model/transformer.h"

namespace {

using rankrl::Factors;
using rankrl::LinearStats;

struct Options {
  bool full = false;
  std::vector<std::pair<int64_t, int64_t>> sizes = {{1024, 1024}, {1024, 2816}, {4096, 4096}};
  double rank_frac = 0.25;
  int threads = 0;  // 0: OMP_NUM_THREADS, else every core
  std::vector<std::string> methods = {"svd", "rsvd", "asvd", "svdllm", "fwsvd", "cur", "nmf"};
  bool rsvd_sweep = false;
  std::string model;
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
      o.methods = split(argv[++i], ';');
    } else if (arg == "--rsvd-sweep") {
      o.rsvd_sweep = true;
    } else if (arg == "--model" && has_value) {
      o.model = argv[++i];
    } else {
      throw rankrl::usage_error("unknown argument " + arg + " (see the comment at the top of bench_decompose.cpp)");
    }
  }
  return o;
}

at::Generator generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

at::Tensor decaying_matrix(int64_t m, int64_t n, uint64_t seed, double decay = 1.0) {
  const int64_t p = std::min(m, n);
  const at::Tensor U = std::get<0>(at::linalg_qr(at::randn({m, p}, generator(seed), at::kFloat), "reduced"));
  const at::Tensor V = std::get<0>(at::linalg_qr(at::randn({n, p}, generator(seed + 1), at::kFloat), "reduced"));
  const at::Tensor sigma = at::pow(at::arange(1, p + 1, at::kFloat), -decay);
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

// rsvd sweep: for each (iters, oversample), the summed squared error over `weights` relative to
// svd's (excess = √(Σ err_rsvd / Σ err_svd) − 1) and the summed time.
void rsvd_sweep(const std::string& label, const std::vector<at::Tensor>& weights, const std::vector<int64_t>& ranks) {
  double svd_err = 0, svd_time = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    const Factors f = rankrl::make_decomposer("svd")->decompose(weights[i], nullptr, ranks[i]);
    svd_time += seconds_since(start);
    svd_err += (weights[i] - at::matmul(f.A, f.B)).square().sum().item<double>();
  }
  std::printf("| %s | svd | | %.3f | 0 |\n", label.c_str(), svd_time);
  for (int iters : {0, 1, 2, 4})
    for (int over : {5, 10, 20}) {
      const std::string spec = "rsvd:oversample=" + std::to_string(over) + ",iters=" + std::to_string(iters);
      double err = 0, t = 0;
      for (size_t i = 0; i < weights.size(); ++i) {
        const auto start = std::chrono::steady_clock::now();
        const Factors f = rankrl::make_decomposer(spec)->decompose(weights[i], nullptr, ranks[i]);
        t += seconds_since(start);
        err += (weights[i] - at::matmul(f.A, f.B)).square().sum().item<double>();
      }
      std::printf("| %s | iters=%d | oversample=%d | %.3f | %+.3f%% |\n", label.c_str(), iters, over, t,
                  100.0 * (std::sqrt(err / svd_err) - 1.0));
      std::fflush(stdout);
    }
}

void rsvd_sweeps(const Options& o) {
  std::printf("| matrices | iters | oversample | time [s] | excess Frobenius error vs svd |\n|---|---|---|---|---|\n");
  for (const auto& [m, n] : o.sizes)
    for (double decay : {1.0, 0.5}) {
      const int64_t k = std::max<int64_t>(1, static_cast<int64_t>(o.rank_frac * std::min(m, n)));
      char label[128];
      std::snprintf(label, sizeof label, "%lld×%lld σ∝i^-%.1f k=%lld", (long long)m, (long long)n, decay, (long long)k);
      rsvd_sweep(label, {decaying_matrix(m, n, 42, decay)}, {k});
    }
  if (!o.model.empty()) {
    rankrl::Model model = rankrl::load_model(o.model, "");
    std::vector<at::Tensor> weights;
    std::vector<int64_t> ranks;
    for (const rankrl::Linear* l : model.net->linears()) {
      const int64_t m = l->out_features(), n = l->in_features();
      weights.push_back(l->dense_weight().to(at::kFloat).contiguous());
      ranks.push_back(std::max<int64_t>(1, 6 * m * n / (10 * (m + n))));  // keep 0.6
    }
    rsvd_sweep(o.model.substr(o.model.find_last_of('/') + 1) + " all projections, keep 0.6", weights, ranks);
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_args(argc, argv);
    rankrl::setup_threads(o.threads);
    if (o.rsvd_sweep) {
      rsvd_sweeps(o);
      return 0;
    }
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
