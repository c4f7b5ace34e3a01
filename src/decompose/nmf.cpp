// Semi-NMF, Ding, Li & Jordan 2010 ("Convex and semi-nonnegative matrix factorizations"):
// W ≈ F·G with G = B ≥ 0 (signed A = F). Alternates
//   F ← W·Gᵀ(G·Gᵀ)⁺                                   (exact least squares)
//   G ← G ⊙ √( [(FᵀW)⁺ + (FᵀF)⁻G] / [(FᵀW)⁻ + (FᵀF)⁺G] )  (their multiplicative rule; M± = (|M|±M)/2)
// both of which do not increase ‖W − FG‖_F² (their Theorem 1). Init from the SVD: G₀ = |√Σ_k·V_kᵀ|
// (plus 1% of its mean so no entry starts at the multiplicative rule's fixed point 0), then the
// least-squares F. Stops when the relative loss decrease is < tol or after `iters` iterations;
// an iteration that would increase the loss (possible only through rounding) is rejected and
// ends the run, so loss_history (entry 0 = init) is non-increasing. Components are ordered by
// energy ‖Fᵢ‖·‖Gᵢ‖; tail_error = exact ‖W − A_rB_r‖_F² (metric "frobenius_sq").
// Iterates are float32 (W's own precision, 2x faster products); the pseudo-inverse and the loss
// sums are float64.
#include <ATen/ATen.h>

#include "decompose/methods.h"

namespace rankrl::detail {

namespace {

struct SemiNmf {
  at::Tensor F;     // [m,k]
  at::Tensor G;     // [k,n], ≥ 0
  at::Tensor WGt;   // W·Gᵀ for the current G (reused by the loss)
  double loss = 0;  // ‖W − F·G‖_F²
};

at::Tensor positive_part(const at::Tensor& M) { return (M.abs() + M) / 2; }
at::Tensor negative_part(const at::Tensor& M) { return (M.abs() - M) / 2; }

// Sets F to the least-squares optimum for the current G and refreshes the loss:
// ‖W−FG‖² = ‖W‖² − 2⟨F, WGᵀ⟩ + ⟨FᵀF, GGᵀ⟩ (no m×n residual is formed).
void solve_f(const at::Tensor& w, double w_energy, SemiNmf& s) {
  s.WGt = at::matmul(w, s.G.t());
  const at::Tensor GGt = at::matmul(s.G, s.G.t()).to(at::kDouble);
  s.F = at::matmul(s.WGt, at::linalg_pinv(GGt, /*rcond=*/1e-12, /*hermitian=*/true).to(at::kFloat));
  const double fit = (s.F * s.WGt).sum(at::kDouble).item<double>();
  const double gram = (at::matmul(s.F.t(), s.F).to(at::kDouble) * GGt).sum().item<double>();
  s.loss = std::max(w_energy - 2 * fit + gram, 0.0);
}

at::Tensor multiplicative_g(const at::Tensor& w, const SemiNmf& s) {
  const at::Tensor FtW = at::matmul(s.F.t(), w);
  const at::Tensor FtF = at::matmul(s.F.t(), s.F);
  const at::Tensor num = positive_part(FtW) + at::matmul(negative_part(FtF), s.G);
  const at::Tensor den = negative_part(FtW) + at::matmul(positive_part(FtF), s.G);
  const double eps = 1e-20 * (1.0 + den.max().item<double>());  // 0/0 → keep the entry
  return s.G * at::sqrt((num + eps) / (den + eps));
}

class NmfDecomposer final : public Decomposer {
 public:
  NmfDecomposer(int64_t iters, double tol) : iters_(iters), tol_(tol) {}
  std::string name() const override { return "nmf"; }
  std::string spec() const override {
    return "nmf:iters=" + std::to_string(iters_) + ",tol=" + format_number(tol_);
  }

  Factors decompose(const at::Tensor& W, const LinearStats*, int64_t max_rank) const override {
    const at::Tensor w = checked_weight(W, max_rank, spec());
    const double w_energy = w.to(at::kDouble).square().sum().item<double>();
    SemiNmf s = initial(w, w_energy, max_rank);
    std::vector<double> history{s.loss};
    for (int64_t it = 0; it < iters_; ++it) {
      SemiNmf next = s;
      next.G = multiplicative_g(w, s);
      solve_f(w, w_energy, next);
      if (next.loss > s.loss) break;
      const bool converged = s.loss - next.loss <= tol_ * s.loss;
      s = next;
      history.push_back(s.loss);
      if (converged) break;
    }
    return ordered_factors(w, s, std::move(history));
  }

 private:
  SemiNmf initial(const at::Tensor& w, double w_energy, int64_t k) const {
    const ThinSvd svd = thin_svd(w, spec());
    SemiNmf s;
    s.G = (svd.Vh.narrow(0, 0, k) * svd.S.narrow(0, 0, k).sqrt().unsqueeze(1)).abs();
    s.G += 0.01 * s.G.mean();
    solve_f(w, w_energy, s);
    return s;
  }

  Factors ordered_factors(const at::Tensor& w, const SemiNmf& s, std::vector<double> history) const {
    const at::Tensor energy = at::linalg_vector_norm(s.F, 2, {0}) * at::linalg_vector_norm(s.G, 2, {1});
    const at::Tensor order = std::get<1>(at::sort(energy, /*dim=*/0, /*descending=*/true));
    Factors f;
    f.A = s.F.index_select(1, order);
    f.B = s.G.index_select(0, order);
    f.tail_error = prefix_errors(w, f.A, f.B);
    f.metric = "frobenius_sq";
    f.loss_history = std::move(history);
    balance_to_float(f);
    f.B.clamp_min_(0);  // float32 rounding cannot create negatives, but make B ≥ 0 a hard fact
    return f;
  }

  int64_t iters_;
  double tol_;
};

}  // namespace

std::unique_ptr<Decomposer> make_nmf(const Params& params) {
  params.allow_only({"iters", "tol"});
  return std::make_unique<NmfDecomposer>(params.get_int("iters", 200, 1, 1000000),
                                         params.get_double("tol", 1e-4, 0.0, 1.0));
}

}  // namespace rankrl::detail
