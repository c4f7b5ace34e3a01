// Randomized SVD, Halko, Martinsson & Tropp 2011 ("Finding structure with randomness"),
// Alg. 4.4 (randomized subspace iteration): Gaussian sketch Y = W·Ω with p extra columns,
// q power iterations re-orthonormalised by QR after every product (plain powers (WWᵀ)^q·W·Ω
// lose the small directions to rounding), then an exact SVD of the small matrix QᵀW.
// Error: Ŵ_r = U_r·U_rᵀ·W is an orthogonal projection of W, so ‖W−Ŵ_r‖_F² = ‖W‖_F² − Σ_{i<r} σᵢ²
// exactly (tail_error, metric "frobenius_sq"; rounding ~1e-7·‖W‖² in float32).
//
// Defaults oversample=10, iters=2, measured with `bench_decompose --rsvd-sweep --threads 1
// --sizes 1024x1024,1024x2816 --model stories260K.bin` (excess = ‖W−Ŵ_rsvd‖_F/‖W−Ŵ_svd‖_F − 1,
// rank k = 256 for the random matrices, keep-0.6 ranks summed over stories260K's 35 weights;
// times on a loaded 2-core machine, 1 thread, so only their ratios mean much):
//   iters  oversample  1024×2816 σ∝1/i   1024×2816 σ∝i^-½   stories260K   time vs svd (1024×2816)
//     0        10          +57.8%            +28.8%           +18.1%            0.19
//     1        10           +5.3%             +5.6%            +3.4%            0.28
//     2         5           +2.0%             +2.3%            +1.8%            0.29
//     2        10           +1.6%             +2.1%            +0.85%           0.36
//     2        20           +1.2%             +1.8%            +0.13%           0.41
//     4        10           +0.40%            +0.56%           +0.09%           0.50
//   (svd: 13.6 s for 1024×2816; 1024×1024 gives the same excess errors within 0.3 points.)
// Power iterations matter far more than oversampling on these slowly decaying spectra: without
// them the sketch misses a quarter to a half of the error budget. iters=2 is the knee: within
// ~2% of the optimum at about a third of the SVD's time; iters=4 halves the time advantage
// for the last 1.5%.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <limits>

#include "decompose/methods.h"

namespace rankrl::detail {

namespace {

at::Tensor orthonormal_basis(const at::Tensor& Y) { return std::get<0>(at::linalg_qr(Y, "reduced")); }

class RsvdDecomposer final : public Decomposer {
 public:
  RsvdDecomposer(int64_t oversample, int64_t iters, int64_t seed)
      : oversample_(oversample), iters_(iters), seed_(seed) {}

  std::string name() const override { return "rsvd"; }
  std::string spec() const override {
    return "rsvd:oversample=" + std::to_string(oversample_) + ",iters=" + std::to_string(iters_) +
           ",seed=" + std::to_string(seed_);
  }

  Factors decompose(const at::Tensor& W, const LinearStats*, int64_t max_rank) const override {
    const at::Tensor w = checked_weight(W, max_rank, spec());
    const at::Tensor Q = range_basis(w, std::min(max_rank + oversample_, std::min(w.size(0), w.size(1))));
    // The small SVD is cheap: do it in float64 so the tail errors are as exact as the sketch.
    const ThinSvd small = thin_svd(at::matmul(Q.t(), w).to(at::kDouble), spec());
    Factors f;
    f.A = at::matmul(Q, small.U.narrow(1, 0, max_rank).to(at::kFloat)) *
          small.S.narrow(0, 0, max_rank).to(at::kFloat).unsqueeze(0);
    f.B = small.Vh.narrow(0, 0, max_rank);
    const double captured = small.S.square().sum().item<double>();
    const double total = w.to(at::kDouble).square().sum().item<double>();
    f.tail_error = tail_errors(small.S, max_rank, total - captured);
    f.metric = "frobenius_sq";
    balance_to_float(f);
    return f;
  }

 private:
  // Orthonormal [m, width] basis approximating the dominant column space of w.
  at::Tensor range_basis(const at::Tensor& w, int64_t width) const {
    at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed_));
    const at::Tensor omega = at::randn({w.size(1), width}, gen, w.options());
    at::Tensor Q = orthonormal_basis(at::matmul(w, omega));
    for (int64_t i = 0; i < iters_; ++i) {
      const at::Tensor Z = orthonormal_basis(at::matmul(w.t(), Q));
      Q = orthonormal_basis(at::matmul(w, Z));
    }
    return Q;
  }

  int64_t oversample_, iters_, seed_;
};

}  // namespace

std::unique_ptr<Decomposer> make_rsvd(const Params& params) {
  params.allow_only({"oversample", "iters", "seed"});
  const int64_t big = std::numeric_limits<int64_t>::max();
  return std::make_unique<RsvdDecomposer>(params.get_int("oversample", 10, 0, 1 << 20),
                                          params.get_int("iters", 2, 0, 100),
                                          params.get_int("seed", 0, 0, big));
}

}  // namespace rankrl::detail
